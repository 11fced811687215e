// The exchange clock: offset and rate from /api/v3/time samples, pushed forward by trade times,
// never backwards. Live Binance runs at rate 1; the simulator replays 2022 at --speed.
#include <catch2/catch.hpp>

#include "feed/exchange_clock.hpp"

using mdshm::feed::ExchangeClock;

namespace {
constexpr std::int64_t kSec = 1'000'000'000;
constexpr std::int64_t kLocal0 = 1'795'000'000LL * kSec;  // some local wall time, ns
constexpr std::int64_t kReplay0 = 1'660'478'400'000LL;   // 2022-08-14 12:00 UTC, ms
}  // namespace

TEST_CASE("no sample, no clock") {
  ExchangeClock c;
  CHECK_FALSE(c.synced());
  CHECK_FALSE(c.now_ms(kLocal0).has_value());
  CHECK(c.offset_ns() == 0);
}

TEST_CASE("real time: offset only, rate snaps to 1 despite round-trip noise") {
  ExchangeClock c;
  const std::int64_t offset_ms = -250;  // the exchange is 250 ms behind us
  c.add_sample(kLocal0, kLocal0 / 1'000'000 + offset_ms);
  c.add_sample(kLocal0 + 2 * kSec, kLocal0 / 1'000'000 + 2000 + offset_ms + 7);  // 7 ms of jitter
  CHECK(c.rate() == 1.0);
  const auto now = c.now_ms(kLocal0 + 3 * kSec);
  REQUIRE(now);
  // One second after the newest sample, which said local + 2 s - 250 ms + 7 ms.
  CHECK(*now == kLocal0 / 1'000'000 + 3000 + offset_ms + 7);
}

TEST_CASE("a replay years in the past at 60x: rate measured, bars close on the replay clock") {
  ExchangeClock c;
  c.add_sample(kLocal0, kReplay0);
  c.add_sample(kLocal0 + 1 * kSec, kReplay0 + 60'000);
  c.add_sample(kLocal0 + 2 * kSec, kReplay0 + 120'000);
  CHECK(c.rate() == Approx(60.0));
  const auto now = c.now_ms(kLocal0 + 2 * kSec + kSec / 2);
  REQUIRE(now);
  CHECK(*now == kReplay0 + 150'000);
  CHECK(c.offset_ns() == kReplay0 * 1'000'000 + 120'000'000'000LL - (kLocal0 + 2 * kSec));
}

TEST_CASE("trade times push the clock forward; it never runs backwards") {
  ExchangeClock c;
  c.add_sample(kLocal0, kReplay0);
  c.saw_exchange_time(kReplay0 + 5'000);  // a trade newer than our estimate: trade time is the truth
  auto t1 = c.now_ms(kLocal0 + kSec / 10);
  REQUIRE(t1);
  CHECK(*t1 == kReplay0 + 5'000);
  // A new sample that would put the clock behind what was already reported does not move it back.
  c.add_sample(kLocal0 + kSec, kReplay0 + 1'000);
  auto t2 = c.now_ms(kLocal0 + kSec);
  REQUIRE(t2);
  CHECK(*t2 >= *t1);
}
