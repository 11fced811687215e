// mdshm-synthetic-writer: a stand-in for mdshmd in the inspector and install tests. Publishes a
// few series on one instance through the real publisher (lock, registry, heartbeat thread): some
// closed history, then the bar in progress updated every 50 ms, bars rolling on wall-clock time.
// Prints "ready <pid>" once every segment is up; runs until SIGTERM/SIGINT (or kill -9, on purpose).
//
//   mdshm-synthetic-writer --instance NAME [--shm-dir DIR] [--history N] [--series id:SYMBOL:interval_s:capacity]...
//
// Bar k of a series (k = bar index) is deterministic, so tests can check values:
//   open = base + k, high = base + k + 1, low = base + k - 1, close = base + k + 0.5,
//   volume = 1.5, trades = 3; every 10th history bar is flagged backfilled|reconciled.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/detail/proc.hpp"
#include "publish/publisher.hpp"
#include "series_spec_arg.hpp"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using mdshm::test::parse_spec;

double base_price(const std::string& symbol) { return symbol.rfind("BTC", 0) == 0 ? 24000.0 : 1900.0; }

mdshm::Bar make_bar(const mdshm::publish::SeriesSpec& spec, std::uint64_t k, std::int64_t open_ms, std::uint32_t flags) {
  mdshm::Bar b{};
  const double p = base_price(spec.symbol) + static_cast<double>(k);
  b.open_time_ms = open_ms;
  b.open = p;
  b.high = p + 1;
  b.low = p - 1;
  b.close = p + 0.5;
  b.volume = 1.5;
  b.quote_volume = 1.5 * p;
  b.trade_count = 3;
  b.first_trade_id = static_cast<std::int64_t>(k) * 3;
  b.last_trade_id = b.first_trade_id + 2;
  b.flags = flags;
  return b;
}

std::int64_t floor_to(std::int64_t t_ms, std::uint32_t interval_s) {
  const std::int64_t len = std::int64_t{interval_s} * 1000;
  return t_ms / len * len;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"synthetic mdshm writer for tests"};
  mdshm::publish::PublisherOptions opt;
  std::vector<std::string> series_args;
  std::uint64_t history = 30;
  app.add_option("--instance", opt.segments.instance)->required();
  app.add_option("--shm-dir", opt.segments.shm_dir);
  app.add_option("--history", history, "closed bars before the bar in progress");
  app.add_option("--series", series_args, "id:SYMBOL:interval_s:capacity (default: the five, capacity 256)");
  std::uint64_t not_repaired = 0;
  app.add_option("--not-repaired", not_repaired, "flag this many of the newest history bars not_repaired");
  std::uint64_t store_state = 0, store_pending = 0;
  app.add_option("--store-state", store_state, "Stat::store_state to publish (2 failing, 3 unavailable)");
  app.add_option("--store-pending", store_pending, "Stat::store_pending_bars to publish (last errno ENOSPC)");
  std::int64_t exchange_offset_ms = 0;
  app.add_option("--exchange-offset-ms", exchange_offset_ms, "Stat::exchange_offset_ms to publish (may be negative)");
  CLI11_PARSE(app, argc, argv);
  if (series_args.empty())
    series_args = {"eth_ticks:ETHUSDT:1:256", "eth_1m:ETHUSDT:60:256", "eth_1h:ETHUSDT:3600:256",
                   "eth_1d:ETHUSDT:86400:256", "btc_ticks:BTCUSDT:1:256"};
  std::vector<mdshm::publish::SeriesSpec> specs;
  for (const auto& s : series_args) specs.push_back(parse_spec(s));

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  mdshm::publish::Publisher pub(opt, specs);

  const auto now_ms = [] { return static_cast<std::int64_t>(mdshm::detail::wall_ns() / 1'000'000); };
  std::vector<std::uint64_t> next_k(specs.size(), 0);
  std::vector<std::int64_t> open_ms(specs.size(), 0);
  std::vector<mdshm::Bar> current(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto& w = pub.at(i);
    const std::int64_t step = std::int64_t{specs[i].interval_s} * 1000;
    const std::int64_t now_open = floor_to(now_ms(), specs[i].interval_s);
    std::uint64_t k = w.head();  // a restarted writer continues the indices it re-attached to
    for (std::uint64_t h = history; h > 0; --h) {
      const std::uint32_t flags = mdshm::flag::closed | (k % 10 == 0 ? mdshm::flag::backfilled | mdshm::flag::reconciled : 0) |
                                  (h <= not_repaired ? mdshm::flag::not_repaired : 0);
      w.publish(make_bar(specs[i], k++, now_open - static_cast<std::int64_t>(h) * step, flags));
      w.add_stat(mdshm::Stat::bars_closed);
    }
    w.set_stat(mdshm::Stat::store_state, store_state);
    w.set_stat(mdshm::Stat::exchange_offset_ms, static_cast<std::uint64_t>(exchange_offset_ms));
    if (store_pending) {
      w.set_stat(mdshm::Stat::store_pending_bars, store_pending);
      w.set_stat(mdshm::Stat::store_write_errors, 3);
      w.set_stat(mdshm::Stat::store_last_errno, ENOSPC);
    }
    current[i] = make_bar(specs[i], k, now_open, mdshm::flag::in_progress);
    w.publish(current[i]);
    next_k[i] = k + 1;
    open_ms[i] = now_open;
  }
  std::printf("ready %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);

  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::int64_t now = now_ms();
    for (std::size_t i = 0; i < specs.size(); ++i) {
      auto& w = pub.at(i);
      const std::int64_t now_open = floor_to(now, specs[i].interval_s);
      if (now_open > open_ms[i]) {  // close the bar, start the next
        current[i].flags = mdshm::flag::closed;
        w.publish(current[i]);
        w.add_stat(mdshm::Stat::bars_closed);
        current[i] = make_bar(specs[i], next_k[i]++, now_open, mdshm::flag::in_progress);
        open_ms[i] = now_open;
      } else {
        current[i].trade_count += 1;
        current[i].volume += 0.25;
      }
      current[i].update_wall_ns = 0;
      w.publish(current[i]);
      w.add_stat(mdshm::Stat::trades);
      w.add_stat(mdshm::Stat::frames);
      w.record_latency(20'000 + 1000 * (current[i].trade_count % 7));  // 20-26 us: p50/p99 land in bucket 14
    }
  }
  return 0;
}
