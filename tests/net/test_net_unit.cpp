#include <catch2/catch.hpp>

#include "net/pacing.hpp"
#include "net/url.hpp"
#include "net/ws_feed.hpp"

using namespace mdshm::net;
using namespace std::chrono_literals;

TEST_CASE("url: wss and https split into host, port, target", "[url]") {
  auto a = parse_url("wss://stream.binance.com:9443/stream?streams=ethusdt@aggTrade");
  REQUIRE(a.ok());
  CHECK(a.url.scheme == "wss");
  CHECK(a.url.host == "stream.binance.com");
  CHECK(a.url.port == 9443);
  CHECK(a.url.target == "/stream?streams=ethusdt@aggTrade");

  auto b = parse_url("HTTPS://api.binance.com");
  REQUIRE(b.ok());
  CHECK(b.url.port == 443);
  CHECK(b.url.target == "/");

  auto c = parse_url("https://[::1]:8443?x=1");
  REQUIRE(c.ok());
  CHECK(c.url.host == "::1");
  CHECK(c.url.port == 8443);
  CHECK(c.url.target == "/?x=1");
}

TEST_CASE("url: refuses what the feed cannot use, naming the problem", "[url]") {
  CHECK(parse_url("ws://plain.example:80").error.find("scheme") != std::string::npos);
  CHECK(parse_url("api.binance.com").error.find("no scheme") != std::string::npos);
  CHECK(parse_url("https://host:0").error.find("port") != std::string::npos);
  CHECK(parse_url("https://host:70000").error.find("port") != std::string::npos);
  CHECK(parse_url("https://host:12ab").error.find("port") != std::string::npos);
  CHECK(parse_url("https://:443/").error.find("empty host") != std::string::npos);
  CHECK(parse_url("https://[::1/").error.find("IPv6") != std::string::npos);
  CHECK(!parse_url("https://user@host/").ok());
}

TEST_CASE("combined stream target joins the streams", "[url]") {
  CHECK(combined_stream_target({"ethusdt@aggTrade", "ethusdt@kline_1m", "btcusdt@aggTrade"}) ==
        "/stream?streams=ethusdt@aggTrade/ethusdt@kline_1m/btcusdt@aggTrade");
}

TEST_CASE("backoff: grows exponentially with equal jitter, capped", "[pacing]") {
  Backoff b({100ms, 1000ms, 2.0, 60s}, 42);
  const auto t = std::chrono::steady_clock::now();
  const double nominal[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (double n : nominal) {
    const double ms = std::chrono::duration<double, std::milli>(b.next_delay(t)).count();
    CHECK(ms >= n / 2 - 1e-6);
    CHECK(ms <= n + 1e-6);
  }
  CHECK(b.failures() == 7);
}

TEST_CASE("backoff: jitter actually spreads delays", "[pacing]") {
  Backoff b({1000ms, 1000ms, 2.0, 60s}, 7);
  const auto t = std::chrono::steady_clock::now();
  auto lo = b.next_delay(t), hi = lo;
  for (int i = 0; i < 50; ++i) {
    const auto d = b.next_delay(t);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(hi - lo > 100ms);
}

TEST_CASE("backoff: resets only after a healthy period", "[pacing]") {
  Backoff b({100ms, 10s, 2.0, 5s}, 1);
  auto t = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) b.next_delay(t);
  b.on_connected(t);
  // Dropped after 1 s: not healthy, the next delay keeps growing (nominal 1600 ms).
  CHECK(b.next_delay(t + 1s) >= 800ms);
  b.on_connected(t + 2s);
  // Up for 10 s: healthy, back to the initial delay.
  CHECK(b.next_delay(t + 12s) <= 100ms);
  CHECK(b.failures() == 1);
}

TEST_CASE("connect limiter: never more than 300 attempts in any 5 minute window", "[pacing]") {
  ConnectRateLimiter lim;  // Binance defaults
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::chrono::steady_clock::time_point> granted;
  auto t = t0;
  // A client hammering: asks every 100 ms for an hour, obeying the answers.
  while (t < t0 + 1h) {
    const auto wait = lim.acquire(t);
    if (wait == Duration::zero()) {
      granted.push_back(t);
      t += 100ms;
    } else {
      CHECK(wait > Duration::zero());
      t += wait;
    }
  }
  REQUIRE(granted.size() > 300);
  std::size_t lo = 0, worst = 0;
  for (std::size_t hi = 0; hi < granted.size(); ++hi) {
    while (granted[hi] - granted[lo] > 5min) ++lo;
    worst = std::max(worst, hi - lo + 1);
  }
  CHECK(worst == 300);
  // And it is not overly strict: 300 per window is reached, ~12 windows in an hour.
  CHECK(granted.size() >= 300 * 11);
}

TEST_CASE("connect limiter: small window arithmetic", "[pacing]") {
  ConnectRateLimiter lim({3, 1000ms});
  const auto t = std::chrono::steady_clock::now();
  CHECK(lim.acquire(t) == Duration::zero());
  CHECK(lim.acquire(t + 100ms) == Duration::zero());
  CHECK(lim.acquire(t + 200ms) == Duration::zero());
  const auto wait = lim.acquire(t + 300ms);
  CHECK(wait > 700ms);
  CHECK(wait < 701ms);
  CHECK(lim.acquire(t + 1000ms) > Duration::zero());  // t itself is still inside [t, t+1s]
  CHECK(lim.acquire(t + 1001ms) == Duration::zero());
  CHECK(lim.in_window(t + 1001ms) == 3);
}

TEST_CASE("weight budget: delays to the next window when the budget would be exceeded", "[pacing]") {
  WeightBudget w({100, 60'000ms});
  const std::int64_t m = 1'700'000'040'000;  // a minute boundary
  CHECK(w.delay_ms(m + 1000, 10) == 0);
  w.on_sent(m + 1000, 10);
  w.on_used_header(m + 1100, 95);  // the exchange counts more than we did (other clients)
  CHECK(w.used(m + 1100) == 95);
  CHECK(w.delay_ms(m + 1200, 5) == 0);
  const auto d = w.delay_ms(m + 1200, 6);
  CHECK(d >= 60'000 - 1200);
  CHECK(d <= 60'000 - 1200 + 1000);
  CHECK(w.used(m + 60'000) == 0);  // new window
  CHECK(w.delay_ms(m + 60'000, 6) == 0);
  // Heavier than the whole budget: goes alone into a fresh window.
  CHECK(w.delay_ms(m + 60'000, 500) == 0);
}

