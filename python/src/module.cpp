// _mdshm: the pybind11 layer over the header-only client. Thin on purpose: each Python method is
// one or two client calls; the pure-Python package (python/mdshm) adds the dataclass, the
// read-only view type and the tensor layouts. Rules kept here:
//   - every error is an exception of the class for its Errc, with the Errc name in the message;
//   - bars reach numpy without an intermediate copy (last_n writes into the array's buffer;
//     views point into the mapping and hold it alive);
//   - blocking calls release the GIL, and run on objects no other Python call touches.
#include "common.hpp"

using namespace mdshm;
using namespace mdshm::python;

PYBIND11_MODULE(_mdshm, m) {
  m.doc() = "mdshm client (C++ core); import mdshm, not this module";

  g_base_error = PyErr_NewException("mdshm.MdshmError", PyExc_RuntimeError, nullptr);
  m.add_object("MdshmError", py::handle(g_base_error));
  for (std::size_t i = 1; i < kErrcNames.size(); ++i) {
    const std::string cls = class_name(kErrcNames[i]);
    g_errors[i] = PyErr_NewException(("mdshm." + cls).c_str(), g_base_error, nullptr);
    py::handle(g_errors[i]).attr("errc") = kErrcNames[i];
    m.add_object(cls.c_str(), py::handle(g_errors[i]));
  }
  g_errors[0] = g_base_error;
  py::dict classes;  // errc name -> exception class, for the Python layer
  for (std::size_t i = 1; i < kErrcNames.size(); ++i) classes[kErrcNames[i]] = py::handle(g_errors[i]);
  m.attr("error_classes") = classes;
  m.attr("errc_names") = py::cast(std::vector<std::string>(kErrcNames.begin(), kErrcNames.end()));

  m.attr("dtype") = bar_dtype();
  m.attr("slot_dtype") = slot_dtype();
  m.attr("default_instance") = std::string(kDefaultInstance);
  m.attr("default_shm_dir") = std::string(kDefaultShmDir);
  py::dict flags;
  flags["in_progress"] = flag::in_progress;
  flags["closed"] = flag::closed;
  flags["empty"] = flag::empty;
  flags["backfilled"] = flag::backfilled;
  flags["reconciled"] = flag::reconciled;
  flags["not_repaired"] = flag::not_repaired;
  flags["reconcile_diff"] = flag::reconcile_diff;
  flags["from_store"] = flag::from_store;
  m.attr("flags") = flags;
  bind_series(m);
  bind_adapter(m);
}
