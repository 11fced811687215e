// The Universal Data Adapter for Python (adapt, rolling_correlation) and the reader behind
// universal() and tensors(): several series cut at one as_of.
#include <optional>
#include <tuple>

#include "common.hpp"
#include "mdshm/adapter.hpp"
#include "mdshm/paths.hpp"

namespace mdshm::python {
namespace {

// ---- the adapter -------------------------------------------------------------------------------
adapter::PriceNorm price_norm(const std::string& s) {
  if (s == "none") return adapter::PriceNorm::none;
  if (s == "log_returns") return adapter::PriceNorm::log_returns;
  if (s == "zscore") return adapter::PriceNorm::zscore;
  if (s == "minmax") return adapter::PriceNorm::minmax;
  if (s == "relative") return adapter::PriceNorm::relative;
  raise(Errc::invalid_argument, "price norm '" + s + "': none, log_returns, zscore, minmax or relative");
}
adapter::VolumeNorm volume_norm(const std::string& s) {
  if (s == "none") return adapter::VolumeNorm::none;
  if (s == "log1p") return adapter::VolumeNorm::log1p;
  if (s == "zscore") return adapter::VolumeNorm::zscore;
  raise(Errc::invalid_argument, "volume norm '" + s + "': none, log1p or zscore");
}

// A numpy array that owns a moved-in vector (no copy).
template <class T>
py::array own(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule free_it(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, heap->data(), free_it);
}

py::dict quality_dict(const adapter::Quality& q) {
  py::dict d;
  d["slots"] = q.slots;
  d["valid"] = q.valid;
  d["missing"] = q.missing;
  d["gaps"] = q.gaps;
  d["not_repaired"] = q.not_repaired;
  d["reconciled"] = q.reconciled;
  d["empty_bars"] = q.empty_bars;
  d["unfinished"] = q.unfinished;
  d["invalid_values"] = q.invalid_values;
  d["misaligned"] = q.misaligned;
  d["non_monotonic"] = q.non_monotonic;
  d["completeness"] = q.completeness;
  d["completeness_target"] = adapter::kCompletenessTarget;
  d["meets_completeness"] = q.meets_completeness;
  d["timestamps_aligned"] = q.timestamps_aligned;
  d["last_valid_close_ms"] = q.last_valid_close_ms;
  d["staleness_ms"] = q.staleness_ms;
  return d;
}

// adapt([(id, interval_s, bars), ...], as_of_ms, ...) -> dict of tensor, mask, times, params, quality.
py::dict adapt(const std::vector<std::tuple<std::string, std::uint32_t, py::array>>& series, std::int64_t as_of_ms,
               std::size_t window, bool in_progress, const std::string& price, const std::string& volume) {
  std::vector<adapter::SeriesInput> in;
  in.reserve(series.size());
  for (const auto& [id, interval, bars] : series) in.push_back({id, interval, as_bars(bars)});
  adapter::Options o;
  o.window = window;
  o.as_of_ms = as_of_ms;
  o.in_progress = in_progress;
  o.price = price_norm(price);
  o.volume = volume_norm(volume);
  adapter::Output out;
  check(adapter::build(in, o, out), "window and every interval must be > 0");
  const auto S = static_cast<py::ssize_t>(out.series), F = static_cast<py::ssize_t>(out.features),
             T = static_cast<py::ssize_t>(out.time);
  py::dict d;
  py::list params, quality, features, index;
  for (std::size_t f = 0; f < out.features; ++f) features.append(std::string(adapter::kFeatureNames[f]));
  for (const auto& p : out.params) {
    py::dict pd;
    pd["price_offset"] = p.price_offset;
    pd["price_scale"] = p.price_scale;
    pd["volume_offset"] = p.volume_offset;
    pd["volume_scale"] = p.volume_scale;
    params.append(pd);
  }
  for (const auto& q : out.quality) quality.append(quality_dict(q));
  for (const auto& e : adapter::rl_index(out, in)) index.append(py::make_tuple(e.name, e.begin, e.end));
  d["as_of_ms"] = out.as_of_ms;
  d["features"] = features;
  d["params"] = params;
  d["quality"] = quality;
  d["rl_index"] = index;
  d["tensor"] = own(std::move(out.tensor), {S, F, T});
  d["mask"] = own(std::move(out.mask), {S, T});
  d["open_time_ms"] = own(std::move(out.open_time_ms), {S, T});
  d["close"] = own(std::move(out.close), {S, T});
  return d;
}

// rolling_correlation over two rows of an adapt() result's close and mask.
py::tuple rolling_correlation(py::array_t<double, py::array::c_style | py::array::forcecast> close_a,
                              py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast> mask_a,
                              py::array_t<double, py::array::c_style | py::array::forcecast> close_b,
                              py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast> mask_b,
                              std::size_t span) {
  auto sp = [](auto& a) { return std::span(a.data(), static_cast<std::size_t>(a.size())); };
  std::vector<float> corr;
  std::vector<std::uint8_t> mask;
  check(adapter::rolling_correlation(sp(close_a), sp(mask_a), sp(close_b), sp(mask_b), span, corr, mask),
        "span >= 2 and four arrays of one length");
  const auto T = static_cast<py::ssize_t>(corr.size());
  return py::make_tuple(own(std::move(corr), {T}), own(std::move(mask), {T}));
}

// ---- reading several series at once (universal snapshot, tensors from shm) --------------------
// Opens each series on first use and re-tries missing ones on every read, like Universal.
class PyReader {
 public:
  PyReader(std::vector<std::string> ids, const std::string& instance, const std::string& shm_dir)
      : ids_(std::move(ids)), opt_{instance, shm_dir}, series_(ids_.size()), errs_(ids_.size(), Errc::not_found) {}

  // The exchange clock of the first open series (all series share one source clock).
  std::int64_t now_ms() {
    for (std::size_t i = 0; i < ids_.size(); ++i)
      if (open_(i)) return wall_ms() + exchange_offset_ms(series_[i]->header());
    return wall_ms();
  }

  // Per series: (bars, rows (n, 6) float64, meta). bars: the held bars whose open time lies in
  // the last `window` intervals closed by as_of (plus the live bar containing as_of when
  // in_progress); rows: the same bars' [timestamp_ms, open, high, low, close, volume].
  py::list read(std::size_t window, std::int64_t as_of_ms, bool in_progress, double max_age_s) {
    if (window == 0) raise(Errc::invalid_argument, "window must be at least 1");
    py::list out;
    for (std::size_t i = 0; i < ids_.size(); ++i) {
      py::dict meta;
      meta["series_id"] = ids_[i];
      if (!open_(i)) {
        meta["status"] = kErrcNames[static_cast<std::size_t>(errs_[i])];
        meta["fresh"] = false;
        meta["writer_state"] = "dead";
        meta["bars"] = 0;
        meta["missing"] = window;
        meta["not_repaired"] = 0;
        meta["complete"] = false;
        meta["source"] = paths::segment(opt_.shm_dir, opt_.instance, ids_[i]);
        out.append(py::make_tuple(new_bars(0), py::array_t<double>(std::vector<py::ssize_t>{0, 6}), meta));
        continue;
      }
      Series& s = *series_[i];
      const std::int64_t step = std::int64_t{s.interval_s()} * 1000;
      const std::int64_t containing = adapter::detail::floor_div(as_of_ms, step) * step;
      const std::int64_t last_open = in_progress ? containing : containing - step;
      const std::int64_t first_open = last_open - static_cast<std::int64_t>(window - 1) * step;
      // How far back to read: the window plus whatever the ring holds after as_of.
      Bar newest{};
      std::uint64_t want = window + 2;
      if (s.latest(newest) == Errc::ok && newest.open_time_ms > last_open)
        want += static_cast<std::uint64_t>((newest.open_time_ms - last_open) / step);
      want = std::min<std::uint64_t>(want, s.capacity());
      scratch_.resize(want);
      std::size_t n = 0;
      Errc e = s.last_n(std::span<Bar>(scratch_.data(), want), n);
      if (e == Errc::empty) e = Errc::ok, n = 0;
      std::size_t b = 0, end = n;
      while (b < end && scratch_[b].open_time_ms < first_open) ++b;
      while (end > b && scratch_[end - 1].open_time_ms > last_open) --end;
      if (end > b && !in_progress && !(scratch_[end - 1].flags & flag::closed)) --end;
      py::array bars = new_bars(end - b);
      std::copy(scratch_.begin() + static_cast<std::ptrdiff_t>(b), scratch_.begin() + static_cast<std::ptrdiff_t>(end),
                bars_of(bars));
      py::array_t<double> rows(std::vector<py::ssize_t>{static_cast<py::ssize_t>(end - b), 6});
      double* r = rows.mutable_data();
      std::size_t not_repaired = 0;
      for (std::size_t k = b; k < end; ++k, r += 6) {
        const Bar& x = scratch_[k];
        r[0] = static_cast<double>(x.open_time_ms);
        r[1] = x.open;
        r[2] = x.high;
        r[3] = x.low;
        r[4] = x.close;
        r[5] = x.volume;
        if (x.flags & flag::not_repaired) ++not_repaired;
      }
      const std::size_t slots = window + (in_progress ? 1 : 0);
      meta["status"] = kErrcNames[static_cast<std::size_t>(e)];
      meta["fresh"] = s.is_fresh(seconds(max_age_s));
      meta["writer_state"] = writer_name(s.writer_state());
      meta["update_age_s"] = std::chrono::duration<double>(s.update_age()).count();
      meta["heartbeat_age_s"] = std::chrono::duration<double>(s.heartbeat_age()).count();
      meta["generation"] = s.generation();
      meta["interval_s"] = s.interval_s();
      meta["symbol"] = std::string(s.symbol());
      meta["bars"] = end - b;
      meta["missing"] = slots - (end - b);
      meta["not_repaired"] = not_repaired;
      meta["complete"] = e == Errc::ok && end - b == slots && not_repaired == 0;
      meta["source"] = s.path();
      out.append(py::make_tuple(bars, rows, meta));
    }
    return out;
  }

 private:
  bool open_(std::size_t i) {
    if (series_[i]) return true;
    auto r = Series::open(ids_[i], opt_);
    if (!r) {
      errs_[i] = r.error().code;
      return false;
    }
    series_[i].emplace(std::move(r.value()));
    return true;
  }

  std::vector<std::string> ids_;
  OpenOptions opt_;
  std::vector<std::optional<Series>> series_;
  std::vector<Errc> errs_;
  std::vector<Bar> scratch_;
};

}  // namespace

void bind_adapter(py::module_& m) {
  py::class_<PyReader>(m, "Reader")
      .def(py::init<std::vector<std::string>, const std::string&, const std::string&>(), py::arg("series"),
           py::arg("instance"), py::arg("shm_dir"))
      .def("now_ms", &PyReader::now_ms)
      .def("read", &PyReader::read, py::arg("window"), py::arg("as_of_ms"), py::arg("in_progress") = false,
           py::arg("max_age") = 5.0);

  m.def("rolling_correlation", &rolling_correlation, py::arg("close_a"), py::arg("mask_a"), py::arg("close_b"),
        py::arg("mask_b"), py::arg("span") = 60);
  m.def("adapt", &adapt, py::arg("series"), py::arg("as_of_ms"), py::arg("window") = 300,
        py::arg("in_progress") = false, py::arg("price") = "none", py::arg("volume") = "none");
}

}  // namespace mdshm::python
