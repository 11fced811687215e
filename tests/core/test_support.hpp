// Shared by the core suites: unique instance names and cleanup of the files they create.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "mdshm/client.hpp"
#include "publish/publisher.hpp"

namespace mdshm::test {

// A fresh instance name per test, so suites can run in parallel and never touch a live daemon.
inline std::string unique_instance(const char* tag) {
  static int n = 0;
  return std::string("t") + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

// Removes /dev/shm/mdshm.<instance>.* and mdshm.<instance>@* on scope exit.
struct ShmCleanup {
  std::string instance;
  std::string dir = "/dev/shm";
  ~ShmCleanup() {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    const std::string a = "mdshm." + instance + ".", b = "mdshm." + instance + "@";
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind(a, 0) == 0 || name.rfind(b, 0) == 0) {
        std::error_code ec;  // @consumers is a directory
        std::filesystem::remove_all(dir + "/" + name, ec);
      }
    }
    ::closedir(d);
  }
};

inline publish::SeriesSpec spec(const std::string& id, std::uint64_t cap = 64, std::uint32_t interval = 1,
                                const std::string& symbol = "ETHUSDT") {
  return {id, symbol, interval, cap};
}

inline publish::SegmentOptions seg_opts(const std::string& instance) {
  publish::SegmentOptions o;
  o.instance = instance;
  return o;
}

// A bar whose every field is a function of v: any mix of two writes is detectable.
inline Bar make_bar(std::int64_t open_time_ms, std::uint64_t v, std::uint32_t flags = flag::in_progress) {
  Bar b{};
  const double x = static_cast<double>(v);
  b.open_time_ms = open_time_ms;
  b.open = 1000 + x;
  b.high = 1000 + x + 3;
  b.low = 1000 + x - 3;
  b.close = 1000 + x + 1;
  b.volume = x * 7;
  b.quote_volume = x * 11;
  b.taker_buy_volume = x * 3;
  b.taker_buy_quote_volume = x * 5;
  b.trade_count = v;
  b.first_trade_id = static_cast<std::int64_t>(v) * 2;
  b.last_trade_id = static_cast<std::int64_t>(v) * 2 + 1;
  b.update_wall_ns = static_cast<std::int64_t>(v) + 1;
  b.flags = flags;
  return b;
}

inline bool consistent(const Bar& b) {
  const auto v = b.trade_count;
  const double x = static_cast<double>(v);
  return b.open == 1000 + x && b.high == 1000 + x + 3 && b.low == 1000 + x - 3 && b.close == 1000 + x + 1 &&
         b.volume == x * 7 && b.quote_volume == x * 11 && b.taker_buy_volume == x * 3 &&
         b.taker_buy_quote_volume == x * 5 && b.first_trade_id == static_cast<std::int64_t>(v) * 2 &&
         b.last_trade_id == static_cast<std::int64_t>(v) * 2 + 1 &&
         b.update_wall_ns == static_cast<std::int64_t>(v) + 1 && b.low <= b.open && b.open <= b.high &&
         b.low <= b.close && b.close <= b.high;
}

}  // namespace mdshm::test
