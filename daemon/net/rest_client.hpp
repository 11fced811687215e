// HTTPS GET against Binance's REST API for backfill and clock sync: one keep-alive connection,
// requests in order, inside the weight budget, honouring 429 Retry-After and 418 bans, retrying
// 5xx, timeouts and truncated bodies a bounded number of times. No Beast in this header.
#pragma once

#include <atomic>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "net/pacing.hpp"
#include "net/tls_options.hpp"

namespace mdshm::net {

struct RestOptions {
  std::string base_url = "https://api.binance.com";  // scheme, host, port; targets are appended
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{10'000};  // write + complete response
  int max_attempts = 5;
  BackoffOptions retry_backoff{std::chrono::milliseconds(250), std::chrono::milliseconds(10'000), 2.0,
                               std::chrono::milliseconds(0)};
  WeightBudgetOptions weight;
  std::chrono::milliseconds ban_backoff{5 * 60'000};        // after a 418, at least this long
  std::chrono::milliseconds default_retry_after{10'000};  // a 429 without Retry-After
  std::size_t max_body_bytes = 32u << 20;
};

enum class RestError {
  none,
  setup,         // bad URL or TLS trust store
  network,       // resolve/connect/TLS/read failed (after retries)
  timeout,       // after retries
  truncated,     // body shorter than announced (after retries)
  http_status,   // a 4xx that retrying cannot fix (status and body are set)
  rate_limited,  // 429 on every attempt
  banned,        // 418: the client now holds all requests until the ban ends
  server_error,  // 5xx on every attempt
  stopped,
};
const char* to_string(RestError e);

struct RestResponse {
  RestError error = RestError::none;
  std::string message;       // why, when error != none
  int status = 0;            // last HTTP status seen, 0 if none
  std::string body;
  int used_weight_1m = -1;   // X-MBX-USED-WEIGHT-1M of the last response, -1 if absent
  int retry_after_s = -1;    // Retry-After of the last response, -1 if absent
  int attempts = 0;
  std::int64_t sent_wall_ns = 0;  // last attempt: request written (CLOCK_REALTIME)
  std::int64_t recv_wall_ns = 0;  // last attempt: response complete
  bool ok() const { return error == RestError::none; }
};

struct RestStats {
  std::uint64_t requests = 0, attempts = 0, retries = 0, reconnects = 0;
  std::uint64_t status_429 = 0, status_418 = 0, status_5xx = 0, truncated = 0, timeouts = 0;
  std::uint64_t budget_waits = 0;  // requests held back to stay inside the weight budget
  int last_used_weight = -1;
};

class RestClient {
 public:
  using Handler = std::function<void(RestResponse)>;

  // Runs on `ioc` (the caller's single-threaded loop); handlers run there, in request order.
  RestClient(boost::asio::io_context& ioc, RestOptions options);
  ~RestClient();  // stops: queued handlers are not called
  RestClient(const RestClient&) = delete;
  RestClient& operator=(const RestClient&) = delete;

  const std::string& setup_error() const;  // empty when URL and TLS setup are fine

  // target: path + query, e.g. "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=1000".
  // weight: what Binance charges for it (used before the response says).
  void get(std::string target, int weight, Handler done);

  // For startup, before the caller runs the loop: drives `ioc` until this request finishes.
  // Must not be called from inside a handler running on `ioc`.
  RestResponse get_blocking(std::string target, int weight);

  // Exchange clock = local wall clock + offset; aligns the weight windows with the exchange's.
  void set_weight_budget(int budget);  // takes effect for the next request
  // get_blocking() returns `stopped` within ~100 ms once *flag is true (SIGTERM during startup).
  void set_abort(const std::atomic<bool>* flag);
  void set_clock_offset_ns(std::int64_t offset_ns);
  // Wall-clock ns until which a 418 holds every request; 0 = not banned.
  std::int64_t banned_until_ns() const;
  const RestStats& stats() const;
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  const std::atomic<bool>* abort_ = nullptr;
};

}  // namespace mdshm::net
