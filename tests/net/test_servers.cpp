#include "test_servers.hpp"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <list>
#include <mutex>
#include <thread>

#include "net/tls_options.hpp"

namespace mdshm::net::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

void load_server_identity(asio::ssl::context& ctx) {
  ctx.use_certificate_chain_file(cert_file());
  ctx.use_private_key_file(key_file(), asio::ssl::context::pem);
}

}  // namespace

std::string cert_file() { return MDSHM_SOURCE_DIR "/tests/net/certs/test_cert.pem"; }
std::string key_file() { return MDSHM_SOURCE_DIR "/tests/net/certs/test_key.pem"; }

// ---------------------------------------------------------------- WebSocket server

struct WsSession : std::enable_shared_from_this<WsSession> {
  WsSession(tcp::socket s, asio::ssl::context& ctx) : ws(std::move(s), ctx), tick(ws.get_executor()) {}
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws;
  asio::steady_timer tick;
  beast::flat_buffer in;
  std::string out;
  std::int64_t next_n = 0;
  bool pinging = false;
};

struct WsTestServer::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(std::chrono::milliseconds p)
      : period(p), ctx(asio::ssl::context::tls_server), acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0}) {
    load_server_identity(ctx);
  }
  std::chrono::milliseconds period;
  asio::io_context ioc;
  asio::ssl::context ctx;
  tcp::acceptor acceptor;
  Clock::time_point t0 = Clock::now();
  std::atomic<bool> streaming{true}, quiet{false};
  std::atomic<int> accepted{0}, pings{0}, pongs{0};
  mutable std::mutex mu;
  std::string last_target;
  std::vector<Clock::time_point> accept_times;
  std::vector<std::weak_ptr<WsSession>> sessions;
  std::thread thread;

  std::int64_t current_n() const { return (Clock::now() - t0) / period; }

  void accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket s) {
      if (ec) return;
      ++self->accepted;
      {
        std::lock_guard lock(self->mu);
        self->accept_times.push_back(Clock::now());
      }
      auto session = std::make_shared<WsSession>(std::move(s), self->ctx);
      self->start(session);
      self->accept();
    });
  }

  void start(const std::shared_ptr<WsSession>& s) {
    s->ws.next_layer().async_handshake(asio::ssl::stream_base::server, [self = shared_from_this(), s](error_code ec) {
      if (ec) return;
      s->ws.control_callback([self](websocket::frame_type kind, beast::string_view) {
        if (kind == websocket::frame_type::ping) ++self->pings;
        if (kind == websocket::frame_type::pong) ++self->pongs;
      });
      auto req = std::make_shared<http::request<http::string_body>>();
      http::async_read(s->ws.next_layer(), s->in, *req, [self, s, req](error_code ec2, std::size_t) {
        if (ec2) return;
        {
          std::lock_guard lock(self->mu);
          self->last_target = std::string(req->target());
          self->sessions.push_back(s);
        }
        s->ws.async_accept(*req, [self, s](error_code ec3) {
          if (ec3) return;
          self->read(s);
          s->next_n = self->current_n() + 1;
          self->tick(s);
        });
      });
    });
  }

  void read(const std::shared_ptr<WsSession>& s) {
    s->ws.async_read(s->in, [self = shared_from_this(), s](error_code ec, std::size_t) {
      if (ec) return;
      s->in.consume(s->in.size());
      self->read(s);
    });
  }

  void tick(const std::shared_ptr<WsSession>& s) {
    s->tick.expires_at(t0 + s->next_n * period);
    s->tick.async_wait([self = shared_from_this(), s](error_code ec) {
      if (ec) return;
      if (!self->streaming || self->quiet) {
        s->next_n = self->current_n() + 1;
        return self->tick(s);
      }
      s->out = "{\"n\":" + std::to_string(s->next_n) + "}";
      ++s->next_n;
      s->ws.text(true);
      s->ws.async_write(asio::buffer(s->out), [self, s](error_code ec2, std::size_t) {
        if (!ec2) self->tick(s);
      });
    });
  }

  template <class F>
  void for_each_session(F f) {
    asio::post(ioc, [self = shared_from_this(), f] {
      std::lock_guard lock(self->mu);
      for (auto& w : self->sessions)
        if (auto s = w.lock()) f(*s);
    });
  }
};

WsTestServer::WsTestServer(std::chrono::milliseconds period) : impl_(std::make_shared<Impl>(period)) {
  impl_->accept();
  impl_->thread = std::thread([i = impl_] { i->ioc.run(); });
}
WsTestServer::~WsTestServer() {
  impl_->ioc.stop();
  impl_->thread.join();
}
std::uint16_t WsTestServer::port() const { return impl_->acceptor.local_endpoint().port(); }
void WsTestServer::set_streaming(bool on) {
  impl_->streaming = on;
  if (on) return;
  impl_->for_each_session([](WsSession& s) {  // nothing the client sends is read: pings go unanswered
    error_code ec;
    beast::get_lowest_layer(s.ws).socket().shutdown(tcp::socket::shutdown_receive, ec);
  });
}
void WsTestServer::set_quiet(bool on) { impl_->quiet = on; }
void WsTestServer::drop_all() {
  impl_->for_each_session([](WsSession& s) {
    error_code ec;
    beast::get_lowest_layer(s.ws).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(s.ws).socket().close(ec);
    s.tick.cancel();
  });
}
void WsTestServer::ping_all() {
  impl_->for_each_session([](WsSession& s) {
    if (s.pinging) return;
    s.pinging = true;
    s.ws.async_ping("srv", [&s](error_code) { s.pinging = false; });
  });
}
int WsTestServer::accepted() const { return impl_->accepted; }
int WsTestServer::pings_received() const { return impl_->pings; }
int WsTestServer::pongs_received() const { return impl_->pongs; }
std::string WsTestServer::last_target() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_target;
}
std::vector<Clock::time_point> WsTestServer::accept_times() const {
  std::lock_guard lock(impl_->mu);
  return impl_->accept_times;
}

// ---------------------------------------------------------------- HTTPS server
// Blocking, one thread per connection: the simplest server that can misbehave on cue.

struct HttpTestServer::Impl {
  explicit Impl(Script s)
      : script(std::move(s)), ctx(asio::ssl::context::tls_server), acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0}) {
    load_server_identity(ctx);
  }
  Script script;
  asio::io_context ioc;
  asio::ssl::context ctx;
  tcp::acceptor acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<int> connections{0};
  mutable std::mutex mu;
  std::vector<HttpSeen> seen;
  std::list<std::pair<int, std::thread>> sessions;  // native fd, thread
  std::thread accept_thread;

  void accept_loop() {
    for (;;) {
      tcp::socket sock(ioc);
      error_code ec;
      acceptor.accept(sock, ec);
      if (stopping || ec) return;
      ++connections;
      std::lock_guard lock(mu);
      const int fd = sock.native_handle();
      sessions.emplace_back(fd, std::thread([this, s = std::move(sock)]() mutable { serve(std::move(s)); }));
    }
  }

  void serve(tcp::socket sock) {
    asio::ssl::stream<tcp::socket> tls(std::move(sock), ctx);
    error_code ec;
    tls.handshake(asio::ssl::stream_base::server, ec);
    if (ec) return;
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::empty_body> req;
      http::read(tls, buf, req, ec);
      if (ec || stopping) return;
      HttpSeen s{std::string(req.target()), realtime_ns() / 1'000'000, Clock::now()};
      int index = 0;
      {
        std::lock_guard lock(mu);
        index = static_cast<int>(seen.size());
        seen.push_back(s);
      }
      const HttpReply reply = script(s, index);
      if (reply.delay.count() > 0) std::this_thread::sleep_for(reply.delay);
      if (reply.truncate) {
        std::string raw = "HTTP/1.1 " + std::to_string(reply.status) + " OK\r\nContent-Length: " +
                          std::to_string(reply.body.size()) + "\r\n";
        for (const auto& [k, v] : reply.headers) raw += k + ": " + v + "\r\n";
        raw += "\r\n" + reply.body.substr(0, reply.body.size() / 2);
        asio::write(tls, asio::buffer(raw), ec);
        tls.lowest_layer().close(ec);
        return;
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
      for (const auto& [k, v] : reply.headers) res.set(k, v);
      res.body() = reply.body;
      res.keep_alive(true);
      res.prepare_payload();
      http::write(tls, res, ec);
      if (ec) return;
    }
  }
};

HttpTestServer::HttpTestServer(Script script) : impl_(std::make_unique<Impl>(std::move(script))) {
  impl_->accept_thread = std::thread([i = impl_.get()] { i->accept_loop(); });
}
HttpTestServer::~HttpTestServer() {
  impl_->stopping = true;
  {  // wake the blocking accept
    asio::io_context io;
    tcp::socket s(io);
    error_code ec;
    s.connect({asio::ip::make_address("127.0.0.1"), port()}, ec);
  }
  impl_->accept_thread.join();
  std::list<std::pair<int, std::thread>> sessions;
  {
    std::lock_guard lock(impl_->mu);
    sessions.swap(impl_->sessions);
  }
  for (auto& [fd, t] : sessions) {
    ::shutdown(fd, SHUT_RDWR);
    t.join();
  }
}
std::uint16_t HttpTestServer::port() const { return impl_->acceptor.local_endpoint().port(); }
std::vector<HttpSeen> HttpTestServer::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->seen;
}
int HttpTestServer::connections() const { return impl_->connections; }

}  // namespace mdshm::net::test
