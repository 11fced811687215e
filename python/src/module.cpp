// _mdshm: the pybind11 layer over the header-only client. Thin on purpose: each Python method is
// one or two client calls; the pure-Python package (python/mdshm) adds the dataclass, the
// read-only view type and the tensor layouts. Rules kept here:
//   - every error is an exception of the class for its Errc, with the Errc name in the message;
//   - bars reach numpy without an intermediate copy (last_n writes into the array's buffer;
//     views point into the mapping and hold it alive);
//   - blocking calls release the GIL, and run on objects no other Python call touches.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mdshm/adapter.hpp"
#include "mdshm/client.hpp"
#include "mdshm/paths.hpp"

namespace py = pybind11;
using namespace mdshm;

namespace {

// ---- errors ------------------------------------------------------------------------------------
constexpr std::array<const char*, 23> kErrcNames = {
    "ok",           "not_found",   "permission_denied", "io_error",        "too_small", "bad_magic",
    "version_mismatch", "hash_mismatch", "arch_mismatch", "bad_geometry",   "truncated", "bad_names",
    "not_ready",    "retired",     "empty",             "not_held",        "lapped",    "contended",
    "timeout",      "writer_dead", "registry_unavailable", "registry_full", "invalid_argument"};
static_assert(kErrcNames.size() == static_cast<std::size_t>(Errc::invalid_argument) + 1,
              "one exception class per Errc: extend kErrcNames with the enum");

PyObject* g_base_error = nullptr;
std::array<PyObject*, kErrcNames.size()> g_errors{};

// "NotFoundError" from "not_found".
std::string class_name(std::string_view errc) {
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
  return out + "Error";
}

[[noreturn]] void raise(Errc e, const std::string& detail) {
  const auto i = static_cast<std::size_t>(e);
  std::string msg = std::string(kErrcNames[i]) + ": " + std::string(to_string(e));
  if (!detail.empty()) msg += " (" + detail + ")";
  PyErr_SetString(g_errors[i], msg.c_str());
  throw py::error_already_set();
}
void check(Errc e, const std::string& detail = {}) {
  if (e != Errc::ok) raise(e, detail);
}
[[noreturn]] void raise(const Error& err) {
  const auto i = static_cast<std::size_t>(err.code);
  const std::string msg = std::string(kErrcNames[i]) + ": " + err.message;
  PyErr_SetString(g_errors[i], msg.c_str());
  throw py::error_already_set();
}

// ---- dtypes ------------------------------------------------------------------------------------
// `dtype` mirrors Bar byte for byte (itemsize 112); `slot_dtype` is the same fields as they lie
// in a ring slot (itemsize 128, after seq and bar_index), for the zero-copy views.
py::dtype make_dtype(std::size_t base, std::size_t itemsize) {
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
py::dtype& bar_dtype() {
  static auto* d = new py::dtype(make_dtype(0, sizeof(Bar)));
  return *d;
}
py::dtype& slot_dtype() {
  static auto* d = new py::dtype(make_dtype(offsetof(BarSlot, bar), sizeof(BarSlot)));
  return *d;
}

py::array new_bars(std::size_t n) {
  return py::array(bar_dtype(), std::vector<py::ssize_t>{static_cast<py::ssize_t>(n)});
}
Bar* bars_of(py::array& a) { return static_cast<Bar*>(a.mutable_data()); }

// A structured array of `dtype` as a span of Bars (the caller keeps `a` alive).
std::span<const Bar> as_bars(const py::array& a) {
  if (!a.dtype().is(bar_dtype()) && !a.dtype().equal(bar_dtype()))
    raise(Errc::invalid_argument, "bars must have dtype mdshm.dtype (use numpy.asarray(x, dtype=mdshm.dtype))");
  if (a.ndim() != 1 || !(a.flags() & py::array::c_style))
    raise(Errc::invalid_argument, "bars must be a 1-d C-contiguous array");
  return {static_cast<const Bar*>(a.data()), static_cast<std::size_t>(a.shape(0))};
}

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::max(0.0, s) * 1e9));
}
const char* wait_name(WaitResult r) {
  return r == WaitResult::updated ? "updated" : r == WaitResult::timeout ? "timeout" : "writer_dead";
}
std::int64_t wall_ms() { return static_cast<std::int64_t>(mdshm::detail::wall_ns() / 1'000'000); }

// ---- zero-copy views ---------------------------------------------------------------------------
// A view's bytes belong to a mapping that only the view's guard may unmap: the pin, a Series
// opened for views and used through const accessors only (so nothing re-maps it in place). The
// guard remembers what valid() must find unchanged.
struct ViewGuard {
  std::shared_ptr<const Series> pin;
  std::uint64_t first = 0, count = 0, first_seq = 0, amends = 0, generation = 0;

  // True iff no bar of the view was lapped or amended, and the writer did not re-attach or
  // retire the segment, since the view was taken (ClosedView::valid explains why one slot's
  // sequence covers the whole run).
  bool valid() const {
    std::atomic_thread_fence(std::memory_order_acquire);
    const SegmentHeader& h = pin->header();
    if (load_field(h.state) != static_cast<std::uint32_t>(SegmentState::ready)) return false;
    if (load_field(h.generation) != generation || load_field(h.amends) != amends) return false;
    return count == 0 || load_field(ring_of(&h)[first % pin->capacity()].seq) == first_seq;
  }
  std::uintptr_t mapping_begin() const { return reinterpret_cast<std::uintptr_t>(&pin->header()); }
  std::uintptr_t mapping_end() const { return mapping_begin() + segment_size(pin->capacity()); }
};

// ---- Series ------------------------------------------------------------------------------------
class PySeries {
 public:
  PySeries(const std::string& id, const std::string& instance, const std::string& shm_dir)
      : opt_{instance, shm_dir} {
    auto r = Series::open(id, opt_);
    if (!r) raise(r.error());
    s_ = std::make_unique<Series>(std::move(r.value()));
    seen_ = s_->updates();
  }

  Series& s() { return *s_; }

  py::object latest() {
    py::array a = new_bars(1);
    std::uint64_t index = 0;
    check(s_->latest(bars_of(a)[0], &index), s_->path());
    return a[py::int_(0)];
  }

  // The newest n bars (closed_only: the n newest closed ones), one consistent copy.
  py::array window(std::size_t n, bool closed_only) {
    const std::size_t want = n + (closed_only ? 1 : 0);
    py::array a = new_bars(want);
    std::size_t got = 0;
    const Errc e = s_->last_n(std::span<Bar>(bars_of(a), want), got);
    if (e == Errc::empty) got = 0;
    else check(e, s_->path());
    std::size_t end = got;
    if (closed_only && got > 0 && !(bars_of(a)[got - 1].flags & flag::closed)) --end;
    const std::size_t begin = end > n ? end - n : 0;
    return a[py::slice(static_cast<py::ssize_t>(begin), static_cast<py::ssize_t>(end), 1)];
  }

  // Zero-copy: (array over the ring, guard) when the n newest closed bars lie contiguous in the
  // ring; (None, None) when they wrap around its end (the Python layer then copies).
  py::tuple view(std::size_t n) {
    repin_();
    const Series& p = *pin_;
    const SegmentHeader& h = p.header();
    auto g = std::make_shared<ViewGuard>();
    g->pin = pin_;
    g->generation = load_field(h.generation, std::memory_order_acquire);
    g->amends = load_field(h.amends, std::memory_order_acquire);
    const std::uint64_t head = p.head(), cap = p.capacity();
    const BarSlot* ring = ring_of(&h);
    // Closed bars are [oldest held + 1 slot of margin, head - 1), plus the newest if it closed.
    std::uint64_t closed_end = head > 0 ? head - 1 : 0;
    if (head > 0) {
      for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
        Bar newest;
        std::uint64_t idx = 0;
        if (seqlock::try_read_slot(ring[(head - 1) % cap], idx, newest) != seqlock::ReadStatus::ok) continue;
        if (idx == head - 1 && (newest.flags & flag::closed)) closed_end = head;
        break;
      }
    }
    const std::uint64_t oldest = head > cap ? head - cap + 1 : 0;
    const std::uint64_t avail = closed_end > oldest ? closed_end - oldest : 0;
    g->count = std::min<std::uint64_t>(n, avail);
    g->first = closed_end - g->count;
    if (g->count > 0) {
      if ((g->first % cap) + g->count > cap) return py::make_tuple(py::none(), py::none());
      g->first_seq = load_field(ring[g->first % cap].seq, std::memory_order_acquire);
      if ((g->first_seq & 1) || load_field(ring[g->first % cap].bar_index) != g->first) raise(Errc::lapped, s_->path());
    }
    py::object owner = py::cast(g);
    const void* data = &ring[g->count ? g->first % cap : 0];
    py::array a(slot_dtype(), std::vector<py::ssize_t>{static_cast<py::ssize_t>(g->count)},
                std::vector<py::ssize_t>{static_cast<py::ssize_t>(sizeof(BarSlot))}, data, owner);
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return py::make_tuple(a, owner);
  }

  // Blocks (GIL released) until updates() moves past `seen` (default: what the previous wait
  // returned to, or open()), the timeout passes or the writer dies. Runs on its own Series, so
  // Python threads using this object's other methods meanwhile share nothing with it.
  const char* wait(double timeout_s, std::optional<std::uint64_t> seen) {
    const std::uint64_t from = seen.value_or(seen_);
    if (!waiter_) {  // created once, under the GIL; only read (under wait_mu_) after that
      auto w = Series::open_path(s_->path(), opt_);
      if (!w) raise(w.error());
      waiter_ = std::make_unique<Series>(std::move(w.value()));
    }
    WaitResult r;
    std::uint64_t after = 0;
    {
      py::gil_scoped_release nogil;
      std::lock_guard lock(wait_mu_);
      r = waiter_->wait(from, seconds(timeout_s));
      after = waiter_->updates();
    }
    seen_ = after;
    return wait_name(r);
  }

  bool is_fresh(double max_age_s) const { return s_->is_fresh(seconds(max_age_s)); }
  const char* writer_state() const {
    const auto w = s_->writer_state();
    return w == WriterState::alive ? "alive" : w == WriterState::stalled ? "stalled" : "dead";
  }
  std::int64_t exchange_now_ms() const { return wall_ms() + exchange_offset_ms(s_->header()); }

 private:
  // A pin for views: re-opened when it no longer is the file the series reads (retired,
  // replaced), so views taken before keep their mapping and new ones see the new file.
  void repin_() {
    const auto ready = static_cast<std::uint32_t>(SegmentState::ready);
    if (load_field(s_->header().state) != ready) (void)s_->refresh();
    if (pin_ && load_field(pin_->header().state) == ready &&
        load_field(pin_->header().created_wall_ns) == load_field(s_->header().created_wall_ns))
      return;
    auto r = Series::open_path(s_->path(), opt_);
    if (!r) raise(r.error());
    pin_ = std::make_shared<const Series>(std::move(r.value()));
  }

  OpenOptions opt_;
  std::unique_ptr<Series> s_;
  std::shared_ptr<const Series> pin_;
  std::mutex wait_mu_;
  std::unique_ptr<Series> waiter_;
  std::uint64_t seen_ = 0;
};

// ---- Subscription ------------------------------------------------------------------------------
// poll() and wait() both touch the subscription's Series: a mutex (taken with the GIL released,
// so a blocked wait cannot deadlock a poll from another thread) keeps them apart.
class PySubscription {
 public:
  PySubscription(const std::string& name, const std::string& id, const std::string& instance,
                 const std::string& shm_dir) {
    auto r = Subscription::open(name, id, OpenOptions{instance, shm_dir});
    if (!r) raise(r.error());
    sub_.emplace(std::move(r.value()));
  }

  // New closed bars since the last call, and how many were lost to lapping meanwhile.
  py::tuple poll(std::size_t max_bars) {
    py::array a = new_bars(max_bars);
    Bar* buf = bars_of(a);
    std::size_t n = 0;
    std::uint64_t lapped = 0;
    std::string path;
    const Errc e = locked_([&] {
      if (!sub_) return Errc::invalid_argument;
      const std::uint64_t before = sub_->cursor().lapped;
      const Errc r = sub_->poll(std::span<Bar>(buf, max_bars), n);
      lapped = sub_->cursor().lapped - before;
      if (r != Errc::ok) path = sub_->series().path();
      return r;
    });
    check(e, sub_closed_(path));
    std::size_t end = n;
    if (end > 0 && !(buf[end - 1].flags & flag::closed)) --end;  // the bar in progress comes again
    return py::make_tuple(a[py::slice(0, static_cast<py::ssize_t>(end), 1)], lapped);
  }

  const char* wait(double timeout_s) {
    std::optional<WaitResult> r = locked_([&] {
      return sub_ ? std::optional(sub_->wait(seconds(timeout_s))) : std::nullopt;
    });
    if (!r) raise(Errc::invalid_argument, "subscription closed");
    return wait_name(*r);
  }

  std::uint64_t cursor() { return field_([](const Cursor& c) { return c.next; }); }
  std::uint64_t lapped() { return field_([](const Cursor& c) { return c.lapped; }); }
  void close() {
    locked_([&] { sub_.reset(); });
  }

 private:
  // The GIL goes first: a thread blocked on mu_ must not hold it while another waits.
  template <class F>
  auto locked_(F f) -> decltype(f()) {
    py::gil_scoped_release nogil;
    std::lock_guard lock(mu_);
    return f();
  }
  template <class F>
  std::uint64_t field_(F f) {
    std::optional<std::uint64_t> v = locked_([&] { return sub_ ? std::optional(f(sub_->cursor())) : std::nullopt; });
    if (!v) raise(Errc::invalid_argument, "subscription closed");
    return *v;
  }
  static std::string sub_closed_(const std::string& path) { return path.empty() ? "subscription closed" : path; }

  std::mutex mu_;
  std::optional<Subscription> sub_;
};

py::list consumers(const std::string& instance, const std::string& shm_dir) {
  std::vector<ConsumerInfo> list;
  check(list_consumers(OpenOptions{instance, shm_dir}, list), registry_path(OpenOptions{instance, shm_dir}));
  py::list out;
  for (const auto& c : list) {
    py::dict d;
    d["name"] = c.name;
    d["series_id"] = c.series_id;
    d["pid"] = c.pid;
    d["alive"] = c.alive;
    d["cursor"] = c.cursor;
    d["reads"] = c.reads;
    d["lapped"] = c.lapped;
    d["waiting"] = c.waiting;
    out.append(d);
  }
  return out;
}

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
      meta["writer_state"] = s.writer_state() == WriterState::alive     ? "alive"
                             : s.writer_state() == WriterState::stalled ? "stalled"
                                                                        : "dead";
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

  py::class_<ViewGuard, std::shared_ptr<ViewGuard>>(m, "ViewGuard")
      .def("valid", &ViewGuard::valid)
      .def_readonly("first_index", &ViewGuard::first)
      .def_property_readonly("mapping_begin", &ViewGuard::mapping_begin)
      .def_property_readonly("mapping_end", &ViewGuard::mapping_end);

  py::class_<PySeries>(m, "Series")
      .def(py::init<const std::string&, const std::string&, const std::string&>(), py::arg("series_id"),
           py::arg("instance") = std::string(kDefaultInstance), py::arg("shm_dir") = std::string(kDefaultShmDir))
      .def("latest", &PySeries::latest)
      .def("window", &PySeries::window, py::arg("n"), py::arg("closed_only") = true)
      .def("_view", &PySeries::view, py::arg("n"))
      .def("wait", &PySeries::wait, py::arg("timeout") = 1.0, py::arg("seen") = py::none())
      .def("updates", [](PySeries& p) { return p.s().updates(); })
      .def("head", [](PySeries& p) { return p.s().head(); })
      .def("amends", [](PySeries& p) { return load_field(p.s().header().amends, std::memory_order_acquire); })
      .def("is_fresh", &PySeries::is_fresh, py::arg("max_age") = 5.0)
      .def("writer_state", &PySeries::writer_state)
      .def("exchange_now_ms", &PySeries::exchange_now_ms)
      .def("update_age", [](PySeries& p) { return std::chrono::duration<double>(p.s().update_age()).count(); })
      .def("heartbeat_age", [](PySeries& p) { return std::chrono::duration<double>(p.s().heartbeat_age()).count(); })
      .def("restarted", [](PySeries& p) { return p.s().restarted(); })
      .def("refresh", [](PySeries& p) { check(p.s().refresh(), p.s().path()); })
      .def("stats", [](PySeries& p) {
        py::dict d;
        for (std::size_t i = 0; i < static_cast<std::size_t>(Stat::count_); ++i)
          d[py::str(std::string(kStatNames[i]))] = p.s().stat(static_cast<Stat>(i));
        return d;
      })
      .def_property_readonly("generation", [](PySeries& p) { return p.s().generation(); })
      .def_property_readonly("interval", [](PySeries& p) { return p.s().interval_s(); })
      .def_property_readonly("symbol", [](PySeries& p) { return std::string(p.s().symbol()); })
      .def_property_readonly("series_id", [](PySeries& p) { return std::string(p.s().id()); })
      .def_property_readonly("instance", [](PySeries& p) { return std::string(p.s().instance()); })
      .def_property_readonly("capacity", [](PySeries& p) { return p.s().capacity(); })
      .def_property_readonly("path", [](PySeries& p) { return p.s().path(); });

  py::class_<PySubscription>(m, "Subscription")
      .def(py::init<const std::string&, const std::string&, const std::string&, const std::string&>(),
           py::arg("name"), py::arg("series_id"), py::arg("instance") = std::string(kDefaultInstance),
           py::arg("shm_dir") = std::string(kDefaultShmDir))
      .def("poll", &PySubscription::poll, py::arg("max_bars") = 4096)
      .def("wait", &PySubscription::wait, py::arg("timeout") = 1.0)
      .def_property_readonly("cursor", &PySubscription::cursor)
      .def_property_readonly("lapped", &PySubscription::lapped)
      .def("close", &PySubscription::close);

  m.def("consumers", &consumers, py::arg("instance") = std::string(kDefaultInstance),
        py::arg("shm_dir") = std::string(kDefaultShmDir));

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
