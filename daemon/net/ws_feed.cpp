// All of the WebSocket's Beast code lives in this one translation unit: Beast + SSL templates
// take long to compile, and the rest of the daemon includes only ws_feed.hpp.
#include "net/ws_feed.hpp"

#include <cstring>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include "net/tls_context.hpp"
#include "net/url.hpp"

namespace mdshm::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct Connection {
  Connection(asio::io_context& ioc, std::shared_ptr<asio::ssl::context> tls_ctx, std::uint64_t conn_id)
      : id(conn_id), tls(std::move(tls_ctx)), ws(ioc, *tls), resolver(ioc), watchdog(ioc),
        pinger(ioc), lifetime(ioc) {}

  std::uint64_t id;
  std::shared_ptr<asio::ssl::context> tls;  // outlives the stream built on it
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws;
  tcp::resolver resolver;
  beast::flat_buffer buffer;  // flat: a frame is one contiguous string_view, no copy
  asio::steady_timer watchdog, pinger, lifetime;
  bool open = false;     // WebSocket handshake done
  bool dead = false;     // failed or being dropped by us: its completions are ignored
  bool delivered = false;
  bool ping_in_flight = false;
  SteadyTime last_frame{};
  SteadyTime opened_at{};
};
using ConnPtr = std::shared_ptr<Connection>;

}  // namespace

std::string combined_stream_target(const std::vector<std::string>& streams) {
  std::string target = "/stream?streams=";
  for (std::size_t i = 0; i < streams.size(); ++i) {
    if (i) target += '/';
    target += streams[i];
  }
  return target;
}

struct WsFeed::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, WsFeedOptions o, FrameHandler f, EventHandler e)
      : ioc(io), opt(std::move(o)), on_frame(std::move(f)), on_event(std::move(e)),
        backoff(opt.backoff), limiter(opt.connect_rate), reconnect_timer(io) {}

  asio::io_context& ioc;
  WsFeedOptions opt;
  FrameHandler on_frame;
  EventHandler on_event;
  std::shared_ptr<asio::ssl::context> tls;
  Url url;
  std::string host_header, target;
  Backoff backoff;
  ConnectRateLimiter limiter;
  asio::steady_timer reconnect_timer;
  bool connect_scheduled = false;
  bool running = false;
  ConnPtr primary;    // the connection the feed counts on
  ConnPtr candidate;  // during a rotation: the new one, until it delivers its first frame
  std::uint64_t next_id = 1;
  WsFeedStats stats;

  static SteadyTime now() { return std::chrono::steady_clock::now(); }

  void emit(WsEvent::Kind kind, const ConnPtr& c, std::string_view reason, bool feed_lost = false,
            bool rotation = false, std::uint64_t previous = 0) {
    if (!running || !on_event) return;
    WsEvent ev{kind, c ? c->id : 0, previous, rotation, feed_lost, reason};
    on_event(ev);
  }

  void schedule_connect(Duration delay) {
    if (!running || connect_scheduled) return;
    connect_scheduled = true;
    reconnect_timer.expires_after(delay);
    reconnect_timer.async_wait([self = shared_from_this()](error_code ec) {
      self->connect_scheduled = false;
      if (!ec && self->running) self->try_connect();
    });
  }

  void try_connect() {
    const bool as_candidate = primary && primary->open && !candidate;
    if (primary && !as_candidate) return;  // a connect is already under way
    if (const auto wait = limiter.acquire(now()); wait > Duration::zero()) {
      ++stats.rate_limited;
      schedule_connect(wait);
      return;
    }
    auto c = std::make_shared<Connection>(ioc, tls, next_id++);
    (as_candidate ? candidate : primary) = c;
    ++stats.connect_attempts;
    beast::get_lowest_layer(c->ws).expires_after(opt.connect_timeout);
    c->resolver.async_resolve(
        url.host, std::to_string(url.port),
        [self = shared_from_this(), c](error_code ec, tcp::resolver::results_type results) {
          if (c->dead) return;
          if (ec) return self->lose(c, "resolve " + self->url.host + ": " + ec.message());
          beast::get_lowest_layer(c->ws).async_connect(
              results, [self, c](error_code ec2, const tcp::endpoint&) { self->on_tcp(c, ec2); });
        });
  }

  void on_tcp(const ConnPtr& c, error_code ec) {
    if (c->dead) return;
    if (ec) return lose(c, "connect: " + ec.message());
    std::string err;
    if (!detail::prepare_tls_stream(c->ws.next_layer(), url.host, opt.tls.verify_peer, err))
      return lose(c, err);
    c->ws.next_layer().async_handshake(asio::ssl::stream_base::client,
                                       [self = shared_from_this(), c](error_code ec2) {
                                         self->on_tls(c, ec2);
                                       });
  }

  void on_tls(const ConnPtr& c, error_code ec) {
    if (c->dead) return;
    if (ec) return lose(c, "TLS handshake: " + ec.message());
    // From here the WebSocket's own timeouts govern; tcp_stream's must be off (Beast's rule).
    beast::get_lowest_layer(c->ws).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = opt.connect_timeout;  // also bounds the closing handshake
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;  // our own pinger and frame watchdog do this job
    c->ws.set_option(t);
    c->ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "mdshmd");
    }));
    c->ws.read_message_max(opt.max_frame_bytes);
    // Beast answers pings by itself while a read is pending. A ping or pong shows the connection
    // alive as much as a data frame does: a quiet market sends no data for minutes, and that is
    // no reason to reconnect (and open a gap). The callback lives in c->ws, so c outlives it.
    Impl* raw = this;
    Connection* conn = c.get();
    c->ws.control_callback([raw, conn](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) ++raw->stats.pings_received;
      if (kind == websocket::frame_type::pong) ++raw->stats.pongs_received;
      conn->last_frame = now();
    });
    c->ws.async_handshake(host_header, target, [self = shared_from_this(), c](error_code ec2) {
      self->on_open(c, ec2);
    });
  }

  void on_open(const ConnPtr& c, error_code ec) {
    if (c->dead) return;
    if (ec) return lose(c, "WebSocket handshake: " + ec.message());
    c->open = true;
    c->last_frame = c->opened_at = now();
    ++stats.connects;
    backoff.on_connected(c->last_frame);
    const bool rotation = c == candidate;
    read(c);
    arm_watchdog(c);
    arm_pinger(c);
    if (c == primary) arm_lifetime(c);
    emit(WsEvent::Kind::connected, c, rotation ? "rotation" : "connected", false, rotation);
  }

  void read(const ConnPtr& c) {
    c->ws.async_read(c->buffer, [self = shared_from_this(), c](error_code ec, std::size_t) {
      self->on_read(c, ec);
    });
  }

  void on_read(const ConnPtr& c, error_code ec) {
    if (c->dead) return;
    if (ec) {
      if (ec == websocket::error::closed) {
        const auto& why = c->ws.reason();
        return lose(c, "closed by server (code " + std::to_string(why.code) + " " +
                           std::string(why.reason.data(), why.reason.size()) + ")");
      }
      return lose(c, "read: " + ec.message());
    }
    const std::int64_t recv_ns = realtime_ns();
    c->last_frame = now();
    // Room for the padding after the frame, zeroed (prepare() may move the data: cdata() after it).
    const auto tail = c->buffer.prepare(kWsFramePadding);
    std::memset(tail.data(), 0, tail.size());
    const auto data = c->buffer.cdata();
    ++stats.frames;
    stats.bytes += data.size();
    if (c->ws.got_text()) {
      if (on_frame && running)
        on_frame(WsFrame{std::string_view(static_cast<const char*>(data.data()), data.size()),
                         recv_ns, c->id, kWsFramePadding});
    } else {
      ++stats.non_text_frames;
    }
    c->buffer.consume(c->buffer.size());
    if (c == candidate && !c->delivered) promote(c);
    c->delivered = true;
    if (running && !c->dead) read(c);
  }

  void promote(ConnPtr c) {
    ConnPtr old = primary;
    primary = c;
    candidate.reset();
    ++stats.rotations;
    arm_lifetime(c);
    if (old) drop(old);
    emit(WsEvent::Kind::rotated, c, "rotation", false, true, old ? old->id : 0);
  }

  // Our decision to end a connection: close politely, ignore everything it reports from now on.
  void drop(const ConnPtr& c) {
    c->dead = true;
    cancel_timers(c);
    if (!c->open) {
      c->resolver.cancel();
      beast::get_lowest_layer(c->ws).close();
      return;
    }
    c->open = false;
    if (c->ping_in_flight) {  // Beast allows one control-frame write at a time: skip the courtesy
      beast::get_lowest_layer(c->ws).close();
      return;
    }
    c->ws.async_close(websocket::close_code::normal, [c](error_code) {
      beast::get_lowest_layer(c->ws).close();
    });
  }

  static void cancel_timers(const ConnPtr& c) {
    c->watchdog.cancel();
    c->pinger.cancel();
    c->lifetime.cancel();
  }

  // The connection failed (or the watchdog gave up on it).
  void lose(const ConnPtr& c, const std::string& reason) {
    const bool was_open = c->open;
    c->dead = true;
    c->open = false;
    cancel_timers(c);
    c->resolver.cancel();
    beast::get_lowest_layer(c->ws).close();
    if (!running) return;
    if (was_open) ++stats.disconnects;

    if (c == candidate) {
      candidate.reset();
      emit(WsEvent::Kind::disconnected, c, reason, false);
      schedule_connect(backoff.next_delay(now()));  // retry the rotation later
      return;
    }
    if (c != primary) return;
    if (candidate && candidate->open) {
      // The rotation's new connection was already subscribed: it saw everything the old one missed.
      emit(WsEvent::Kind::disconnected, c, reason, false);
      promote(candidate);
      return;
    }
    primary.reset();
    emit(WsEvent::Kind::disconnected, c, reason, true);
    if (candidate) {  // still connecting: let it become the primary
      primary = std::move(candidate);
      candidate.reset();
      return;
    }
    schedule_connect(backoff.next_delay(now()));
  }

  void arm_watchdog(const ConnPtr& c) {
    c->watchdog.expires_at(c->last_frame + opt.stall_timeout);
    c->watchdog.async_wait([self = shared_from_this(), c](error_code ec) {
      if (ec || c->dead || !self->running) return;
      if (now() - c->last_frame < self->opt.stall_timeout) return self->arm_watchdog(c);
      const std::string reason =
          "stall: no frame for " + std::to_string(self->opt.stall_timeout.count()) + " ms";
      if (c == self->primary) {
        ++self->stats.stalls;
        self->emit(WsEvent::Kind::stalled, c, reason, true);
      }
      self->lose(c, reason);
    });
  }

  void arm_pinger(const ConnPtr& c) {
    // Pinged at least three times per stall_timeout, a live connection always answers in time.
    c->pinger.expires_after(std::min(opt.ping_interval, opt.stall_timeout / 3));
    c->pinger.async_wait([self = shared_from_this(), c](error_code ec) {
      if (ec || c->dead) return;
      if (!c->ping_in_flight) {
        c->ping_in_flight = true;
        ++self->stats.pings_sent;
        c->ws.async_ping({}, [c](error_code) { c->ping_in_flight = false; });
      }
      self->arm_pinger(c);
    });
  }

  void arm_lifetime(const ConnPtr& c) {
    c->lifetime.expires_at(c->opened_at + opt.max_lifetime);
    c->lifetime.async_wait([self = shared_from_this(), c](error_code ec) {
      if (!ec && !c->dead && c == self->primary) self->rotate();
    });
  }

  void rotate() {
    if (!running || candidate || !primary || !primary->open) return;
    schedule_connect(Duration::zero());
  }

  void stop() {
    running = false;
    reconnect_timer.cancel();
    for (ConnPtr* c : {&primary, &candidate}) {
      if (*c) drop(*c);
      c->reset();
    }
  }
};

WsFeed::WsFeed(asio::io_context& ioc, WsFeedOptions options, FrameHandler on_frame,
               EventHandler on_event)
    : impl_(std::make_shared<Impl>(ioc, std::move(options), std::move(on_frame),
                                   std::move(on_event))) {}

WsFeed::~WsFeed() { impl_->stop(); }

std::string WsFeed::start() {
  auto& d = *impl_;
  if (d.running) return {};
  auto parsed = parse_url(d.opt.url);
  if (!parsed.ok()) return parsed.error;
  if (parsed.url.scheme != "wss") return "WebSocket URL must be wss://: " + d.opt.url;
  if (d.opt.streams.empty()) return "no streams to subscribe to";
  std::string err;
  d.tls = detail::make_client_tls_context(d.opt.tls, err);
  if (!d.tls) return err;
  d.url = std::move(parsed.url);
  d.host_header = d.url.port == 443 ? d.url.host : d.url.host + ":" + std::to_string(d.url.port);
  d.target = combined_stream_target(d.opt.streams);
  d.running = true;
  d.schedule_connect(Duration::zero());
  return {};
}

void WsFeed::stop() { impl_->stop(); }

void WsFeed::request_rotation(std::string_view) { impl_->rotate(); }

const WsFeedStats& WsFeed::stats() const { return impl_->stats; }

std::uint64_t WsFeed::current_conn_id() const {
  return impl_->primary && impl_->primary->open ? impl_->primary->id : 0;
}

}  // namespace mdshm::net
