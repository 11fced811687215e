// bench_shm: the shared-memory core's numbers (issue #2, "Benchmarks"; docs/PERFORMANCE.md).
//
//   bench_shm [spin|futex|reads|fanout|memory|idle|all]... [--rounds N] [--quick]
//             [--daemon build/bin/mdshmd --config config/synthetic.toml]
//
// Prints Markdown tables: each row is the median over --rounds of that round's p50/p99/p99.9.
// Every case runs on a scratch instance (bench-<pid>-<n>) whose /dev/shm files are deleted after.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "bench_clock.hpp"
#include "bench_fanout.hpp"
#include "bench_idle.hpp"
#include "bench_latency.hpp"
#include "bench_memory.hpp"
#include "bench_proc.hpp"
#include "bench_reads.hpp"
#include "bench_report.hpp"

int main(int argc, char** argv) {
  CLI::App app{"mdshm shared-memory benchmarks"};
  std::vector<std::string> which;
  int rounds = 5;
  bool quick = false;
  std::string daemon = "build/bin/mdshmd", config = "config/synthetic.toml", hold;
  double daemon_wait = 10, pace_us = 500;
  app.add_option("benches", which, "spin futex reads fanout memory idle (default: all)")
      ->check(CLI::IsMember({"spin", "futex", "reads", "fanout", "memory", "idle", "all"}));
  app.add_option("--rounds", rounds, "repetitions; tables show the median of per-round statistics")
      ->check(CLI::Range(1, 100));
  app.add_flag("--quick", quick, "fewer samples and rounds (a smoke test, not a measurement)");
  app.add_option("--daemon", daemon, "mdshmd binary for the RSS measurement");
  app.add_option("--config", config, "config for that daemon");
  app.add_option("--daemon-wait", daemon_wait, "seconds before reading the daemon's RSS");
  app.add_option("--pace-us", pace_us, "fanout: microseconds between two publishes");
  app.add_option("--hold-publisher", hold, "internal: hold a Publisher on INSTANCE until killed")->group("");
  CLI11_PARSE(app, argc, argv);
  if (!hold.empty()) return bench::hold_publisher(hold);

  std::set<std::string> run(which.begin(), which.end());
  if (run.empty() || run.count("all")) run = {"spin", "futex", "reads", "fanout", "memory", "idle"};
  if (quick) rounds = std::min(rounds, 2);
  const std::size_t div = quick ? 10 : 1;

  if (!bench::tsc_is_invariant()) {
    std::fprintf(stderr, "bench_shm: this CPU has no invariant TSC (constant_tsc + nonstop_tsc); timings would lie\n");
    return 1;
  }
  bench::install_cleanup_handler();
  const auto clk = bench::Clock::calibrate();
  bench::print_machine(clk.ticks_per_ns, clk.to_ns(static_cast<double>(clk.overhead_ticks)));
  std::printf("- rounds: %d%s; tables: median over rounds of each round's statistic\n", rounds,
              quick ? " (--quick: smoke test only)" : "");
  try {
    if (run.count("spin")) bench::bench_spin_visible(clk, rounds, static_cast<int>(20000 / div));
    if (run.count("futex")) bench::bench_futex_wake(clk, rounds, static_cast<int>(2000 / div));
    if (run.count("reads")) bench::bench_reads(clk, rounds, quick ? 0.03 : 0.3);
    if (run.count("fanout")) bench::bench_fanout(clk, std::min(rounds, 3), static_cast<int>(2000 / div), pace_us * 1000);
    if (run.count("memory")) bench::bench_memory(daemon, config, quick ? 3 : daemon_wait);
    if (run.count("idle")) bench::bench_idle(daemon, quick ? 1 : rounds, quick ? 2 : 10);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_shm: %s\n", e.what());
    return 1;
  }
  return 0;
}
