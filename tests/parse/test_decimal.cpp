#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "parse/decimal.hpp"
#include "parse_test_util.hpp"

using mdshm::parse::parse_decimal;
using mdshm::parse::plausible_time_ms;
using mdshm::parse::Symbol;
using mdshm::parse::test::shortest;

TEST_CASE("decimal strings parse to the nearest double and print back the same", "[decimal]") {
  double v = 0;
  REQUIRE(parse_decimal("0.00141342", v));
  CHECK(v == 0.00141342);
  CHECK(shortest(v) == "0.00141342");
  REQUIRE(parse_decimal("1632.46000000", v));
  CHECK(shortest(v) == "1632.46");
  REQUIRE(parse_decimal("60759.59000000", v));
  CHECK(shortest(v) == "60759.59");
  REQUIRE(parse_decimal("0.00000001", v));
  CHECK(shortest(v) == "0.00000001");
  REQUIRE(parse_decimal("0", v));
  CHECK(v == 0);
  // 0.1 + 0.2 style: a naive digit-by-digit accumulation gets these wrong in the last bit.
  REQUIRE(parse_decimal("9007199254740993", v));
  CHECK(v == 9007199254740992.0);  // ties to even, as IEEE round-to-nearest says
  REQUIRE(parse_decimal("0.30000000000000004", v));
  CHECK(v == 0.1 + 0.2);
}

TEST_CASE("decimal strings that are not plain non-negative decimals are refused", "[decimal]") {
  double v = 42;
  for (const char* bad : {"", "-1", "-0", "+1", "nan", "NaN", "inf", "infinity", "1e5", "1e400", "1E-3", "0x10",
                          " 1", "1 ", "1.2.3", "abc", ".", "1,5", "1.5x"}) {
    INFO(bad);
    CHECK_FALSE(parse_decimal(bad, v));
  }
  CHECK(v == 42);  // untouched on failure
  std::string huge = "1" + std::string(400, '0');
  CHECK_FALSE(parse_decimal(huge, v));  // finite decimal, but beyond double: out of range
}

TEST_CASE("timestamps outside 2009..2100 are absurd", "[decimal]") {
  CHECK(plausible_time_ms(1675759520847));
  CHECK_FALSE(plausible_time_ms(1675759520));        // seconds, not ms
  CHECK_FALSE(plausible_time_ms(1675759520847000));  // microseconds
  CHECK_FALSE(plausible_time_ms(0));
  CHECK_FALSE(plausible_time_ms(-1));
  CHECK_FALSE(plausible_time_ms(std::numeric_limits<std::int64_t>::max()));
}

TEST_CASE("symbols live in a fixed buffer, upper case, letters and digits only", "[decimal]") {
  Symbol s;
  REQUIRE(s.assign("ethusdt"));
  CHECK(s.view() == "ETHUSDT");
  CHECK(s.equals_ignore_case("ETHusdt"));
  CHECK_FALSE(s.equals_ignore_case("ETHUSD"));
  CHECK_FALSE(s.assign(""));
  CHECK(s.empty());
  CHECK_FALSE(s.assign("ETH-USDT"));
  CHECK_FALSE(s.assign("ABCDEFGHIJKLMNOP"));  // 16 chars: no room for the NUL
  CHECK(s.assign("ABCDEFGHIJKLMNO"));
}

TEST_CASE("capture lines: header skipped, receive-time prefix split off", "[decimal]") {
  using mdshm::parse::parse_capture_line;
  CHECK_FALSE(parse_capture_line("wss://stream.binance.com:9443/stream?streams=a@aggTrade <-> 1633998511.159679"));
  CHECK_FALSE(parse_capture_line("\r\n"));
  const auto c = parse_capture_line("1633998512.0633569: {\"stream\":\"x\"}\r\n");
  REQUIRE(c);
  REQUIRE(c->receive_time_s);
  CHECK(*c->receive_time_s == Approx(1633998512.0633569));
  CHECK(c->frame == "{\"stream\":\"x\"}");
  const auto bare = parse_capture_line("{\"e\":\"aggTrade\"}");
  REQUIRE(bare);
  CHECK_FALSE(bare->receive_time_s);
  CHECK(bare->frame == "{\"e\":\"aggTrade\"}");
}
