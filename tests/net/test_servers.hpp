// Loopback TLS servers the net tests drive: a combined-stream WebSocket that emits numbered frames
// and an HTTPS server whose replies each test scripts. Beast-free header; Beast is in the .cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mdshm::net::test {

std::string cert_file();
std::string key_file();

// Every connection receives {"n":N} for each tick N = (time since server start) / period, so two
// connections open at once carry the same numbers: a rotation's overlap is visible to the test.
class WsTestServer {
 public:
  explicit WsTestServer(std::chrono::milliseconds period);
  ~WsTestServer();
  std::uint16_t port() const;
  void set_streaming(bool on);  // off = stall, a dead link: connections stay open, no frames, pings unanswered
  void set_quiet(bool on);      // on = no frames, but pings are answered: a live link without data
  void drop_all();              // abrupt TCP close of every connection
  void ping_all();              // server-initiated pings
  int accepted() const;
  int pings_received() const;
  int pongs_received() const;
  std::string last_target() const;
  std::vector<std::chrono::steady_clock::time_point> accept_times() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

struct HttpReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool truncate = false;  // announce the full length, send half the body, close
  std::chrono::milliseconds delay{0};
};

struct HttpSeen {
  std::string target;
  std::int64_t wall_ms;  // CLOCK_REALTIME when the request arrived
  std::chrono::steady_clock::time_point at;
};

class HttpTestServer {
 public:
  using Script = std::function<HttpReply(const HttpSeen& request, int index)>;
  explicit HttpTestServer(Script script);
  ~HttpTestServer();
  std::uint16_t port() const;
  std::vector<HttpSeen> requests() const;
  int connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mdshm::net::test
