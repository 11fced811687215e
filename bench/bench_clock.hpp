// Cycle-accurate timing for the benchmarks: the TSC, calibrated against CLOCK_MONOTONIC.
//
// Why the TSC and not clock_gettime: a vDSO clock_gettime costs ~20 ns here, as much as the
// operations we time (a latch read), while rdtsc costs a few ns. The TSC is usable because the
// CPU reports constant_tsc + nonstop_tsc (checked at start-up: tsc_is_invariant), so it ticks at
// one rate on every core and across processes; cross-core agreement is checked separately by the
// spin bench (one-way latency vs half the round trip measured on one core).
#pragma once

#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace bench {

// Start stamp: lfence keeps earlier instructions from drifting past rdtsc (Linux makes lfence
// dispatch-serialising on AMD too).
inline std::uint64_t tsc_start() {
  _mm_lfence();
  const std::uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}
// End stamp: rdtscp waits for earlier instructions to finish; lfence keeps later ones behind it.
inline std::uint64_t tsc_end() {
  unsigned aux = 0;
  const std::uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}

inline std::uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline bool tsc_is_invariant() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0)
      return line.find(" constant_tsc") != std::string::npos && line.find(" nonstop_tsc") != std::string::npos;
  return false;
}

struct Clock {
  double ticks_per_ns = 1.0;
  std::uint64_t overhead_ticks = 0;  // median cost of an empty tsc_start/tsc_end pair

  double to_ns(double ticks) const { return ticks / ticks_per_ns; }
  std::uint64_t ns_to_ticks(double ns) const { return static_cast<std::uint64_t>(ns * ticks_per_ns); }
  // A measured interval minus the timer's own cost, never negative.
  std::uint64_t net(std::uint64_t t0, std::uint64_t t1) const {
    const std::uint64_t d = t1 - t0;
    return d > overhead_ticks ? d - overhead_ticks : 0;
  }
  void spin_ns(double ns) const {
    const std::uint64_t end = __rdtsc() + ns_to_ticks(ns);
    while (__rdtsc() < end) _mm_pause();
  }

  // Frequency: the median of five 40 ms windows, each bracketed by clock_gettime.
  static Clock calibrate() {
    Clock c;
    std::vector<double> rates;
    for (int i = 0; i < 5; ++i) {
      const std::uint64_t n0 = mono_ns(), t0 = __rdtsc();
      while (mono_ns() - n0 < 40'000'000) {
      }
      const std::uint64_t n1 = mono_ns(), t1 = __rdtsc();
      rates.push_back(static_cast<double>(t1 - t0) / static_cast<double>(n1 - n0));
    }
    std::sort(rates.begin(), rates.end());
    c.ticks_per_ns = rates[rates.size() / 2];
    std::vector<std::uint64_t> empty(20000);
    for (auto& e : empty) {
      const std::uint64_t t0 = tsc_start();
      const std::uint64_t t1 = tsc_end();
      e = t1 - t0;
    }
    std::nth_element(empty.begin(), empty.begin() + empty.size() / 2, empty.end());
    c.overhead_ticks = empty[empty.size() / 2];
    return c;
  }
};

}  // namespace bench
