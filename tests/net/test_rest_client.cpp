#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "net/rest_client.hpp"
#include "test_servers.hpp"

using namespace mdshm::net;
using namespace std::chrono_literals;
using test::HttpReply;
using test::HttpSeen;

namespace {

RestOptions options_for(const test::HttpTestServer& server) {
  RestOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(server.port());
  o.tls.ca_file = test::cert_file();
  o.connect_timeout = 2s;
  o.request_timeout = 2s;
  o.retry_backoff = {20ms, 200ms, 2.0, 0ms};
  return o;
}

HttpReply ok_reply(std::string body = R"({"ok":true})", int weight = 1) {
  return {200, std::move(body), {{"X-MBX-USED-WEIGHT-1M", std::to_string(weight)}}, false, 0ms};
}

}  // namespace

TEST_CASE("rest: GET returns status, body and weight, reusing one connection", "[rest]") {
  test::HttpTestServer server([](const HttpSeen& r, int i) {
    return ok_reply("{\"target\":\"" + r.target + "\"}", 5 + i);
  });
  boost::asio::io_context ioc;
  RestClient rest(ioc, options_for(server));
  REQUIRE(rest.setup_error().empty());
  auto a = rest.get_blocking("/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=2", 2);
  REQUIRE(a.ok());
  CHECK(a.status == 200);
  CHECK(a.body == R"({"target":"/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=2"})");
  CHECK(a.used_weight_1m == 5);
  CHECK(a.attempts == 1);
  CHECK(a.recv_wall_ns >= a.sent_wall_ns);

  // Async, queued back to back, answered in order.
  std::vector<RestResponse> got;
  for (int i = 0; i < 3; ++i)
    rest.get("/api/v3/time", 1, [&got](RestResponse r) { got.push_back(std::move(r)); });
  while (got.size() < 3 && ioc.run_one()) {
  }
  REQUIRE(got.size() == 3);
  CHECK(got[2].used_weight_1m == 8);
  CHECK(rest.stats().last_used_weight == 8);
  CHECK(server.connections() == 1);  // keep-alive reuse
  CHECK(rest.stats().reconnects == 1);
}

TEST_CASE("rest: holds requests that would exceed the weight budget until the next window", "[rest]") {
  test::HttpTestServer server([](const HttpSeen&, int) { return ok_reply("{}", 9); });
  boost::asio::io_context ioc;
  auto opt = options_for(server);
  opt.weight = {10, 400ms};
  RestClient rest(ioc, opt);
  REQUIRE(rest.get_blocking("/a", 1).ok());   // the exchange says 9 used
  REQUIRE(rest.get_blocking("/b", 1).ok());   // 9 + 1 fits
  REQUIRE(rest.get_blocking("/c", 2).ok());   // 9 + 2 does not: next window
  const auto seen = server.requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[2].wall_ms / 400 > seen[0].wall_ms / 400);
  CHECK(rest.stats().budget_waits >= 1);
}

TEST_CASE("rest: 429 waits at least Retry-After, then retries", "[rest]") {
  test::HttpTestServer server([](const HttpSeen&, int i) {
    if (i == 0) return HttpReply{429, "{}", {{"Retry-After", "1"}}, false, 0ms};
    return ok_reply();
  });
  boost::asio::io_context ioc;
  RestClient rest(ioc, options_for(server));
  auto r = rest.get_blocking("/api/v3/aggTrades?symbol=ETHUSDT&fromId=1", 2);
  REQUIRE(r.ok());
  CHECK(r.attempts == 2);
  const auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].at - seen[0].at >= 1s);
  CHECK(rest.stats().status_429 == 1);
}

TEST_CASE("rest: 418 is reported and holds every request for the ban period", "[rest]") {
  test::HttpTestServer server([](const HttpSeen&, int i) {
    if (i == 0) return HttpReply{418, "{}", {}, false, 0ms};
    return ok_reply();
  });
  boost::asio::io_context ioc;
  auto opt = options_for(server);
  opt.ban_backoff = 400ms;
  RestClient rest(ioc, opt);
  auto r = rest.get_blocking("/x", 1);
  CHECK(r.error == RestError::banned);
  CHECK(r.status == 418);
  CHECK(r.message.find("418") != std::string::npos);
  CHECK(rest.banned_until_ns() > 0);
  auto r2 = rest.get_blocking("/y", 1);
  REQUIRE(r2.ok());
  const auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].at - seen[0].at >= 390ms);
  CHECK(rest.stats().status_418 == 1);
}

TEST_CASE("rest: 5xx is retried a bounded number of times", "[rest]") {
  SECTION("recovers") {
    test::HttpTestServer server([](const HttpSeen&, int i) {
      return i < 2 ? HttpReply{500, "oops", {}, false, 0ms} : ok_reply();
    });
    boost::asio::io_context ioc;
    RestClient rest(ioc, options_for(server));
    auto r = rest.get_blocking("/x", 1);
    REQUIRE(r.ok());
    CHECK(r.attempts == 3);
    CHECK(rest.stats().status_5xx == 2);
  }
  SECTION("gives up with an error value") {
    test::HttpTestServer server([](const HttpSeen&, int) { return HttpReply{503, "down", {}, false, 0ms}; });
    boost::asio::io_context ioc;
    auto opt = options_for(server);
    opt.max_attempts = 3;
    RestClient rest(ioc, opt);
    auto r = rest.get_blocking("/x", 1);
    CHECK(r.error == RestError::server_error);
    CHECK(r.status == 503);
    CHECK(r.attempts == 3);
    CHECK(server.requests().size() == 3);
  }
  SECTION("a 400 is not retried") {
    test::HttpTestServer server([](const HttpSeen&, int) {
      return HttpReply{400, R"({"code":-1121,"msg":"Invalid symbol."})", {}, false, 0ms};
    });
    boost::asio::io_context ioc;
    RestClient rest(ioc, options_for(server));
    auto r = rest.get_blocking("/x", 1);
    CHECK(r.error == RestError::http_status);
    CHECK(r.body.find("Invalid symbol") != std::string::npos);
    CHECK(server.requests().size() == 1);
  }
}

TEST_CASE("rest: a truncated body is retried on a fresh connection", "[rest]") {
  test::HttpTestServer server([](const HttpSeen&, int i) {
    HttpReply r = ok_reply(std::string(2000, 'x'));
    r.truncate = i == 0;
    return r;
  });
  boost::asio::io_context ioc;
  RestClient rest(ioc, options_for(server));
  auto r = rest.get_blocking("/x", 1);
  REQUIRE(r.ok());
  CHECK(r.body.size() == 2000);
  CHECK(r.attempts == 2);
  CHECK(rest.stats().truncated == 1);
  CHECK(server.connections() == 2);
}

TEST_CASE("rest: a slow server times out, bounded", "[rest]") {
  test::HttpTestServer server([](const HttpSeen&, int) {
    HttpReply r = ok_reply();
    r.delay = 600ms;
    return r;
  });
  boost::asio::io_context ioc;
  auto opt = options_for(server);
  opt.request_timeout = 150ms;
  opt.max_attempts = 2;
  RestClient rest(ioc, opt);
  auto r = rest.get_blocking("/x", 1);
  CHECK(r.error == RestError::timeout);
  CHECK(r.attempts == 2);
  CHECK(rest.stats().timeouts == 2);
}

TEST_CASE("rest: bad setup is an error value, not a crash", "[rest]") {
  boost::asio::io_context ioc;
  RestOptions o;
  o.base_url = "wss://127.0.0.1:1";
  RestClient rest(ioc, o);
  CHECK(!rest.setup_error().empty());
  auto r = rest.get_blocking("/x", 1);
  CHECK(r.error == RestError::setup);
  RestOptions o2;
  o2.tls.ca_file = "/nonexistent/ca.pem";
  RestClient rest2(ioc, o2);
  CHECK(rest2.setup_error().find("/nonexistent/ca.pem") != std::string::npos);
}

