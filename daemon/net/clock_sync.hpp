// Offset between the exchange's clock and ours, from GET /api/v3/time, at start and periodically.
// offset = serverTime - (local send + local receive) / 2; of the recent samples the one with the
// shortest round trip is trusted (its midpoint guess has the smallest possible error, NTP-style).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/tls_options.hpp"

namespace mdshm::net {

class RestClient;

struct ClockSample {
  std::int64_t offset_ns = 0;  // exchange - local
  std::int64_t rtt_ns = 0;
  std::int64_t taken_wall_ns = 0;
};

// Pure: keeps the last `keep` samples and answers with the best one.
class ClockOffsetEstimator {
 public:
  explicit ClockOffsetEstimator(std::size_t keep = 8) : keep_(keep) {}
  void add(ClockSample s);
  std::optional<ClockSample> best() const;

 private:
  std::size_t keep_;
  std::deque<ClockSample> samples_;
};

// serverTime (ms) from the body of /api/v3/time; nullopt if the body is not that.
std::optional<std::int64_t> parse_server_time_ms(std::string_view body);

struct ClockSyncOptions {
  std::string target = "/api/v3/time";
  std::chrono::milliseconds interval{5 * 60'000};
  int weight = 1;
};

class ClockSync {
 public:
  // Called after each attempt: the sample, or nullopt and why.
  using Handler = std::function<void(std::optional<ClockSample>, std::string_view error)>;

  ClockSync(boost::asio::io_context& ioc, RestClient& rest, ClockSyncOptions options = {},
            Handler on_update = {});
  ~ClockSync();
  void start();  // queries now, then every interval; feeds the offset to the RestClient too
  void stop();
  std::optional<std::int64_t> offset_ns() const;  // nullopt until the first good sample
  std::uint64_t failures() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mdshm::net
