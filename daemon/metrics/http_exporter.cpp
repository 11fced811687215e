#include "metrics/http_exporter.hpp"

#include <algorithm>
#include <atomic>
#include <list>
#include <stdexcept>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it (GCC 12)

#include <boost/asio.hpp>

#include "metrics/exposition.hpp"

namespace mdshm::metrics {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

tcp::endpoint parse_listen(std::string_view listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) throw std::runtime_error("metrics.listen '" + std::string(listen) + "': expected host:port");
  std::string host(listen.substr(0, colon));
  const std::string port_text(listen.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned long port = 0;
  std::size_t used = 0;
  try {
    port = std::stoul(port_text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != port_text.size() || port_text.empty() || port > 65535)
    throw std::runtime_error("metrics.listen '" + std::string(listen) + "': bad port '" + port_text + "'");
  error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("metrics.listen '" + std::string(listen) + "': '" + host + "' is not an IP address");
  return {addr, static_cast<std::uint16_t>(port)};
}

std::string response(std::string_view status, std::string_view content_type, const std::string& body, bool head_only) {
  std::string r = "HTTP/1.1 ";
  r += status;
  r += "\r\nContent-Type: ";
  r += content_type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head_only) r += body;
  return r;
}

}  // namespace

struct MetricsExporter::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io, RenderFn r, ExporterOptions o) : acceptor(io), retry(io), render(std::move(r)), opt(o) {}

  struct Connection;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  RenderFn render;
  ExporterOptions opt;
  std::atomic<bool> stopped{false};
  std::atomic<std::uint64_t> served{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> evicted{0};
  // Open connections, oldest first. Touched only on the exporter's thread (or after it stopped).
  std::list<Connection*> live;

  // One exchange: read the head (deadline request_timeout), write the reply (response_timeout).
  enum class Phase { reading, writing, closed };

  struct Connection : std::enable_shared_from_this<Connection> {
    Connection(std::shared_ptr<State> s, tcp::socket sock)
        : state(std::move(s)), socket(std::move(sock)), buffer(state->opt.max_request_bytes),
          timer(socket.get_executor()) {
      pos = state->live.insert(state->live.end(), this);
    }
    ~Connection() { unlist(); }

    std::shared_ptr<State> state;
    tcp::socket socket;
    asio::streambuf buffer;  // its max_size bounds the request head
    asio::steady_timer timer;
    std::string reply;
    Phase phase = Phase::reading;
    std::list<Connection*>::iterator pos;
    bool listed = true;

    void unlist() {
      if (!listed) return;
      state->live.erase(pos);
      listed = false;
    }
    // Pending operations complete with operation_aborted and release the last reference.
    void close() {
      unlist();
      phase = Phase::closed;
      timer.cancel();
      error_code ignored;
      socket.close(ignored);
    }
    void arm(std::chrono::milliseconds limit) {
      timer.expires_after(limit);
      timer.async_wait([self = shared_from_this()](error_code ec) {
        if (ec || self->phase == Phase::closed) return;
        self->state->rejected.fetch_add(1, std::memory_order_relaxed);  // too slow to send or to read
        self->close();
      });
    }

    void start() {
      arm(state->opt.request_timeout);
      asio::async_read_until(socket, buffer, "\r\n\r\n",
                             [self = shared_from_this()](error_code ec, std::size_t) { self->on_request(ec); });
    }

    void on_request(error_code ec) {
      if (phase == Phase::closed) return;
      if (ec || state->stopped.load()) {  // too large (not_found), malformed, closed by the peer
        state->rejected.fetch_add(1, std::memory_order_relaxed);
        close();
        return;
      }
      std::istream in(&buffer);
      std::string method, target, version;
      in >> method >> target >> version;
      const bool head_only = method == "HEAD";
      if (method != "GET" && !head_only) {
        state->rejected.fetch_add(1, std::memory_order_relaxed);
        reply = response("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET /metrics\n", false);
      } else if (target == "/metrics" || target.rfind("/metrics?", 0) == 0) {
        state->served.fetch_add(1, std::memory_order_relaxed);
        reply = response("200 OK", kContentType, state->render(), head_only);
      } else {
        state->rejected.fetch_add(1, std::memory_order_relaxed);
        reply = response("404 Not Found", "text/plain; charset=utf-8", "not found; metrics are at /metrics\n", head_only);
      }
      phase = Phase::writing;
      // Behind the readers in eviction order: this one has done its part.
      unlist();
      pos = state->live.insert(state->live.end(), this);
      listed = true;
      arm(state->opt.response_timeout);
      asio::async_write(socket, asio::buffer(reply), [self = shared_from_this()](error_code, std::size_t) {
        if (self->phase == Phase::closed) return;
        error_code ignored;
        self->socket.shutdown(tcp::socket::shutdown_both, ignored);
        self->close();
      });
    }
  };

  // At the limit: the oldest connection still sending its head goes, else the oldest of all.
  void make_room() {
    while (live.size() >= std::max<std::size_t>(opt.max_connections, 1)) {
      auto victim = std::find_if(live.begin(), live.end(), [](Connection* c) { return c->phase == Phase::reading; });
      if (victim == live.end()) victim = live.begin();
      evicted.fetch_add(1, std::memory_order_relaxed);
      rejected.fetch_add(1, std::memory_order_relaxed);
      (*victim)->close();
    }
  }

  void listen(const tcp::endpoint& ep, std::string_view listen_text) {
    error_code ec;
    auto fail = [&](const char* what) {
      throw std::runtime_error("metrics.listen '" + std::string(listen_text) + "': " + what + ": " + ec.message());
    };
    if (acceptor.open(ep.protocol(), ec)) fail("socket");
    if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec)) fail("SO_REUSEADDR");
    if (acceptor.bind(ep, ec)) fail("bind");
    if (acceptor.listen(asio::socket_base::max_listen_connections, ec)) fail("listen");
  }

  void accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket sock) {
      if (self->stopped.load() || ec == asio::error::operation_aborted) return;
      if (ec) {
        // Out of file descriptors and the like: try again shortly instead of spinning.
        self->retry.expires_after(std::chrono::milliseconds(100));
        self->retry.async_wait([self](error_code e) {
          if (!e) self->accept();
        });
        return;
      }
      self->make_room();
      std::make_shared<Connection>(self, std::move(sock))->start();
      self->accept();
    });
  }

  void stop() {
    stopped.store(true);
    error_code ignored;
    acceptor.close(ignored);
    retry.cancel();
    while (!live.empty()) live.front()->close();
  }
};

struct MetricsExporter::OwnThread {
  asio::io_context io{1};
  std::thread thread;
};

MetricsExporter::MetricsExporter(std::string_view listen, RenderFn render, ExporterOptions opt)
    : own_(std::make_unique<OwnThread>()) {
  state_ = std::make_shared<State>(own_->io, std::move(render), opt);
  state_->listen(parse_listen(listen), listen);
  state_->accept();
  own_->thread = std::thread([io = &own_->io] { io->run(); });
}

MetricsExporter::MetricsExporter(asio::io_context& io, std::string_view listen, RenderFn render, ExporterOptions opt) {
  state_ = std::make_shared<State>(io, std::move(render), opt);
  state_->listen(parse_listen(listen), listen);
  state_->accept();
}

MetricsExporter::~MetricsExporter() {
  if (own_) {
    // Everything (acceptor, connections, render) happens on the exporter's thread: stop it there,
    // then drop whatever connections are still pending with the io_context.
    asio::post(own_->io, [s = state_, io = &own_->io] {
      s->stop();
      io->stop();
    });
    own_->thread.join();
    // State (acceptor, timers) must go before its io_context; handlers still queued in the
    // context hold the last references and release them as the context is destroyed.
    state_.reset();
    own_.reset();
  } else {
    state_->stop();
  }
}

std::uint16_t MetricsExporter::port() const {
  error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}
std::uint64_t MetricsExporter::requests_served() const { return state_->served.load(); }
std::uint64_t MetricsExporter::requests_rejected() const { return state_->rejected.load(); }
std::uint64_t MetricsExporter::connections_evicted() const { return state_->evicted.load(); }

}  // namespace mdshm::metrics
