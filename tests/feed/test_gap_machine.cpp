// The per-symbol gap state machine against a fake port: every transition, and every failure in
// every state, including a failure during a refill from klines (issue 8, defect 1: a refill that
// fails must leave the symbol repairing, its bars unclosed, never continue as if it had worked).
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "feed/gap_machine.hpp"

using namespace mdshm::feed;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kMin = 60'000;

struct FakePort final : GapPort {
  // The world.
  std::int64_t now_ms = 1'660'000'000'000;
  SteadyTime steady = SteadyTime{} + 1000s;
  std::int64_t last_id = 100, last_ms = now_ms - 1000;
  bool held = false;
  SteadyTime held_at{};
  bool up = true, delivered = true;
  RefillResult next_refill{std::nullopt, 0};
  // What the machine did.
  std::vector<std::string> calls;
  std::uint64_t seq = 0;
  std::chrono::milliseconds timer{-1};
  int refills = 0, gave_ups = 0, healthies = 0, drains = 0;

  std::optional<std::int64_t> exchange_now_ms() override { return now_ms; }
  SteadyTime steady_now() override { return steady; }
  std::int64_t last_trade_id() override { return last_id; }
  std::int64_t last_trade_ms() override { return last_ms; }
  bool holding() override { return held; }
  SteadyTime held_since() override { return held_at; }
  bool stream_up() override { return up; }
  bool stream_delivered() override { return delivered; }
  void drain_held() override { ++drains; }
  void request_trades_from_id(std::int64_t id, std::uint64_t s) override {
    calls.push_back("fromId=" + std::to_string(id));
    seq = s;
  }
  void request_trades_since(std::int64_t t, std::uint64_t s) override {
    calls.push_back("startTime=" + std::to_string(t));
    seq = s;
  }
  RefillResult refill() override {
    ++refills;
    calls.push_back("refill");
    return next_refill;
  }
  void start_timer(std::chrono::milliseconds d) override { timer = d; }
  void cancel_timer() override { timer = std::chrono::milliseconds(-1); }
  void gave_up() override { ++gave_ups; }
  void healthy() override { ++healthies; }
  std::string last_call() const { return calls.empty() ? "" : calls.back(); }
};

struct Fixture {
  FakePort port;
  GapMachine m{port, GapOptions{15min, 30s}};
};

}  // namespace

TEST_CASE("live: a short gap asks REST aggTrades from the next id") {
  Fixture f;
  CHECK(f.m.state() == GapState::live);
  CHECK_FALSE(f.m.repairing());
  REQUIRE(f.m.open_gap());
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.m.repairing());
  CHECK(f.port.last_call() == "fromId=101");
  CHECK_FALSE(f.m.open_gap());  // a second gap while repairing is the same repair
  CHECK(f.port.calls.size() == 1);
}

TEST_CASE("in_flight: a partial page with nothing held and the stream delivering is healthy") {
  Fixture f;
  f.m.open_gap();
  f.m.on_trades(f.port.seq, 10);
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.healthies == 1);
}

TEST_CASE("in_flight: a full page asks for the next one at once") {
  Fixture f;
  f.m.open_gap();
  f.port.last_id = 1100;
  f.m.on_trades(f.port.seq, kAggTradesPage);
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.port.last_call() == "fromId=1101");
  CHECK(f.port.healthies == 0);
}

TEST_CASE("in_flight: REST behind the stream (events still held) asks again after 50 ms") {
  Fixture f;
  f.m.open_gap();
  f.port.held = true;
  f.m.on_trades(f.port.seq, 3);
  CHECK(f.m.state() == GapState::waiting);
  CHECK(f.port.timer == 50ms);
  f.m.on_timer();
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.port.calls.size() == 2);
}

TEST_CASE("in_flight: the stream not back (or not delivered yet) waits 250 ms before healthy") {
  Fixture f;
  f.m.open_gap();
  f.port.delivered = false;
  f.m.on_trades(f.port.seq, 3);
  CHECK(f.m.state() == GapState::waiting);
  CHECK(f.port.timer == 250ms);
  f.port.delivered = true;
  f.m.on_timer();  // asks once more: trades may have come between REST's answer and the stream
  f.m.on_trades(f.port.seq, 0);
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.healthies == 1);
}

TEST_CASE("in_flight: a stale answer (another sequence number) changes nothing") {
  Fixture f;
  f.m.open_gap();
  const auto seq = f.port.seq;
  f.m.on_trades(seq + 7, 10);
  f.m.on_failure(seq + 7, Failure::permanent);
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.m.failures() == 0);
}

TEST_CASE("in_flight: a transient failure with the stream down retries with backoff for as long as it takes") {
  Fixture f;
  f.port.up = false;
  f.m.open_gap();
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 9; ++i) {
    f.m.on_failure(f.port.seq, Failure::transient);
    REQUIRE(f.m.state() == GapState::waiting);
    delays.push_back(f.port.timer);
    f.port.steady += 1h;  // however long: nothing is held while the stream is down
    f.m.on_timer();
    REQUIRE(f.m.state() == GapState::in_flight);
  }
  CHECK(delays.front() == 1s);
  CHECK(delays[1] == 2s);
  CHECK(delays.back() == 30s);
  CHECK(f.port.gave_ups == 0);
}

TEST_CASE("in_flight: a transient failure with the stream back and events held too long gives up") {
  Fixture f;
  f.m.open_gap();
  f.port.held = true;
  f.port.held_at = f.port.steady;
  f.m.on_failure(f.port.seq, Failure::transient);
  CHECK(f.m.state() == GapState::waiting);  // held for 0 s yet
  f.m.on_timer();
  f.port.steady += 31s;
  f.m.on_failure(f.port.seq, Failure::transient);
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.gave_ups == 1);
  CHECK(f.port.timer == -1ms);  // no timer left running
}

TEST_CASE("in_flight: a permanent failure gives up after three attempts") {
  Fixture f;
  f.m.open_gap();
  f.m.on_failure(f.port.seq, Failure::permanent);
  f.m.on_timer();
  f.m.on_failure(f.port.seq, Failure::permanent);
  f.m.on_timer();
  CHECK(f.port.gave_ups == 0);
  f.m.on_failure(f.port.seq, Failure::permanent);
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.gave_ups == 1);
}

TEST_CASE("in_flight: an answer after a give-up is stale") {
  Fixture f;
  f.m.open_gap();
  const auto seq = f.port.seq;
  f.m.on_overflow();
  CHECK(f.port.gave_ups == 1);
  f.m.on_trades(seq, 10);
  CHECK(f.port.healthies == 0);
}

TEST_CASE("waiting: a new connection sends the request at once; a timer then does nothing") {
  Fixture f;
  f.port.up = false;
  f.m.open_gap();
  f.m.on_failure(f.port.seq, Failure::transient);
  REQUIRE(f.m.state() == GapState::waiting);
  f.port.up = true;
  f.m.on_connected();
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.port.timer == -1ms);
  CHECK(f.port.calls.size() == 2);
  f.m.on_timer();
  CHECK(f.port.calls.size() == 2);
}

TEST_CASE("waiting: too many held events give up") {
  Fixture f;
  f.port.up = false;
  f.m.open_gap();
  f.m.on_failure(f.port.seq, Failure::transient);
  f.m.on_overflow();
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.gave_ups == 1);
}

TEST_CASE("a gap longer than max_trade_repair is refilled from klines, then caught up by startTime") {
  Fixture f;
  f.port.last_ms = f.port.now_ms - 16 * kMin;
  f.m.open_gap();
  CHECK(f.m.state() == GapState::refill_due);
  CHECK(f.m.repairing());
  CHECK(f.port.calls.empty());  // blocking: only from tick()
  f.port.next_refill = {std::nullopt, f.port.now_ms - 30'000};
  f.m.on_tick();
  CHECK(f.port.refills == 1);
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.port.last_call() == "startTime=" + std::to_string(f.port.now_ms - 30'000));
  f.port.last_id = 5000;  // the page's trades were applied
  f.port.last_ms = f.port.now_ms - 20'000;
  f.m.on_trades(f.port.seq, kAggTradesPage);  // the next page goes by id
  CHECK(f.port.last_call() == "fromId=5001");
  f.m.on_trades(f.port.seq, 1);
  CHECK(f.m.state() == GapState::live);
}

TEST_CASE("a gap that grows too long while waiting turns into a refill at the next attempt") {
  Fixture f;
  f.port.up = false;
  f.m.open_gap();
  f.m.on_failure(f.port.seq, Failure::transient);
  f.port.now_ms += 20 * kMin;
  f.m.on_timer();
  CHECK(f.m.state() == GapState::refill_due);
  CHECK(f.m.failures() == 0);  // the refill counts its own failures
}

TEST_CASE("refill_due: a failed refill stays repairing and is tried again after a backoff (defect 1)") {
  Fixture f;
  f.port.up = false;  // the second outage: stream and REST gone
  f.port.last_ms = f.port.now_ms - 40 * kMin;
  f.m.open_gap();
  f.port.next_refill = {Failure::transient, 0};
  f.m.on_tick();
  CHECK(f.m.state() == GapState::refill_due);  // not in_flight: no catch-up over missing bars
  CHECK(f.m.repairing());                      // so no bar closes on the clock
  CHECK(f.m.refill_at() == f.port.steady + 1s);
  f.m.on_tick();
  CHECK(f.port.refills == 1);  // not before its time
  for (int i = 0; i < 8; ++i) {
    f.port.steady = f.m.refill_at();
    f.m.on_tick();
    REQUIRE(f.m.state() == GapState::refill_due);
  }
  CHECK(f.m.refill_at() == f.port.steady + 30s);
  CHECK(f.port.gave_ups == 0);
  CHECK(std::none_of(f.port.calls.begin(), f.port.calls.end(), [](const std::string& c) { return c != "refill"; }));
  // REST is back: the refill completes and the catch-up follows.
  f.port.next_refill = {std::nullopt, 123};
  f.port.steady = f.m.refill_at();
  f.m.on_tick();
  CHECK(f.m.state() == GapState::in_flight);
  CHECK(f.port.last_call() == "startTime=123");
  CHECK(f.m.failures() == 0);
}

TEST_CASE("refill_due: a new connection runs the waiting refill at the next tick") {
  Fixture f;
  f.port.last_ms = f.port.now_ms - 40 * kMin;
  f.m.open_gap();
  f.port.next_refill = {Failure::transient, 0};
  f.m.on_tick();
  REQUIRE(f.m.refill_at() > f.port.steady);
  f.m.on_connected();
  f.m.on_tick();
  CHECK(f.port.refills == 2);
}

TEST_CASE("refill_due: failing with the stream back and events held too long gives up") {
  Fixture f;
  f.port.last_ms = f.port.now_ms - 40 * kMin;
  f.m.open_gap();
  f.port.held = true;
  f.port.held_at = f.port.steady - 31s;
  f.port.next_refill = {Failure::transient, 0};
  f.m.on_tick();
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.gave_ups == 1);
}

TEST_CASE("refill_due: a permanent failure gives up after three attempts") {
  Fixture f;
  f.m.start_refill();
  f.port.next_refill = {Failure::permanent, 0};
  for (int i = 0; i < 2; ++i) {
    f.m.on_tick();
    REQUIRE(f.m.state() == GapState::refill_due);
    f.port.steady = f.m.refill_at();
  }
  f.m.on_tick();
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.gave_ups == 1);
}

TEST_CASE("refill_due: too many held events give up") {
  Fixture f;
  f.m.start_refill();
  f.m.on_overflow();
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.gave_ups == 1);
}

TEST_CASE("startup: the refill runs at once; a symbol with no trade yet starts from the first live one") {
  Fixture f;
  f.port.last_id = -1;
  f.m.start_refill();
  CHECK(f.m.state() == GapState::refill_due);
  f.port.next_refill = {std::nullopt, 777};
  f.m.on_tick();
  CHECK(f.port.last_call() == "startTime=777");
  f.m.on_trades(f.port.seq, 0);  // nothing traded since: still no id to continue from
  CHECK(f.m.state() == GapState::live);
  // A later gap without any trade id: held events are applied, no request.
  f.m.open_gap();
  CHECK(f.port.drains == 1);
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.calls.size() == 2);
}

TEST_CASE("live: timers, ticks and answers are ignored") {
  Fixture f;
  f.m.on_timer();
  f.m.on_tick();
  f.m.on_connected();
  f.m.on_overflow();
  f.m.on_trades(0, 10);
  f.m.on_failure(0, Failure::permanent);
  CHECK(f.m.state() == GapState::live);
  CHECK(f.port.calls.empty());
  CHECK(f.port.gave_ups == 0);
  CHECK(f.port.healthies == 0);
}

TEST_CASE("state names") {
  CHECK(to_string(GapState::live) == "live");
  CHECK(to_string(GapState::in_flight) == "in_flight");
  CHECK(to_string(GapState::waiting) == "waiting");
  CHECK(to_string(GapState::refill_due) == "refill_due");
}
