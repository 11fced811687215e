// Serves the metrics over plain HTTP for Prometheus: GET /metrics -> 200 with the exposition,
// any other path 404, other methods 405, a request head over the size bound or slower than the
// timeout -> connection closed. Hand-written on Boost.Asio rather than Beast: a scrape endpoint
// needs only the request line, and this keeps the daemon's HTTP surface tiny. Meant for
// 127.0.0.1: no TLS, no authentication.
//
// Slow and abusive clients cannot take it down: every connection has a deadline for its request
// head and one for the whole exchange, heads are size-bounded, and at the connection limit the
// oldest connection (one still sending its head first, the slowest by construction) is closed to
// admit the new one. A scraper sends its request at once, so a slowloris holding every slot only
// ever evicts itself. Everything runs on one thread of its own, never on the publishing path.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace mdshm::metrics {

struct ExporterOptions {
  std::size_t max_request_bytes = 8192;             // request line + headers; more -> closed
  std::chrono::milliseconds request_timeout{2000};  // to receive the request head
  std::chrono::milliseconds response_timeout{5000}; // to send the response (a client not reading)
  std::size_t max_connections = 64;                 // more at once -> the oldest is closed
};

class MetricsExporter {
 public:
  using RenderFn = std::function<std::string()>;

  // listen: "host:port" with an IP address or "localhost" (port 0: an ephemeral port, see port()).
  // Runs on a thread of its own. Throws std::runtime_error naming the address when it cannot
  // listen (bad address, port in use, permission).
  MetricsExporter(std::string_view listen, RenderFn render, ExporterOptions opt = {});
  // Runs on the caller's io_context, which the caller runs. Destroy the exporter on that
  // context's thread, or after it stopped.
  MetricsExporter(boost::asio::io_context& io, std::string_view listen, RenderFn render, ExporterOptions opt = {});
  ~MetricsExporter();
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;

  std::uint16_t port() const;
  std::uint64_t requests_served() const;   // 200 responses
  std::uint64_t requests_rejected() const; // 404/405, oversized, timed out, malformed, evicted
  std::uint64_t connections_evicted() const;  // closed to make room at the connection limit

 private:
  struct State;
  std::shared_ptr<State> state_;
  struct OwnThread;
  std::unique_ptr<OwnThread> own_;
};

}  // namespace mdshm::metrics
