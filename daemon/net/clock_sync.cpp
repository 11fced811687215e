#include "net/clock_sync.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <simdjson.h>

#include "net/rest_client.hpp"

namespace mdshm::net {

void ClockOffsetEstimator::add(ClockSample s) {
  samples_.push_back(s);
  while (samples_.size() > keep_) samples_.pop_front();
}

std::optional<ClockSample> ClockOffsetEstimator::best() const {
  std::optional<ClockSample> out;
  for (const auto& s : samples_)
    if (!out || s.rtt_ns < out->rtt_ns) out = s;
  return out;
}

std::optional<std::int64_t> parse_server_time_ms(std::string_view body) {
  simdjson::ondemand::parser parser;
  simdjson::padded_string padded(body);
  simdjson::ondemand::document doc;
  if (parser.iterate(padded).get(doc)) return std::nullopt;
  std::int64_t ms = 0;
  if (doc["serverTime"].get_int64().get(ms) || ms <= 0) return std::nullopt;
  return ms;
}

struct ClockSync::Impl : std::enable_shared_from_this<Impl> {
  Impl(boost::asio::io_context& io, RestClient& r, ClockSyncOptions o, Handler h)
      : rest(r), opt(std::move(o)), on_update(std::move(h)), timer(io) {}

  RestClient& rest;
  ClockSyncOptions opt;
  Handler on_update;
  boost::asio::steady_timer timer;
  ClockOffsetEstimator estimator;
  std::uint64_t failures = 0;
  bool running = false;

  void query() {
    rest.get(opt.target, opt.weight, [self = shared_from_this()](RestResponse r) {
      if (!self->running) return;
      self->on_response(r);
      self->timer.expires_after(self->opt.interval);
      self->timer.async_wait([self](boost::system::error_code ec) {
        if (!ec && self->running) self->query();
      });
    });
  }

  void on_response(const RestResponse& r) {
    std::string error;
    std::optional<std::int64_t> server_ms;
    if (!r.ok())
      error = std::string("time query failed: ") + to_string(r.error) + ": " + r.message;
    else if (!(server_ms = parse_server_time_ms(r.body)))
      error = "time query: no serverTime in body";
    if (!error.empty()) {
      ++failures;
      if (on_update) on_update(std::nullopt, error);
      return;
    }
    ClockSample s;
    s.rtt_ns = r.recv_wall_ns - r.sent_wall_ns;
    s.offset_ns = *server_ms * 1'000'000 - (r.sent_wall_ns + s.rtt_ns / 2);
    s.taken_wall_ns = r.recv_wall_ns;
    estimator.add(s);
    rest.set_clock_offset_ns(estimator.best()->offset_ns);
    if (on_update) on_update(s, {});
  }
};

ClockSync::ClockSync(boost::asio::io_context& ioc, RestClient& rest, ClockSyncOptions options,
                     Handler on_update)
    : impl_(std::make_shared<Impl>(ioc, rest, std::move(options), std::move(on_update))) {}
ClockSync::~ClockSync() { stop(); }

void ClockSync::start() {
  if (impl_->running) return;
  impl_->running = true;
  impl_->query();
}
void ClockSync::stop() {
  impl_->running = false;
  impl_->timer.cancel();
}
std::optional<std::int64_t> ClockSync::offset_ns() const {
  if (auto b = impl_->estimator.best()) return b->offset_ns;
  return std::nullopt;
}
std::uint64_t ClockSync::failures() const { return impl_->failures; }

}  // namespace mdshm::net
