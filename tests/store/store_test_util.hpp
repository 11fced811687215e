// Helpers shared by the store suites: a scratch directory and deterministic bars.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/history_store.hpp"

namespace store_test {

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mdshm-store-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline constexpr std::int64_t kBase = 1660435200000;  // 2022-08-14 00:00 UTC, aligned to 1m/1h/1d

// A bar whose every field follows from (open time, version): a loaded bar is intact iff it equals
// make_bar(bar.open_time_ms, bar.last_trade_id).
inline mdshm::Bar make_bar(std::int64_t open_ms, std::int64_t version = 0) {
  mdshm::Bar b{};
  b.open_time_ms = open_ms;
  const double base = 1500.0 + static_cast<double>((open_ms / 1000) % 997) * 0.01;
  b.open = base;
  b.close = base + static_cast<double>(version) * 0.5;
  b.high = b.close + 1.25;
  b.low = base - 0.75;
  b.volume = 10.0 + static_cast<double>(version);
  b.quote_volume = b.volume * base;
  b.taker_buy_volume = 4.0;
  b.taker_buy_quote_volume = 4.0 * base;
  b.trade_count = static_cast<std::uint64_t>(open_ms / 1000 % 100000);
  b.first_trade_id = open_ms / 1000;
  b.last_trade_id = version;
  b.update_wall_ns = open_ms * 1000000 + version;
  b.flags = mdshm::flag::closed;
  return b;
}

inline bool same_bar(const mdshm::Bar& a, const mdshm::Bar& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

inline mdshm::store::StoreOptions options(const std::string& dir, std::uint64_t capacity = 1000,
                                          std::uint32_t interval_s = 60, std::string series = "eth_1m",
                                          std::string symbol = "ETHUSDT") {
  mdshm::store::StoreOptions o;
  o.dir = dir;
  o.instance = "test";
  o.series = {std::move(series), std::move(symbol), interval_s};
  o.capacity = capacity;
  o.fsync = mdshm::store::FsyncPolicy::never;
  return o;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Appends bars at kBase + i * interval for i in [from, to), version 0; throws on error.
inline void append_range(mdshm::store::HistoryStore& s, int from, int to, std::uint32_t interval_s = 60) {
  for (int i = from; i < to; ++i) {
    auto st = s.append(make_bar(kBase + std::int64_t{i} * interval_s * 1000));
    if (!st.ok()) throw std::runtime_error(st.message);
  }
}

// A fresh store of `bars` one-minute bars from kBase in `dir`, returned as the file's bytes.
inline std::string make_store_bytes(const std::string& dir, int bars) {
  {
    auto s = mdshm::store::HistoryStore::open(options(dir));
    append_range(s, 0, bars);
  }
  return read_file(mdshm::store::store_path(dir, "test", "eth_1m"));
}

}  // namespace store_test
