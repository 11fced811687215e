// Series (reads, zero-copy views, wait) and Subscription for Python. Blocking calls release the
// GIL and run on objects no other Python call touches at the same time.
#include <memory>
#include <mutex>
#include <optional>

#include "common.hpp"

namespace mdshm::python {
namespace {

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
  const char* writer_state() const { return writer_name(s_->writer_state()); }
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
  check(list_consumers(OpenOptions{instance, shm_dir}, list), consumers_dir(OpenOptions{instance, shm_dir}));
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

}  // namespace

void bind_series(py::module_& m) {
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

}

}  // namespace mdshm::python
