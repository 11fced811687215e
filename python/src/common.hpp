// What the binding's translation units share: the exception classes (one per Errc), the numpy
// dtypes of a bar and of a ring slot, and small conversions.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "mdshm/client.hpp"

namespace mdshm::python {

namespace py = pybind11;

// ---- errors ------------------------------------------------------------------------------------
// In the order of the enum (result.hpp); the static_assert catches an enum that grew.
inline constexpr std::array<const char*, 28> kErrcNames = {
    "ok",           "not_found",     "permission_denied", "io_error",     "too_small",  "bad_magic",
    "version_mismatch", "hash_mismatch", "arch_mismatch", "bad_geometry", "truncated",  "bad_names",
    "not_ready",    "retired",       "bad_state",         "name_mismatch", "empty",     "not_held",
    "lapped",       "contended",     "corrupt",           "timeout",      "writer_dead", "registry_unavailable",
    "registry_full", "invalid_argument", "symlink_refused", "untrusted_owner"};
static_assert(kErrcNames.size() == static_cast<std::size_t>(Errc::untrusted_owner) + 1,
              "one exception class per Errc: extend kErrcNames with the enum");
static_assert(static_cast<std::size_t>(Errc::corrupt) == 20 && static_cast<std::size_t>(Errc::name_mismatch) == 15);

inline PyObject* g_base_error = nullptr;
inline std::array<PyObject*, kErrcNames.size()> g_errors{};

// "NotFoundError" from "not_found", "IoError" from "io_error".
inline std::string class_name(std::string_view errc) {
  std::string out;
  bool up = true;
  for (char c : errc) {
    if (c == '_') {
      up = true;
      continue;
    }
    out += up ? static_cast<char>(c - 'a' + 'A') : c;
    up = false;
  }
  return out.ends_with("Error") ? out : out + "Error";
}

[[noreturn]] inline void raise(Errc e, const std::string& detail) {
  const auto i = static_cast<std::size_t>(e);
  std::string msg = std::string(kErrcNames[i]) + ": " + std::string(to_string(e));
  if (!detail.empty()) msg += " (" + detail + ")";
  PyErr_SetString(g_errors[i], msg.c_str());
  throw py::error_already_set();
}
inline void check(Errc e, const std::string& detail = {}) {
  if (e != Errc::ok) raise(e, detail);
}
[[noreturn]] inline void raise(const Error& err) {
  const auto i = static_cast<std::size_t>(err.code);
  const std::string msg = std::string(kErrcNames[i]) + ": " + err.message;
  PyErr_SetString(g_errors[i], msg.c_str());
  throw py::error_already_set();
}

// ---- dtypes ------------------------------------------------------------------------------------
// `dtype` mirrors Bar byte for byte (itemsize 112); `slot_dtype` is the same fields as they lie
// in a ring slot (itemsize 128, after seq and bar_index), for the zero-copy views.
inline py::dtype make_dtype(std::size_t base, std::size_t itemsize) {
  py::list names, formats, offsets;
  auto add = [&](const char* n, const char* f, std::size_t off) {
    names.append(n);
    formats.append(f);
    offsets.append(base + off);
  };
  add("open_time_ms", "<i8", offsetof(Bar, open_time_ms));
  add("open", "<f8", offsetof(Bar, open));
  add("high", "<f8", offsetof(Bar, high));
  add("low", "<f8", offsetof(Bar, low));
  add("close", "<f8", offsetof(Bar, close));
  add("volume", "<f8", offsetof(Bar, volume));
  add("quote_volume", "<f8", offsetof(Bar, quote_volume));
  add("taker_buy_volume", "<f8", offsetof(Bar, taker_buy_volume));
  add("taker_buy_quote_volume", "<f8", offsetof(Bar, taker_buy_quote_volume));
  add("trade_count", "<u8", offsetof(Bar, trade_count));
  add("first_trade_id", "<i8", offsetof(Bar, first_trade_id));
  add("last_trade_id", "<i8", offsetof(Bar, last_trade_id));
  add("update_wall_ns", "<i8", offsetof(Bar, update_wall_ns));
  add("flags", "<u4", offsetof(Bar, flags));
  py::dict spec;
  spec["names"] = names;
  spec["formats"] = formats;
  spec["offsets"] = offsets;
  spec["itemsize"] = itemsize;
  return py::dtype::from_args(spec);
}
static_assert(std::endian::native == std::endian::little, "the dtypes spell little-endian fields");

// Leaked on purpose: a static py::object would be released after the interpreter finalised.
inline py::dtype& bar_dtype() {
  static auto* d = new py::dtype(make_dtype(0, sizeof(Bar)));
  return *d;
}
inline py::dtype& slot_dtype() {
  static auto* d = new py::dtype(make_dtype(offsetof(BarSlot, bar), sizeof(BarSlot)));
  return *d;
}

inline py::array new_bars(std::size_t n) {
  return py::array(bar_dtype(), std::vector<py::ssize_t>{static_cast<py::ssize_t>(n)});
}
inline Bar* bars_of(py::array& a) { return static_cast<Bar*>(a.mutable_data()); }

// A structured array of `dtype` as a span of Bars (the caller keeps `a` alive).
inline std::span<const Bar> as_bars(const py::array& a) {
  if (!a.dtype().is(bar_dtype()) && !a.dtype().equal(bar_dtype()))
    raise(Errc::invalid_argument, "bars must have dtype mdshm.dtype (use numpy.asarray(x, dtype=mdshm.dtype))");
  if (a.ndim() != 1 || !(a.flags() & py::array::c_style))
    raise(Errc::invalid_argument, "bars must be a 1-d C-contiguous array");
  return {static_cast<const Bar*>(a.data()), static_cast<std::size_t>(a.shape(0))};
}

inline std::chrono::nanoseconds seconds(double s) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::max(0.0, s) * 1e9));
}
inline const char* wait_name(WaitResult r) {
  return r == WaitResult::updated ? "updated" : r == WaitResult::timeout ? "timeout" : "writer_dead";
}
inline std::int64_t wall_ms() { return static_cast<std::int64_t>(mdshm::detail::wall_ns() / 1'000'000); }

inline const char* writer_name(WriterState w) {
  return w == WriterState::alive ? "alive" : w == WriterState::stalled ? "stalled" : "dead";
}

void bind_series(py::module_& m);   // series.cpp: Series, views, Subscription, consumers
void bind_adapter(py::module_& m);  // adapter.cpp: adapt, rolling_correlation, Reader

}  // namespace mdshm::python
