// mdshm watch — a live view of every series of the instance. On a terminal: full screen, refreshed
// in place at 4 Hz, q or Ctrl-C quits. Otherwise (a pipe, a log, the demo): one plain line per
// series every second, until a signal (or --count refreshes).
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "commands.hpp"
#include "json_writer.hpp"
#include "terminal.hpp"

namespace mdshm::inspect {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kWatchMaxAge = 5.0;  // the health column uses check's default rule

struct Row {
  Segment seg;
  std::optional<Status> st;
  double rate = 0;  // updates per second since the previous refresh
  Health health = Health::ok;
  std::vector<Problem> problems;
  std::size_t consumers = 0;
  std::uint64_t max_lag = 0;
};

class Watcher {
 public:
  explicit Watcher(const Options& o) : o_(o) {}

  std::vector<Row> sample() {
    const auto now = Clock::now();
    const std::int64_t wall = now_ms();
    std::vector<Row> rows;
    for (auto& seg : scan(o_.open)) {
      Row r;
      r.seg = std::move(seg);
      if (r.seg.handle) {
        r.st = status_of(*r.seg.handle);
        auto& prev = prev_[r.seg.series];
        const double dt = std::chrono::duration<double>(now - prev.at).count();
        if (prev.seen && dt > 0 && r.st->updates >= prev.updates)
          r.rate = static_cast<double>(r.st->updates - prev.updates) / dt;
        prev = {true, r.st->updates, now};
        for (const auto& c : consumers_of(o_.open, r.seg.series, r.st->head)) {
          ++r.consumers;
          r.max_lag = std::max(r.max_lag, c.lag);
        }
      }
      judge(r.seg, r.st ? &*r.st : nullptr, kWatchMaxAge, wall, r.problems);
      r.health = worst(r.problems);
      rows.push_back(std::move(r));
    }
    return rows;
  }

 private:
  struct Prev {
    bool seen = false;
    std::uint64_t updates = 0;
    Clock::time_point at;
  };
  const Options& o_;
  std::map<std::string, Prev> prev_;
};

std::string screen(const Options& o, const std::vector<Row>& rows, int columns) {
  std::string f = fmt::format("mdshm watch - instance {} ({})   {}   q: quit\n\n", o.open.instance, o.open.shm_dir,
                              iso_time_ms(now_ms()));
  f += fmt::format("{:<12} {:<9} {:>4} {:<21} {:>12} {:>14} {:>7} {:>8} {:>9} {:<6} {:>5} {:>7}\n", "SERIES", "SYMBOL",
                   "INT", "BAR (UTC)", "CLOSE", "VOLUME", "TRADES", "AGE", "RATE/S", "HEALTH", "CONS", "MAXLAG");
  std::vector<const Problem*> problems;
  for (const auto& r : rows) {
    for (const auto& p : r.problems) problems.push_back(&p);
    if (!r.st) {
      f += fmt::format("{:<12} {}\n", r.seg.series, "incompatible: " + r.seg.error_text);
      continue;
    }
    const Status& s = *r.st;
    f += fmt::format("{:<12} {:<9} {:>4} {:<21} {:>12.10g} {:>14.10g} {:>7} {:>8} {:>9.1f} {:<6} {:>5} {:>7}\n",
                     r.seg.series, s.symbol, interval_name(s.interval_s),
                     s.has_latest ? iso_time_ms(s.latest.open_time_ms) : "-", s.latest.close, s.latest.volume,
                     s.latest.trade_count, s.updates ? age_text(s.update_age_s) : "never", r.rate, to_string(r.health),
                     r.consumers, r.max_lag);
  }
  if (rows.empty()) f += fmt::format("(no segments of instance '{}')\n", o.open.instance);
  if (!problems.empty()) f += "\nproblems:\n";
  for (const auto* p : problems)
    f += fmt::format("  {} {}: {}\n", p->severity == Health::failed ? "FAIL" : "STALE", p->series, p->reason);
  // Cut lines to the terminal width: a wrapped line would scroll the screen and break the layout.
  std::string out;
  std::size_t start = 0;
  while (start < f.size()) {
    auto end = f.find('\n', start);
    if (end == std::string::npos) end = f.size();
    out.append(f, start, std::min<std::size_t>(end - start, static_cast<std::size_t>(columns)));
    out += '\n';
    start = end + 1;
  }
  return out;
}

void print_plain(const Options& o, const std::vector<Row>& rows) {
  const std::string now = iso_time_ms(now_ms());
  if (rows.empty()) {
    const std::string msg = fmt::format("no segments of instance '{}' in {}", o.open.instance, o.open.shm_dir);
    if (o.json) {
      JsonWriter j;
      j.begin_object().field("time", now).field("instance", o.open.instance).field("segments", 0);
      j.field("health", std::string(to_string(Health::failed))).field("error", msg).end_object();
      fmt::print("{}\n", j.str());
    } else {
      fmt::print("{} {}\n", now, msg);
    }
  }
  for (const auto& r : rows) {
    if (o.json) {
      JsonWriter j;
      j.begin_object().field("time", now).field("series", r.seg.series).field("compatible", r.st.has_value());
      if (r.st) {
        const Status& s = *r.st;
        j.field("symbol", s.symbol).field("interval", interval_name(s.interval_s)).key("bar_open_time");
        if (s.has_latest) j.value(iso_time_ms(s.latest.open_time_ms));
        else j.null();
        j.field("close", s.latest.close).field("volume", s.latest.volume).field("trades", s.latest.trade_count);
        j.field("update_age_s", s.update_age_s).field("rate_per_s", r.rate);
        j.field("consumers", r.consumers).field("max_lag", r.max_lag);
      } else {
        j.field("error", r.seg.error_text);
      }
      j.field("health", std::string(to_string(r.health))).key("problems").begin_array();
      for (const auto& p : r.problems) j.value(p.reason);
      j.end_array().end_object();
      fmt::print("{}\n", j.str());
      continue;
    }
    if (!r.st) {
      fmt::print("{} {} health={} {}\n", now, r.seg.series, to_string(r.health), r.seg.error_text);
      continue;
    }
    const Status& s = *r.st;
    fmt::print("{} {} {} {} bar={} close={} volume={} trades={} age={} rate={:.1f}/s health={} consumers={} max_lag={}\n",
               now, r.seg.series, s.symbol, interval_name(s.interval_s),
               s.has_latest ? iso_time_ms(s.latest.open_time_ms) : "-", s.latest.close, s.latest.volume,
               s.latest.trade_count, s.updates ? age_text(s.update_age_s) : "never", r.rate, to_string(r.health),
               r.consumers, r.max_lag);
  }
  std::fflush(stdout);
}

}  // namespace

int run_watch(const Options& o, unsigned count) {
  install_stop_signals();
  Watcher w(o);
  // A first sample a moment before the first display, so its update rates are already real.
  w.sample();
  sleep_unless_stopped(std::chrono::milliseconds(200));
  const bool interactive = !o.json && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
  if (!interactive) {
    for (unsigned i = 0; (count == 0 || i < count) && !stop_requested(); ++i) {
      if (i > 0) sleep_unless_stopped(std::chrono::seconds(1));
      if (stop_requested()) break;
      print_plain(o, w.sample());
      if (std::ferror(stdout)) return 1;  // reader of the pipe went away
    }
    return 0;
  }
  FullScreen fs;
  for (unsigned i = 0; (count == 0 || i < count) && !stop_requested(); ++i) {
    fs.draw(screen(o, w.sample(), fs.columns()));
    // ~4 Hz; a key ends the wait early so q feels immediate.
    const auto until = Clock::now() + std::chrono::milliseconds(250);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0 || stop_requested()) break;
      const int key = fs.read_key(left);
      if (key == 'q' || key == 'Q' || key == 3 /* Ctrl-C, ISIG is off */ || key == 4 /* Ctrl-D */) return 0;
    }
  }
  return 0;
}

}  // namespace mdshm::inspect
