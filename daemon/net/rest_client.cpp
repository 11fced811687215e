// All of the REST client's Beast code lives in this one translation unit (see ws_feed.cpp).
#include "net/rest_client.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <deque>
#include <optional>

#include "net/tls_context.hpp"
#include "net/url.hpp"

namespace mdshm::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

int header_int(const http::fields& fields, beast::string_view name) {
  const auto it = fields.find(name);
  if (it == fields.end()) return -1;
  const auto v = it->value();
  int out = -1;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size() && out >= 0 ? out : -1;
}

struct Request {
  std::string target;
  int weight = 1;
  RestClient::Handler done;
  RestResponse result;
  bool stale_retry_used = false;  // one free retry when a reused keep-alive connection was dead
};

}  // namespace

const char* to_string(RestError e) {
  switch (e) {
    case RestError::none: return "none";
    case RestError::setup: return "setup";
    case RestError::network: return "network";
    case RestError::timeout: return "timeout";
    case RestError::truncated: return "truncated";
    case RestError::http_status: return "http_status";
    case RestError::rate_limited: return "rate_limited";
    case RestError::banned: return "banned";
    case RestError::server_error: return "server_error";
    case RestError::stopped: return "stopped";
  }
  return "?";
}

struct RestClient::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io, RestOptions o)
      : ioc(io), opt(std::move(o)), budget(opt.weight), backoff(opt.retry_backoff), resolver(io),
        delay_timer(io) {
    auto parsed = parse_url(opt.base_url);
    if (!parsed.ok()) {
      setup_error = parsed.error;
    } else if (parsed.url.scheme != "https") {
      setup_error = "REST URL must be https://: " + opt.base_url;
    } else {
      url = std::move(parsed.url);
      host_header = url.port == 443 ? url.host : url.host + ":" + std::to_string(url.port);
      tls = detail::make_client_tls_context(opt.tls, setup_error);
    }
  }

  using Stream = beast::ssl_stream<beast::tcp_stream>;

  asio::io_context& ioc;
  RestOptions opt;
  std::string setup_error;
  Url url;
  std::string host_header;
  std::shared_ptr<asio::ssl::context> tls;
  WeightBudget budget;
  Backoff backoff;
  tcp::resolver resolver;
  asio::steady_timer delay_timer;
  std::unique_ptr<Stream> stream;
  bool connected = false;
  int served_on_connection = 0;
  bool busy = false;
  bool stopped = false;
  std::deque<Request> queue;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  http::request<http::empty_body> wire_request;
  std::int64_t clock_offset_ns = 0;
  std::int64_t banned_until_ns = 0;
  std::int64_t not_before_ns = 0;  // 429 Retry-After: the whole IP waits, not one request
  RestStats stats;

  std::int64_t exchange_ms() const { return (realtime_ns() + clock_offset_ns) / 1'000'000; }

  void pump() {
    if (busy || stopped || queue.empty()) return;
    busy = true;
    wait_then_send();
  }

  void wait_then_send() {
    Request& r = queue.front();
    const std::int64_t now = realtime_ns();
    std::int64_t wait_ns = std::max<std::int64_t>({0, banned_until_ns - now, not_before_ns - now});
    const std::int64_t budget_ms = budget.delay_ms(exchange_ms(), r.weight);
    if (budget_ms > 0) ++stats.budget_waits;
    wait_ns = std::max(wait_ns, budget_ms * 1'000'000);
    if (wait_ns <= 0) {
      // Counted here, not on write: a try that never gets a connection (refused, unresolvable)
      // is an attempt too, or an unreachable host would be retried forever.
      ++r.result.attempts;
      ++stats.attempts;
      return send();
    }
    delay_timer.expires_after(std::chrono::nanoseconds(wait_ns));
    delay_timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && !self->stopped) self->wait_then_send();  // re-check: a ban may have started
    });
  }

  void send() {
    if (connected) return write();
    parser.reset();
    served_on_connection = 0;
    ++stats.reconnects;
    stream = std::make_unique<Stream>(ioc, *tls);
    beast::get_lowest_layer(*stream).expires_after(opt.connect_timeout);
    resolver.async_resolve(url.host, std::to_string(url.port),
                           [self = shared_from_this()](error_code ec, tcp::resolver::results_type rs) {
                             if (self->stopped) return;
                             if (ec) return self->failed(ec, "resolve " + self->url.host);
                             beast::get_lowest_layer(*self->stream)
                                 .async_connect(rs, [self](error_code ec2, const tcp::endpoint&) {
                                   self->on_connect(ec2);
                                 });
                           });
  }

  void on_connect(error_code ec) {
    if (stopped) return;
    if (ec) return failed(ec, "connect");
    std::string err;
    if (!detail::prepare_tls_stream(*stream, url.host, opt.tls.verify_peer, err))
      return finish(RestError::setup, err);
    stream->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](error_code e) {
      if (self->stopped) return;
      if (e) return self->failed(e, "TLS handshake");
      self->connected = true;
      self->write();
    });
  }

  void write() {
    Request& r = queue.front();
    budget.on_sent(exchange_ms(), r.weight);
    wire_request = {http::verb::get, r.target, 11};
    wire_request.set(http::field::host, host_header);
    wire_request.set(http::field::user_agent, "mdshmd");
    wire_request.keep_alive(true);
    parser.emplace();
    parser->body_limit(opt.max_body_bytes);
    buffer.clear();
    r.result.sent_wall_ns = realtime_ns();
    beast::get_lowest_layer(*stream).expires_after(opt.request_timeout);
    http::async_write(*stream, wire_request, [self = shared_from_this()](error_code ec, std::size_t) {
      if (self->stopped) return;
      if (ec) return self->failed(ec, "write");
      http::async_read(*self->stream, self->buffer, *self->parser,
                       [self](error_code ec2, std::size_t) { self->on_read(ec2); });
    });
  }

  void drop_connection() {
    if (stream) beast::get_lowest_layer(*stream).close();
    connected = false;
  }

  // Transport trouble: classify, then retry or give up.
  void failed(error_code ec, const std::string& where) {
    Request& r = queue.front();
    const bool reused_and_silent =
        connected && served_on_connection > 0 && !(parser && parser->got_some());
    drop_connection();
    // A keep-alive connection the server already closed fails before any byte comes back: that
    // is not the request's fault, so it gets one immediate retry on a fresh connection.
    if (reused_and_silent && !r.stale_retry_used && ec != beast::error::timeout) {
      r.stale_retry_used = true;
      return send();
    }
    RestError kind = RestError::network;
    if (ec == beast::error::timeout) {
      kind = RestError::timeout;
      ++stats.timeouts;
    } else if (parser && parser->got_some()) {
      kind = RestError::truncated;  // partial_message, eof or reset mid-response
      ++stats.truncated;
    }
    retry_or_finish(kind, where + ": " + ec.message());
  }

  void retry_or_finish(RestError kind, std::string message) {
    Request& r = queue.front();
    if (r.result.attempts >= opt.max_attempts)
      return finish(kind, message + " (after " + std::to_string(r.result.attempts) + " attempts)");
    ++stats.retries;
    const auto delay = backoff.next_delay(std::chrono::steady_clock::now());
    delay_timer.expires_after(delay);
    delay_timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && !self->stopped) self->wait_then_send();
    });
  }

  void on_read(error_code ec) {
    if (stopped) return;
    if (ec) return failed(ec, "read");
    Request& r = queue.front();
    auto res = parser->release();
    ++served_on_connection;
    r.result.recv_wall_ns = realtime_ns();
    r.result.status = static_cast<int>(res.result_int());
    r.result.used_weight_1m = header_int(res.base(), "X-MBX-USED-WEIGHT-1M");
    r.result.retry_after_s = header_int(res.base(), "Retry-After");
    if (r.result.used_weight_1m >= 0) {
      budget.on_used_header(exchange_ms(), r.result.used_weight_1m);
      stats.last_used_weight = r.result.used_weight_1m;
    }
    if (!res.keep_alive()) drop_connection();
    r.result.body = std::move(res.body());
    const int status = r.result.status;
    const std::int64_t now = realtime_ns();
    if (status == 429) {
      ++stats.status_429;
      const std::int64_t wait_ns = r.result.retry_after_s >= 0
                                       ? std::int64_t{r.result.retry_after_s} * 1'000'000'000
                                       : std::int64_t{opt.default_retry_after.count()} * 1'000'000;
      not_before_ns = std::max(not_before_ns, now + wait_ns);
      return retry_or_finish(RestError::rate_limited, "HTTP 429 Too Many Requests");
    }
    if (status == 418) {
      ++stats.status_418;
      const std::int64_t ban_ns =
          std::max(std::int64_t{opt.ban_backoff.count()} * 1'000'000,
                   std::int64_t{std::max(0, r.result.retry_after_s)} * 1'000'000'000);
      banned_until_ns = std::max(banned_until_ns, now + ban_ns);
      return finish(RestError::banned, "HTTP 418: IP banned; holding all requests for " +
                                           std::to_string(ban_ns / 1'000'000) + " ms");
    }
    if (status >= 500) {
      ++stats.status_5xx;
      return retry_or_finish(RestError::server_error, "HTTP " + std::to_string(status));
    }
    if (status >= 400) return finish(RestError::http_status, "HTTP " + std::to_string(status));
    finish(RestError::none, {});
  }

  void finish(RestError kind, std::string message) {
    Request r = std::move(queue.front());
    queue.pop_front();
    busy = false;
    backoff.reset();
    r.result.error = kind;
    r.result.message = std::move(message);
    if (r.done && !stopped) r.done(std::move(r.result));
    pump();
  }

  void stop() {
    stopped = true;
    queue.clear();
    delay_timer.cancel();
    resolver.cancel();
    drop_connection();
  }
};

RestClient::RestClient(asio::io_context& ioc, RestOptions options)
    : impl_(std::make_shared<Impl>(ioc, std::move(options))) {}

RestClient::~RestClient() { impl_->stop(); }

const std::string& RestClient::setup_error() const { return impl_->setup_error; }

void RestClient::get(std::string target, int weight, Handler done) {
  auto& d = *impl_;
  ++d.stats.requests;
  if (!d.setup_error.empty() || d.stopped) {
    RestResponse r;
    r.error = d.stopped ? RestError::stopped : RestError::setup;
    r.message = d.stopped ? "client stopped" : d.setup_error;
    asio::post(d.ioc, [done = std::move(done), r = std::move(r)]() mutable {
      if (done) done(std::move(r));
    });
    return;
  }
  d.queue.push_back(Request{std::move(target), std::max(1, weight), std::move(done), {}, false});
  d.pump();
}

RestResponse RestClient::get_blocking(std::string target, int weight) {
  std::optional<RestResponse> out;
  get(std::move(target), weight, [&out](RestResponse r) { out = std::move(r); });
  if (impl_->ioc.stopped()) impl_->ioc.restart();
  while (!out && !impl_->ioc.stopped()) {
    if (abort_ && abort_->load(std::memory_order_relaxed)) {
      impl_->stop();
      RestResponse r;
      r.error = RestError::stopped;
      r.message = "stopped while waiting for the response";
      return r;
    }
    impl_->ioc.run_one_for(std::chrono::milliseconds(100));
  }
  if (out) return std::move(*out);
  RestResponse r;
  r.error = RestError::stopped;
  r.message = "event loop ran out of work before the response";
  return r;
}

void RestClient::set_clock_offset_ns(std::int64_t offset_ns) { impl_->clock_offset_ns = offset_ns; }
void RestClient::set_weight_budget(int budget) { impl_->budget.set_budget(budget); }
void RestClient::set_abort(const std::atomic<bool>* flag) { abort_ = flag; }
std::int64_t RestClient::banned_until_ns() const {
  return impl_->banned_until_ns > realtime_ns() ? impl_->banned_until_ns : 0;
}
const RestStats& RestClient::stats() const { return impl_->stats; }
void RestClient::stop() { impl_->stop(); }

}  // namespace mdshm::net
