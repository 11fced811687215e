// mdshm-py-writer: the writer the Python tests read from, through the real publisher (lock,
// registry, heartbeat thread, reclaim of dead consumers every second).
//
//   mdshm-py-writer --instance NAME --shm-dir DIR --series id:SYMBOL:interval_s:capacity ... MODE
//
// --fast: full speed. Bar k of a series, at global update g, holds values that tie every field to
//   (k, g), so a reader that mixes two versions of a bar (torn read) breaks an equation:
//     open_time_ms = kFastEpochMs + k * interval, first_trade_id = k, open = 1000 + k,
//     low = open - 1, close = open + 0.5, high = open + g, volume = trade_count = last_trade_id = g,
//     quote_volume = 2g, taker_buy_volume = 3g, taker_buy_quote_volume = 4g.
//   --updates-per-bar M closes a bar every M updates; --amend-every A rewrites (amends) the bar
//   closed A bars ago after every A-th close, with a new g, as reconciliation would. --rate U
//   paces the writer to U updates per second (0: as fast as it goes).
// --script (default): --history N closed bars ending at the current wall-clock interval, then the
//   bar in progress (unless --no-in-progress), then only heartbeats. Bar values as in --fast with
//   g = k + 1. --gap-every G leaves out every G-th bar, --not-repaired-every R flags every R-th
//   not_repaired, --empty-every E makes every E-th an empty (no-trade) bar. --exit-after-setup
//   exits at once: the segments stay, their writer is dead.
// Prints "ready <pid>" once the segments are up; runs until SIGTERM/SIGINT or --seconds pass.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/detail/proc.hpp"
#include "publish/publisher.hpp"
#include "../inspector/series_spec_arg.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

constexpr std::int64_t kFastEpochMs = 1'600'000'000'000;  // 2020-09-13, a multiple of a day

using mdshm::test::parse_spec;

mdshm::Bar make_bar(std::uint64_t k, std::uint64_t g, std::int64_t open_ms, std::uint32_t flags) {
  mdshm::Bar b{};
  const double open = 1000.0 + static_cast<double>(k), gd = static_cast<double>(g);
  b.open_time_ms = open_ms;
  b.open = open;
  b.low = open - 1;
  b.close = open + 0.5;
  b.high = open + gd;
  b.volume = gd;
  b.quote_volume = 2 * gd;
  b.taker_buy_volume = 3 * gd;
  b.taker_buy_quote_volume = 4 * gd;
  b.trade_count = g;
  b.first_trade_id = static_cast<std::int64_t>(k);
  b.last_trade_id = static_cast<std::int64_t>(g);
  b.update_wall_ns = static_cast<std::int64_t>(mdshm::detail::wall_ns());
  b.flags = flags;
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"writer for the Python tests"};
  mdshm::publish::PublisherOptions opt;
  std::vector<std::string> series_args;
  bool fast = false, no_in_progress = false, exit_after_setup = false;
  std::uint64_t updates_per_bar = 1000, amend_every = 0, history = 30, gap_every = 0, not_repaired_every = 0,
                empty_every = 0;
  double seconds = 0, rate = 0;
  app.add_option("--instance", opt.segments.instance)->required();
  app.add_option("--shm-dir", opt.segments.shm_dir);
  app.add_option("--series", series_args, "id:SYMBOL:interval_s:capacity")->required();
  app.add_flag("--fast", fast);
  app.add_option("--updates-per-bar", updates_per_bar);
  app.add_option("--amend-every", amend_every);
  app.add_option("--history", history);
  app.add_option("--gap-every", gap_every);
  app.add_option("--not-repaired-every", not_repaired_every);
  app.add_option("--empty-every", empty_every);
  app.add_flag("--no-in-progress", no_in_progress);
  app.add_flag("--exit-after-setup", exit_after_setup);
  app.add_option("--rate", rate, "updates per second in --fast (0: unpaced)");
  app.add_option("--seconds", seconds, "stop after this long (0: until SIGTERM)");
  CLI11_PARSE(app, argc, argv);
  std::vector<mdshm::publish::SeriesSpec> specs;
  for (const auto& s : series_args) specs.push_back(parse_spec(s));
  if (updates_per_bar == 0) updates_per_bar = 1;

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  mdshm::publish::Publisher pub(opt, specs);
  const auto start = std::chrono::steady_clock::now();
  const auto over = [&] {
    return g_stop || (seconds > 0 && std::chrono::steady_clock::now() - start > std::chrono::duration<double>(seconds));
  };
  using mdshm::flag::closed, mdshm::flag::in_progress;

  if (!fast) {
    const auto now_ms = static_cast<std::int64_t>(mdshm::detail::wall_ns() / 1'000'000);
    for (std::size_t i = 0; i < specs.size(); ++i) {
      auto& w = pub.at(i);
      const std::int64_t step = std::int64_t{specs[i].interval_s} * 1000;
      const std::int64_t now_open = now_ms / step * step;
      for (std::uint64_t h = history; h > 0; --h) {
        const std::uint64_t k = history - h;
        if (gap_every && k % gap_every == gap_every - 1) continue;
        std::uint32_t flags = closed;
        if (not_repaired_every && k % not_repaired_every == not_repaired_every - 1) flags |= mdshm::flag::not_repaired;
        mdshm::Bar b = make_bar(k, k + 1, now_open - static_cast<std::int64_t>(h) * step, flags);
        if (empty_every && k % empty_every == empty_every - 1) {
          b.flags |= mdshm::flag::empty;
          b.high = b.low = b.open = b.close;
          b.volume = b.quote_volume = b.taker_buy_volume = b.taker_buy_quote_volume = 0;
          b.trade_count = 0;
          b.first_trade_id = b.last_trade_id = -1;
        }
        w.publish(b);
      }
      if (!no_in_progress) w.publish(make_bar(history, history + 1, now_open, in_progress));
    }
    std::printf("ready %d\n", static_cast<int>(::getpid()));
    std::fflush(stdout);
    if (exit_after_setup) ::_exit(0);  // no destructor: the heartbeat just stops, like a crash
    while (!over()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return 0;
  }

  std::vector<std::uint64_t> k(specs.size(), 0), updates(specs.size(), 0);
  std::printf("ready %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);
  std::uint64_t g = 1;
  while (!over()) {
    if (rate > 0) std::this_thread::sleep_until(start + std::chrono::duration<double>(static_cast<double>(g) / rate));
    for (int burst = 0; burst < 1024; ++burst) {
      for (std::size_t i = 0; i < specs.size(); ++i, ++g) {
        auto& w = pub.at(i);
        const std::int64_t step = std::int64_t{specs[i].interval_s} * 1000;
        const std::int64_t open_ms = kFastEpochMs + static_cast<std::int64_t>(k[i]) * step;
        const bool closing = ++updates[i] == updates_per_bar;
        w.publish(make_bar(k[i], g, open_ms, closing ? closed : in_progress));
        if (!closing) continue;
        updates[i] = 0;
        ++k[i];
        w.add_stat(mdshm::Stat::bars_closed);
        if (amend_every && k[i] % amend_every == 0 && k[i] > amend_every) {
          const std::uint64_t idx = k[i] - amend_every;
          w.amend(idx, make_bar(idx, g, kFastEpochMs + static_cast<std::int64_t>(idx) * step,
                                closed | mdshm::flag::reconciled | mdshm::flag::reconcile_diff));
        }
      }
    }
  }
  return 0;
}
