// The HTTP side: an exporter on an ephemeral port answers GET /metrics with the exposition and
// everything else with 404/405; oversized, silent or excess connections are closed without harm.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "exposition_parse.hpp"
#include "metrics/exposition.hpp"
#include "metrics/http_exporter.hpp"
#include "metrics_support.hpp"

using namespace mdshm;
using namespace std::chrono_literals;

namespace {

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until the peer closes (or `timeout`); `closed` says which.
std::string read_all(int fd, std::chrono::milliseconds timeout, bool* closed = nullptr) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + timeout;
  if (closed) *closed = false;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {  // EOF, or a reset from a server that closed with our bytes unread
      if (closed) *closed = true;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string request(std::uint16_t port, const std::string& req) {
  const int fd = connect_to(port);
  if (fd < 0) return "connect failed";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  auto r = read_all(fd, 3s);
  ::close(fd);
  return r;
}

std::string body_of(const std::string& response) {
  const auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : response.substr(p + 4);
}

}  // namespace

TEST_CASE("GET /metrics serves the exposition; other paths 404, other methods 405") {
  std::atomic<int> renders{0};
  metrics::MetricsExporter ex("127.0.0.1:0", [&] {
    ++renders;
    return std::string("# HELP mdshm_up Up\n# TYPE mdshm_up gauge\nmdshm_up{} 1\n");
  });
  REQUIRE(ex.port() != 0);

  const auto ok = request(ex.port(), "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
  CHECK(ok.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(body_of(ok) == "# HELP mdshm_up Up\n# TYPE mdshm_up gauge\nmdshm_up{} 1\n");
  CHECK(ok.find("Content-Length: " + std::to_string(body_of(ok).size()) + "\r\n") != std::string::npos);

  const auto other = request(ex.port(), "GET /other HTTP/1.1\r\nHost: localhost\r\n\r\n");
  CHECK(other.rfind("HTTP/1.1 404 Not Found\r\n", 0) == 0);
  const auto post = request(ex.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  CHECK(post.rfind("HTTP/1.1 405", 0) == 0);
  const auto head = request(ex.port(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(body_of(head).empty());

  CHECK(renders == 2);  // GET and HEAD (for its Content-Length); never 404/405
  CHECK(ex.requests_served() == 2);
  CHECK(ex.requests_rejected() == 2);
}

TEST_CASE("an oversized or silent request is closed and the exporter keeps serving") {
  metrics::ExporterOptions opt;
  opt.max_request_bytes = 1024;
  opt.request_timeout = 300ms;
  metrics::MetricsExporter ex("127.0.0.1:0", [] { return std::string("x 1\n"); }, opt);

  {
    const int fd = connect_to(ex.port());
    REQUIRE(fd >= 0);
    const std::string junk = "GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(64 * 1024, 'A');
    ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);  // may fail half-way once the server closes
    bool closed = false;
    const auto reply = read_all(fd, 3s, &closed);
    CHECK(closed);
    CHECK(reply.find("200 OK") == std::string::npos);
    ::close(fd);
  }
  {
    const int fd = connect_to(ex.port());
    REQUIRE(fd >= 0);
    const auto t0 = std::chrono::steady_clock::now();
    bool closed = false;
    read_all(fd, 3s, &closed);  // says nothing at all
    CHECK(closed);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    ::close(fd);
  }
  CHECK(ex.requests_rejected() == 2);
  CHECK(request(ex.port(), "GET /metrics HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("at the connection limit the oldest idle connection makes room for the new one") {
  metrics::ExporterOptions opt;
  opt.max_connections = 2;
  opt.request_timeout = 5s;
  metrics::MetricsExporter ex("127.0.0.1:0", [] { return std::string("x 1\n"); }, opt);
  const int a = connect_to(ex.port());
  REQUIRE(a >= 0);
  std::this_thread::sleep_for(50ms);
  const int b = connect_to(ex.port());
  REQUIRE(b >= 0);
  std::this_thread::sleep_for(100ms);  // both accepted and holding their slots
  // A scraper arrives: the oldest silent connection goes, the scraper is served.
  const auto r = request(ex.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(r.rfind("HTTP/1.1 200 OK", 0) == 0);
  bool a_closed = false, b_closed = false;
  read_all(a, 1s, &a_closed);
  CHECK(a_closed);
  read_all(b, 200ms, &b_closed);
  CHECK_FALSE(b_closed);
  CHECK(ex.connections_evicted() == 1);
  ::close(a);
  ::close(b);
}

TEST_CASE("a client that never reads its response is dropped at the response deadline") {
  metrics::ExporterOptions opt;
  opt.response_timeout = 300ms;
  const std::string big(32 << 20, 'm');  // far more than the socket buffers hold
  metrics::MetricsExporter ex("127.0.0.1:0", [&] { return big; }, opt);
  const int fd = connect_to(ex.port());
  REQUIRE(fd >= 0);
  const std::string req = "GET /metrics HTTP/1.1\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::this_thread::sleep_for(1500ms);  // reads nothing meanwhile
  CHECK(ex.requests_rejected() == 1);
  ::close(fd);
  CHECK(request(ex.port(), "HEAD /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("listen addresses that cannot work are refused with the address named") {
  auto render = [] { return std::string(); };
  CHECK_THROWS_WITH(metrics::MetricsExporter("nohost:9464", render), Catch::Contains("nohost"));
  CHECK_THROWS_WITH(metrics::MetricsExporter("127.0.0.1:99999", render), Catch::Contains("bad port"));
  CHECK_THROWS_WITH(metrics::MetricsExporter("127.0.0.1", render), Catch::Contains("host:port"));
  metrics::MetricsExporter first("127.0.0.1:0", render);
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());
  CHECK_THROWS_WITH(metrics::MetricsExporter(taken, render), Catch::Contains(taken) && Catch::Contains("bind"));
  metrics::MetricsExporter local("localhost:0", render);
  CHECK(local.port() != 0);
}

TEST_CASE("runs on a caller's io_context") {
  boost::asio::io_context io;
  auto ex = std::make_unique<metrics::MetricsExporter>(io, "127.0.0.1:0", [] { return std::string("y 2\n"); });
  std::thread runner([&] { io.run(); });
  const auto r = request(ex->port(), "GET /metrics HTTP/1.1\r\n\r\n");
  CHECK(body_of(r) == "y 2\n");
  io.stop();
  runner.join();
  ex.reset();
}

TEST_CASE("a scrape of a live instance returns its segments' metrics") {
  test::TestInstance inst("http");
  publish::Publisher pub(inst.publisher_options(), {{"eth_ticks", "ETHUSDT", 1, 32}});
  pub.at(0).add_stat(Stat::frames, 7);
  REQUIRE(pub.at(0).publish(test::bar_at(1000, 1900)));
  const auto where = inst.open_options();
  metrics::MetricsExporter ex("127.0.0.1:0", [&] { return metrics::render_metrics(pub, where); });
  const auto r = request(ex.port(), "GET /metrics HTTP/1.1\r\n\r\n");
  REQUIRE(r.rfind("HTTP/1.1 200 OK", 0) == 0);
  const auto x = test::parse_exposition(body_of(r));
  CHECK(x.errors.empty());
  CHECK(x.value("mdshm_frames_total", {{"series", "eth_ticks"}, {"interval", "1s"}}) == 7.0);
  CHECK(x.value("mdshm_series_head", {{"series", "eth_ticks"}}) == 1.0);
}
