// All of the simulator's Boost.Beast code lives in this one translation unit: Beast with OpenSSL
// is slow to compile. One io_context on one thread: sessions share the market, the clock and the
// fault state without locks.
#include "server.hpp"

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <memory>
#include <sstream>

#include "faults.hpp"
#include "rest.hpp"

namespace mdshm::sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using SslStream = beast::ssl_stream<beast::tcp_stream>;
using Ws = websocket::stream<SslStream>;
using Clock = std::chrono::steady_clock;

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- the certificate generated for the run --------------------------------------------------

struct Pem {
  std::string ca_cert, server_cert, server_key;
};

template <class F>
std::string to_pem(F write) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return s;
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

X509* make_cert(EVP_PKEY* key, EVP_PKEY* signer, X509* issuer, bool ca, long serial) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  const char* cn = ca ? "mdshm-sim test CA" : "127.0.0.1";
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509* iss = issuer ? issuer : x;
  bool ok = add_ext(x, iss, NID_subject_key_identifier, "hash");
  if (ca) {
    ok = ok && add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
         add_ext(x, iss, NID_ext_key_usage, "serverAuth") &&
         add_ext(x, iss, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost") &&
         add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
  }
  if (!ok || X509_sign(x, signer, EVP_sha256()) == 0) {
    X509_free(x);
    return nullptr;
  }
  return x;
}

std::optional<Pem> generate_certificates() {
  EVP_PKEY* ca_key = EVP_EC_gen("P-256");
  EVP_PKEY* srv_key = EVP_EC_gen("P-256");
  X509* ca = ca_key ? make_cert(ca_key, ca_key, nullptr, true, 1) : nullptr;
  X509* srv = ca && srv_key ? make_cert(srv_key, ca_key, ca, false, 2) : nullptr;
  std::optional<Pem> pem;
  if (srv) {
    pem = Pem{to_pem([&](BIO* b) { PEM_write_bio_X509(b, ca); }),
              to_pem([&](BIO* b) { PEM_write_bio_X509(b, srv); }),
              to_pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, srv_key, nullptr, nullptr, 0, nullptr, nullptr); })};
  }
  X509_free(srv);
  X509_free(ca);
  EVP_PKEY_free(srv_key);
  EVP_PKEY_free(ca_key);
  return pem;
}

// ---- replay clock -----------------------------------------------------------------------------

class ReplayClock {
 public:
  ReplayClock(std::int64_t start_ms, double speed) : start_ms_(start_ms), speed_(speed), fast_ms_(start_ms) {}
  std::int64_t now() const {
    if (speed_ <= 0) return fast_ms_;
    const double elapsed = std::chrono::duration<double, std::milli>(Clock::now() - t0_).count();
    return start_ms_ + static_cast<std::int64_t>(elapsed * speed_);
  }
  // As-fast-as-read mode: the clock is the newest event sent.
  void sent(std::int64_t t) {
    if (speed_ <= 0 && t > fast_ms_) fast_ms_ = t;
  }
  // Wall time until the clock reaches t (zero if it has).
  Clock::duration until(std::int64_t t) const {
    if (speed_ <= 0) return Clock::duration::zero();
    const std::int64_t ahead = t - now();
    if (ahead <= 0) return Clock::duration::zero();
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(ahead / speed_));
  }

 private:
  std::int64_t start_ms_;
  double speed_;
  std::int64_t fast_ms_;
  Clock::time_point t0_ = Clock::now();
};

// ---- the server ----------------------------------------------------------------------------------

class Server;

struct WsSession {
  explicit WsSession(Ws&& s) : ws(std::move(s)) {}
  Ws ws;
  std::deque<std::string> urgent;  // sent before the next event (serverShutdown)
  bool closed = false;
};

class Server {
 public:
  Server(asio::io_context& io, const ServerOptions& o, Market& m, const std::vector<ReplayFrame>& r)
      : io_(io), opt_(o), market_(m), replay_(r), ssl_(ssl::context::tls_server), clock_(o.start_ms, o.speed) {}

  int start();

 private:
  awaitable<void> accept_loop(tcp::acceptor acceptor);
  awaitable<void> connection(tcp::socket socket);
  awaitable<void> serve_rest(SslStream& stream, const http::request<http::string_body>& req, bool& keep);
  awaitable<void> websocket_session(std::shared_ptr<WsSession> s, std::vector<std::string> streams);
  awaitable<void> ws_writer(std::shared_ptr<WsSession> s, std::vector<std::string> streams);
  awaitable<void> ws_control(std::shared_ptr<WsSession> s);
  awaitable<void> control_loop(tcp::acceptor acceptor);
  awaitable<void> control_client(tcp::socket socket);
  awaitable<void> fault_script(std::vector<std::pair<double, std::string>> script);
  ControlActions actions();
  void log_request(const std::string& method, std::string_view target, int status);
  std::size_t quote_unmatched();

  asio::io_context& io_;
  const ServerOptions& opt_;
  Market& market_;
  const std::vector<ReplayFrame>& replay_;
  ssl::context ssl_;
  ReplayClock clock_;
  Faults faults_;
  WeightMeter weight_;
  std::list<std::weak_ptr<WsSession>> sessions_;
  std::ofstream request_log_;
  std::ofstream send_log_;
  std::uint64_t frames_sent_ = 0, rest_requests_ = 0, ws_connections_ = 0;
};

template <class Duration>
awaitable<void> sleep_for(Duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(use_awaitable);
}

ControlActions Server::actions() {
  ControlActions a;
  a.drop_all = [this] {
    int n = 0;
    for (auto& w : sessions_)
      if (auto s = w.lock(); s && !s->closed) {
        s->closed = true;
        beast::error_code ec;
        beast::get_lowest_layer(s->ws).socket().shutdown(tcp::socket::shutdown_both, ec);
        beast::get_lowest_layer(s->ws).socket().close(ec);
        ++n;
      }
    return n;
  };
  a.shutdown_all = [this] {
    int n = 0;
    for (auto& w : sessions_)
      if (auto s = w.lock(); s && !s->closed) {
        s->urgent.push_back("{\"e\":\"serverShutdown\",\"E\":" + std::to_string(clock_.now()) + "}");
        ++n;
      }
    return n;
  };
  a.clock_ms = [this] { return clock_.now(); };
  a.stats = [this] {
    int open = 0;
    for (auto& w : sessions_)
      if (auto s = w.lock(); s && !s->closed) ++open;
    return "ws_open=" + std::to_string(open) + " ws_total=" + std::to_string(ws_connections_) +
           " frames=" + std::to_string(frames_sent_) + " rest=" + std::to_string(rest_requests_) +
           " quote_unmatched=" + std::to_string(quote_unmatched());
  };
  return a;
}

std::size_t Server::quote_unmatched() {
  std::size_t n = 0;
  for (auto& series : market_.all()) n += series->quote_unmatched();
  return n;
}

void Server::log_request(const std::string& method, std::string_view target, int status) {
  if (!request_log_.is_open()) return;
  request_log_ << clock_.now() << ' ' << status << ' ' << method << ' ' << target << '\n';
  request_log_.flush();
}

int Server::start() {
  const auto pem = generate_certificates();
  if (!pem) {
    std::cerr << "mdshm-sim: could not generate the TLS certificate\n";
    return 1;
  }
  const std::string chain = pem->server_cert + pem->ca_cert;
  ssl_.use_certificate_chain(asio::buffer(chain));
  ssl_.use_private_key(asio::buffer(pem->server_key), ssl::context::pem);
  if (!opt_.ca_out.empty()) {
    const std::string tmp = opt_.ca_out + ".tmp";
    std::ofstream(tmp) << pem->ca_cert;
    std::error_code ec;
    std::filesystem::rename(tmp, opt_.ca_out, ec);
    if (ec) {
      std::cerr << "mdshm-sim: cannot write CA certificate to " << opt_.ca_out << ": " << ec.message() << "\n";
      return 1;
    }
  }
  for (auto [path, stream] : {std::pair{&opt_.request_log, &request_log_}, std::pair{&opt_.send_log, &send_log_}}) {
    if (path->empty()) continue;
    stream->open(*path, std::ios::app);
    if (!*stream) {
      std::cerr << "mdshm-sim: cannot open " << *path << "\n";
      return 1;
    }
  }
  std::vector<std::pair<double, std::string>> script;
  if (!opt_.faults_file.empty()) {
    std::ifstream in(opt_.faults_file);
    if (!in) {
      std::cerr << "mdshm-sim: cannot open fault script " << opt_.faults_file << "\n";
      return 1;
    }
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream ls(line);
      double at = 0;
      std::string rest;
      if (!(ls >> at) || !std::getline(ls >> std::ws, rest) || rest.empty()) {
        std::cerr << "mdshm-sim: " << opt_.faults_file << ":" << n << ": expected '<seconds> <command>'\n";
        return 1;
      }
      script.emplace_back(at, rest);
    }
  }
  const auto loopback = asio::ip::make_address("127.0.0.1");
  tcp::acceptor acceptor(io_);
  beast::error_code ec;
  acceptor.open(tcp::v4(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind({loopback, opt_.port}, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "mdshm-sim: cannot listen on 127.0.0.1:" << opt_.port << ": " << ec.message() << "\n";
    return 1;
  }
  const auto port = acceptor.local_endpoint().port();
  if (opt_.control_port >= 0) {
    tcp::acceptor control(io_);
    control.open(tcp::v4(), ec);
    if (!ec) control.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) control.bind({loopback, static_cast<std::uint16_t>(opt_.control_port)}, ec);
    if (!ec) control.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::cerr << "mdshm-sim: cannot listen on control port " << opt_.control_port << ": " << ec.message() << "\n";
      return 1;
    }
    std::cout << "control=127.0.0.1:" << control.local_endpoint().port() << std::endl;
    asio::co_spawn(io_, control_loop(std::move(control)), asio::detached);
  }
  asio::co_spawn(io_, accept_loop(std::move(acceptor)), asio::detached);
  if (!script.empty()) asio::co_spawn(io_, fault_script(std::move(script)), asio::detached);
  std::cout << "listening ws=wss://127.0.0.1:" << port << " rest=https://127.0.0.1:" << port << std::endl;
  return 0;
}

awaitable<void> Server::accept_loop(tcp::acceptor acceptor) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;
    }
    asio::co_spawn(io_, connection(std::move(socket)), asio::detached);
  }
}

awaitable<void> Server::connection(tcp::socket socket) {
  if (faults_.blacked_out()) {
    beast::error_code ec;
    socket.close(ec);  // the client sees its TLS handshake fail, as when the network is down
    co_return;
  }
  try {
    SslStream stream(std::move(socket), ssl_);
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    co_await stream.async_handshake(ssl::stream_base::server, use_awaitable);
    beast::flat_buffer buffer;
    for (bool keep = true; keep;) {
      http::request<http::string_body> req;
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(120));
      co_await http::async_read(stream, buffer, req, use_awaitable);
      if (faults_.blacked_out()) break;  // a keep-alive connection dies with the network too
      if (websocket::is_upgrade(req)) {
        const auto streams = parse_stream_target(std::string_view(req.target().data(), req.target().size()));
        if (!streams) {
          http::response<http::string_body> res{http::status::bad_request, req.version()};
          res.set(http::field::content_type, "application/json");
          res.body() = "{\"code\":-1121,\"msg\":\"expected /stream?streams=a/b/c\"}";
          res.prepare_payload();
          co_await http::async_write(stream, res, use_awaitable);
          co_return;
        }
        beast::get_lowest_layer(stream).expires_never();
        auto session = std::make_shared<WsSession>(Ws(std::move(stream)));
        session->ws.set_option(websocket::stream_base::timeout{std::chrono::seconds(10), websocket::stream_base::none(), false});
        co_await session->ws.async_accept(req, use_awaitable);
        co_await websocket_session(session, *streams);
        co_return;
      }
      if (faults_.rest_down()) break;  // no answer: the connection just closes
      if (faults_.trigger_blackout(std::string_view(req.target().data(), req.target().size()))) {
        actions().drop_all();
        break;
      }
      co_await serve_rest(stream, req, keep);
    }
    beast::error_code ec;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
  } catch (const std::exception&) {
    // The peer went away or spoke nonsense: nothing to do but drop the connection.
  }
}

awaitable<void> Server::serve_rest(SslStream& stream, const http::request<http::string_body>& req, bool& keep) {
  ++rest_requests_;
  const std::string target(req.target().data(), req.target().size());
  const std::string method(req.method_string().data(), req.method_string().size());
  if (faults_.rest_slow_ms > 0) co_await sleep_for(std::chrono::milliseconds(faults_.rest_slow_ms));
  http::response<http::string_body> res{http::status::ok, req.version()};
  res.set(http::field::server, "mdshm-sim");
  res.set(http::field::content_type, "application/json;charset=UTF-8");
  RestFault fault;
  int weight_after = 0;
  if (faults_.next_rest_error(fault)) {
    res.result(static_cast<unsigned>(fault.status));
    res.body() = fault.status == 429   ? "{\"code\":-1003,\"msg\":\"Too many requests (injected).\"}"
                 : fault.status == 418 ? "{\"code\":-1003,\"msg\":\"Way too many requests; IP banned (injected).\"}"
                                       : "{\"code\":-1000,\"msg\":\"An unknown error occurred (injected).\"}";
    if (fault.retry_after_s > 0) res.set(http::field::retry_after, std::to_string(fault.retry_after_s));
    weight_after = weight_.add(wall_ms(), 0);
  } else if (req.method() != http::verb::get) {
    res.result(http::status::method_not_allowed);
    res.body() = "{\"code\":-1000,\"msg\":\"GET only.\"}";
  } else {
    RestReply reply = handle_rest(market_, target, clock_.now());
    weight_after = weight_.add(wall_ms(), reply.weight);
    if (weight_after > opt_.weight_limit) {
      res.result(http::status::too_many_requests);
      res.set(http::field::retry_after, std::to_string(60 - (wall_ms() / 1000) % 60));
      res.body() = "{\"code\":-1003,\"msg\":\"Too much request weight used.\"}";
    } else {
      res.result(static_cast<unsigned>(reply.status));
      res.body() = std::move(reply.body);
    }
  }
  res.set("X-MBX-USED-WEIGHT-1M", std::to_string(weight_after));
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  log_request(method, target, static_cast<int>(res.result_int()));
  keep = req.keep_alive();
  if (faults_.rest_partial > 0) {
    --faults_.rest_partial;
    std::ostringstream os;
    os << res;
    const std::string whole = os.str();
    const std::size_t cut = whole.size() - res.body().size() / 2;
    co_await asio::async_write(stream, asio::buffer(whole.data(), cut), use_awaitable);
    keep = false;
    beast::error_code ec;
    beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ec);
    co_return;
  }
  co_await http::async_write(stream, res, use_awaitable);
}

awaitable<void> Server::websocket_session(std::shared_ptr<WsSession> s, std::vector<std::string> streams) {
  ++ws_connections_;
  sessions_.remove_if([](const std::weak_ptr<WsSession>& w) { return w.expired(); });
  sessions_.push_back(s);
  asio::co_spawn(io_, ws_writer(s, std::move(streams)), asio::detached);
  asio::co_spawn(io_, ws_control(s), asio::detached);
  // The reader: answers the client's pings (Beast does) and notices pongs and closes. A stall is a
  // dead link: ws_control shuts the receiving side, so the client's pings go unanswered too; the
  // socket closes only when the stall is over (a dead link sends no FIN either).
  try {
    beast::flat_buffer buf;
    for (;;) {
      buf.clear();
      co_await s->ws.async_read(buf, use_awaitable);
    }
  } catch (const std::exception&) {
  }
  while (faults_.stalled() && !s->closed) co_await sleep_for(std::chrono::milliseconds(20));
  if (!s->closed) {
    s->closed = true;
    beast::error_code ec;
    beast::get_lowest_layer(s->ws).socket().close(ec);
  }
}

awaitable<void> Server::ws_writer(std::shared_ptr<WsSession> s, std::vector<std::string> streams) {
  StreamCursor cursor(market_, replay_, streams, clock_.now());
  std::string held;  // an aggTrade frame held back by the reorder fault
  constexpr auto kTick = std::chrono::milliseconds(20);
  auto send = [&](const std::string& frame) -> awaitable<void> {
    // The benchmark's "sent" stamp: taken as the frame goes to TLS and the socket.
    if (send_log_.is_open())
      if (const auto a = frame.find("\"e\":\"aggTrade\""); a != std::string::npos)
        if (const auto id = frame.find("\"a\":", a); id != std::string::npos)
          send_log_ << std::strtoll(frame.c_str() + id + 4, nullptr, 10) << ' ' << realtime_ns() << '\n';
    s->ws.text(true);
    co_await s->ws.async_write(asio::buffer(frame), use_awaitable);
    ++frames_sent_;
  };
  try {
    while (!s->closed) {
      if (faults_.stalled() || faults_.quiet()) {
        co_await sleep_for(kTick);
        continue;
      }
      if (!s->urgent.empty()) {
        const std::string m = std::move(s->urgent.front());
        s->urgent.pop_front();
        co_await send(m);
        continue;
      }
      const auto t = cursor.next_time();
      if (!t) {
        if (!held.empty()) co_await send(std::exchange(held, {}));
        co_await sleep_for(kTick * 5);
        continue;
      }
      if (const auto wait = clock_.until(*t); wait > Clock::duration::zero()) {
        co_await sleep_for(std::min<Clock::duration>(wait, kTick));
        continue;
      }
      Event e = cursor.pop();
      clock_.sent(e.time_ms);
      if (e.frame.empty()) continue;
      if (faults_.malformed > 0) {
        --faults_.malformed;
        std::string bad = e.frame;
        for (auto& c : bad)
          if (c == ':') c = ';';
        co_await send(bad);
      }
      if (faults_.truncate > 0) {
        --faults_.truncate;
        co_await send(e.frame.substr(0, e.frame.size() / 2));
      }
      if (e.agg_trade) {
        if (faults_.hole > 0) {
          --faults_.hole;
          continue;
        }
        if (faults_.reorder > 0 && held.empty()) {
          held = std::move(e.frame);
          continue;
        }
        if (!held.empty()) {
          --faults_.reorder;
          co_await send(e.frame);
          co_await send(std::exchange(held, {}));
          continue;
        }
        if (faults_.duplicate > 0) {
          --faults_.duplicate;
          co_await send(e.frame);
        }
      }
      co_await send(e.frame);
      // Yield now and then so one fast connection does not starve the rest of the loop.
      if (frames_sent_ % 64 == 0) co_await asio::post(co_await asio::this_coro::executor, use_awaitable);
    }
  } catch (const std::exception&) {
  }
  if (!s->closed) {
    s->closed = true;
    beast::error_code ec;
    beast::get_lowest_layer(s->ws).socket().close(ec);
  }
}

// Pings, the pong deadline and the maximum lifetime: every control frame from one coroutine, so
// no two are ever in flight (Beast's rule).
awaitable<void> Server::ws_control(std::shared_ptr<WsSession> s) {
  using namespace std::chrono;
  const auto born = Clock::now();
  const auto lifetime = duration_cast<Clock::duration>(duration<double>(opt_.max_conn_lifetime_s));
  const auto ping_every = duration_cast<Clock::duration>(duration<double>(opt_.ping_interval_s));
  const auto pong_within = duration_cast<Clock::duration>(duration<double>(opt_.pong_timeout_s));
  auto last_pong = Clock::now();
  std::optional<Clock::time_point> unanswered_since;
  s->ws.control_callback([&last_pong, &unanswered_since](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::pong) {
      last_pong = Clock::now();
      unanswered_since.reset();
    }
  });
  auto next_ping = born + ping_every;
  try {
    while (!s->closed) {
      co_await sleep_for(milliseconds(20));
      if (faults_.stalled()) {
        beast::error_code ec;  // the dead link of a stall: nothing the client sends is read
        beast::get_lowest_layer(s->ws).socket().shutdown(tcp::socket::shutdown_receive, ec);
      }
      const auto now = Clock::now();
      if (now - born >= lifetime) {
        co_await s->ws.async_close(websocket::close_code::normal, use_awaitable);
        break;
      }
      if (unanswered_since && now - *unanswered_since >= pong_within) {
        s->closed = true;
        beast::error_code ec;
        beast::get_lowest_layer(s->ws).socket().close(ec);
        break;
      }
      if (now >= next_ping && !faults_.stalled()) {
        next_ping = now + ping_every;
        if (!unanswered_since) unanswered_since = now;
        co_await s->ws.async_ping(websocket::ping_data("mdshm-sim"), use_awaitable);
      }
    }
  } catch (const std::exception&) {
  }
  s->ws.control_callback();
  if (!s->closed) {
    s->closed = true;
    beast::error_code ec;
    beast::get_lowest_layer(s->ws).socket().close(ec);
  }
}

awaitable<void> Server::control_loop(tcp::acceptor acceptor) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(io_, control_client(std::move(socket)), asio::detached);
  }
}

awaitable<void> Server::control_client(tcp::socket socket) {
  try {
    asio::streambuf buf(4096);  // bounded: a line longer than this ends the connection
    for (;;) {
      const std::size_t n = co_await asio::async_read_until(socket, buf, '\n', use_awaitable);
      std::string line(asio::buffers_begin(buf.data()), asio::buffers_begin(buf.data()) + static_cast<long>(n));
      buf.consume(n);
      const std::string reply = apply_command(line, faults_, actions()) + "\n";
      co_await asio::async_write(socket, asio::buffer(reply), use_awaitable);
    }
  } catch (const std::exception&) {
  }
}

awaitable<void> Server::fault_script(std::vector<std::pair<double, std::string>> script) {
  const auto t0 = Clock::now();
  for (const auto& [at, command] : script) {
    const auto when = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(at));
    if (when > Clock::now()) co_await sleep_for(when - Clock::now());
    std::cerr << "mdshm-sim: fault script at " << at << "s: " << command << " -> "
              << apply_command(command, faults_, actions()) << "\n";
  }
}

}  // namespace

int run_server(const ServerOptions& options, Market& market, const std::vector<ReplayFrame>& replay) {
  asio::io_context io(1);
  Server server(io, options, market, replay);
  if (const int rc = server.start(); rc != 0) return rc;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  io.run();
  return 0;
}

}  // namespace mdshm::sim
