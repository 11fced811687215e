#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <charconv>
#include <map>
#include <set>

#include "net/ws_feed.hpp"
#include "test_servers.hpp"

using namespace mdshm::net;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Runs the loop until `done` or the deadline; true if done.
template <class Pred>
bool run_until(boost::asio::io_context& ioc, Pred done, std::chrono::milliseconds limit = 5s) {
  const auto deadline = Clock::now() + limit;
  while (!done() && Clock::now() < deadline) {
    if (ioc.stopped()) ioc.restart();
    ioc.run_for(5ms);
  }
  return done();
}

std::int64_t frame_number(std::string_view text) {
  constexpr std::string_view prefix = "{\"n\":";
  if (text.substr(0, prefix.size()) != prefix) return -1;
  std::int64_t n = -1;
  std::from_chars(text.data() + prefix.size(), text.data() + text.size(), n);
  return n;
}

struct Recorder {
  std::vector<std::pair<std::int64_t, std::uint64_t>> frames;  // n, conn
  std::vector<WsEvent::Kind> kinds;
  std::vector<WsEvent> events;
  std::vector<std::string> reasons;
  std::vector<std::int64_t> recv_ns;

  WsFeed::FrameHandler on_frame() {
    return [this](const WsFrame& f) {
      frames.emplace_back(frame_number(f.text), f.conn_id);
      recv_ns.push_back(f.recv_wall_ns);
    };
  }
  WsFeed::EventHandler on_event() {
    return [this](const WsEvent& e) {
      events.push_back(e);
      reasons.emplace_back(e.reason);
      events.back().reason = {};
    };
  }
  int count(WsEvent::Kind k) const {
    int c = 0;
    for (const auto& e : events) c += e.kind == k;
    return c;
  }
  std::size_t frames_from(std::uint64_t conn) const {
    std::size_t c = 0;
    for (const auto& f : frames) c += f.second == conn;
    return c;
  }
};

WsFeedOptions options_for(const test::WsTestServer& server, std::string host = "127.0.0.1") {
  WsFeedOptions o;
  o.url = "wss://" + host + ":" + std::to_string(server.port());
  o.streams = {"ethusdt@aggTrade", "ethusdt@kline_1m"};
  o.tls.ca_file = test::cert_file();
  o.connect_timeout = 2s;
  o.ping_interval = 1s;
  o.stall_timeout = 2s;
  o.backoff = {50ms, 400ms, 2.0, 60s};
  return o;
}

}  // namespace

TEST_CASE("ws: connects to the combined stream and delivers frames in order", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  WsFeed feed(ioc, options_for(server, "localhost"), rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return rec.frames.size() >= 20; }));

  CHECK(server.last_target() == "/stream?streams=ethusdt@aggTrade/ethusdt@kline_1m");
  REQUIRE(rec.count(WsEvent::Kind::connected) == 1);
  CHECK_FALSE(rec.events[0].rotation);
  const auto conn = feed.current_conn_id();
  CHECK(conn != 0);
  for (std::size_t i = 1; i < rec.frames.size(); ++i) {
    CHECK(rec.frames[i].first == rec.frames[i - 1].first + 1);
    CHECK(rec.frames[i].second == conn);
  }
  const std::int64_t now = realtime_ns();
  CHECK(std::abs(now - rec.recv_ns.back()) < 5'000'000'000);
  CHECK(rec.recv_ns.back() >= rec.recv_ns.front());
  CHECK(feed.stats().frames == rec.frames.size());
}

TEST_CASE("ws: answers the server's pings and sends its own", "[ws]") {
  test::WsTestServer server(20ms);
  boost::asio::io_context ioc;
  Recorder rec;
  auto opt = options_for(server);
  opt.ping_interval = 50ms;
  WsFeed feed(ioc, opt, rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return feed.current_conn_id() != 0; }));
  server.ping_all();
  CHECK(run_until(ioc, [&] { return server.pongs_received() >= 1; }));
  CHECK(run_until(ioc, [&] { return server.pings_received() >= 2; }));
  CHECK(feed.stats().pings_received >= 1);
  CHECK(feed.stats().pongs_received >= 1);
  CHECK(feed.stats().pings_sent >= 2);
}

TEST_CASE("ws: watchdog reconnects when frames stop", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  auto opt = options_for(server);
  opt.stall_timeout = 200ms;
  WsFeed feed(ioc, opt, rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return rec.frames.size() >= 5; }));
  const auto first = feed.current_conn_id();
  server.set_streaming(false);
  const auto stalled_from = Clock::now();
  REQUIRE(run_until(ioc, [&] { return rec.count(WsEvent::Kind::stalled) >= 1; }));
  CHECK(Clock::now() - stalled_from >= 150ms);
  server.set_streaming(true);
  REQUIRE(run_until(ioc, [&] {
    const auto c = feed.current_conn_id();
    return c != 0 && c != first && rec.frames_from(c) >= 5;
  }));
  CHECK(server.accepted() >= 2);
  // stalled, then disconnected with feed_lost: the caller's cue for gap repair.
  bool lost = false;
  for (const auto& e : rec.events)
    if (e.kind == WsEvent::Kind::disconnected && e.conn_id == first) lost = e.feed_lost;
  CHECK(lost);
  CHECK(feed.stats().stalls >= 1);
}

TEST_CASE("ws: a connection without data frames that answers pings is alive: no stall", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  auto opt = options_for(server);
  opt.stall_timeout = 200ms;  // the feed pings at least every 66 ms then
  WsFeed feed(ioc, opt, rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return rec.frames.size() >= 5; }));
  const auto first = feed.current_conn_id();
  server.set_quiet(true);  // a quiet market: no data for five stall timeouts
  const auto until = Clock::now() + 1s;
  run_until(ioc, [&] { return Clock::now() >= until; });
  CHECK(rec.count(WsEvent::Kind::stalled) == 0);
  CHECK(feed.stats().stalls == 0);
  CHECK(feed.stats().pongs_received >= 5);
  server.set_quiet(false);
  REQUIRE(run_until(ioc, [&] { return rec.frames_from(first) >= 10; }));
  CHECK(feed.current_conn_id() == first);
  CHECK(server.accepted() == 1);
}

TEST_CASE("ws: reconnects after the server drops it, backing off", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  auto opt = options_for(server);
  opt.backoff = {200ms, 2s, 2.0, 60s};
  WsFeed feed(ioc, opt, rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return rec.frames.size() >= 5; }));

  std::vector<Clock::duration> reconnect_gaps;
  for (int round = 0; round < 2; ++round) {
    const auto conn = feed.current_conn_id();
    const int accepted = server.accepted();
    const auto dropped_at = Clock::now();
    server.drop_all();
    REQUIRE(run_until(ioc, [&] {
      const auto c = feed.current_conn_id();
      return c != 0 && c != conn && rec.frames_from(c) >= 3;
    }));
    REQUIRE(server.accepted() == accepted + 1);
    reconnect_gaps.push_back(server.accept_times().back() - dropped_at);
  }
  // Equal jitter: at least half the nominal delay (200 ms, then 400 ms).
  CHECK(reconnect_gaps[0] >= 100ms);
  CHECK(reconnect_gaps[1] >= 200ms);
  CHECK(rec.count(WsEvent::Kind::disconnected) == 2);
  for (const auto& e : rec.events)
    if (e.kind == WsEvent::Kind::disconnected) CHECK(e.feed_lost);
  CHECK(rec.count(WsEvent::Kind::connected) == 3);
}

TEST_CASE("ws: rotation before the lifetime limit overlaps, so no frame is missed", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  auto opt = options_for(server);
  opt.max_lifetime = 250ms;
  WsFeed feed(ioc, opt, rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return feed.stats().rotations >= 4; }, 10s));
  const auto stop_at = rec.frames.size();
  feed.stop();

  CHECK(rec.count(WsEvent::Kind::rotated) >= 4);
  for (const auto& e : rec.events) {
    CHECK_FALSE((e.kind == WsEvent::Kind::disconnected && e.feed_lost));
    if (e.kind == WsEvent::Kind::rotated) CHECK(e.previous_conn_id != 0);
  }
  std::set<std::int64_t> seen;
  std::set<std::uint64_t> conns;
  for (std::size_t i = 0; i < stop_at; ++i) {
    seen.insert(rec.frames[i].first);
    conns.insert(rec.frames[i].second);
  }
  CHECK(conns.size() >= 5);
  REQUIRE(!seen.empty());
  const auto expected = static_cast<std::size_t>(*seen.rbegin() - *seen.begin() + 1);
  CHECK(seen.size() == expected);  // contiguous across all connections
}

TEST_CASE("ws: a requested rotation (serverShutdown) swaps connections without loss", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  WsFeed feed(ioc, options_for(server), rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return rec.frames.size() >= 5; }));
  const auto first = feed.current_conn_id();
  feed.request_rotation("serverShutdown");
  REQUIRE(run_until(ioc, [&] { return rec.count(WsEvent::Kind::rotated) == 1; }));
  CHECK(feed.current_conn_id() != first);
  CHECK(rec.count(WsEvent::Kind::connected) == 2);
  CHECK(rec.events[1].rotation);
  REQUIRE(run_until(ioc, [&] { return rec.frames_from(feed.current_conn_id()) >= 5; }));
  std::set<std::int64_t> seen;
  for (const auto& f : rec.frames) seen.insert(f.first);
  CHECK(seen.size() == static_cast<std::size_t>(*seen.rbegin() - *seen.begin() + 1));
}

TEST_CASE("ws: refuses bad setup and reports TLS failures as disconnects", "[ws]") {
  test::WsTestServer server(5ms);
  boost::asio::io_context ioc;
  Recorder rec;
  {
    auto o = options_for(server);
    o.url = "https://127.0.0.1:1";
    WsFeed feed(ioc, o, rec.on_frame(), rec.on_event());
    CHECK(feed.start().find("wss") != std::string::npos);
  }
  {
    auto o = options_for(server);
    o.streams.clear();
    WsFeed feed(ioc, o, rec.on_frame(), rec.on_event());
    CHECK(feed.start().find("streams") != std::string::npos);
  }
  auto o = options_for(server);
  o.tls.ca_file.clear();  // system store: does not trust the test certificate
  WsFeed feed(ioc, o, rec.on_frame(), rec.on_event());
  REQUIRE(feed.start().empty());
  REQUIRE(run_until(ioc, [&] { return rec.count(WsEvent::Kind::disconnected) >= 1; }));
  CHECK(rec.reasons[0].find("TLS handshake") != std::string::npos);
  CHECK(rec.frames.empty());
}
