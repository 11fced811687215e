// One symbol's gap handling as an explicit state machine, pure: it decides, a GapPort acts. The
// feed implements the port over the aggregator, net::RestClient and an Asio timer; the unit tests
// (tests/feed/test_gap_machine.cpp) with a fake. docs/FEED.md draws the states.
//
//   live        ids contiguous: live events are applied as they come, bars close on the clock.
//   in_flight   an aggTrades request (fromId, or startTime after a refill) is out.
//   waiting     the next request waits for the timer: backoff after a failure, REST behind the
//               stream, or the stream not back yet.
//   refill_due  the gap is too long for aggTrades (or the symbol starts): tick() refills its bars
//               from klines, blocking, once `refill_at` has come; then a catch-up by startTime.
//
// Every state but live is "repairing": the symbol's live events are held and its bars do not close
// on the clock. Failures: a transient one (network, 5xx, 429, 418) is retried with backoff for as
// long as the stream is down; with the stream back and events held longer than max_repair_hold the
// gap is given up on (held events go live, the gap's bars are flagged not_repaired). A permanent
// one (4xx, a body that does not parse) gives up after kPermanentAttempts.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mdshm::feed {

enum class GapState : std::uint8_t { live, in_flight, waiting, refill_due };

constexpr std::string_view to_string(GapState s) {
  switch (s) {
    case GapState::live: return "live";
    case GapState::in_flight: return "in_flight";
    case GapState::waiting: return "waiting";
    case GapState::refill_due: return "refill_due";
  }
  return "?";
}

enum class Failure : std::uint8_t { transient, permanent };

// What a blocking klines refill came to: complete (the catch-up by startTime goes from
// `catch_up_from_ms`), or failed.
struct RefillResult {
  std::optional<Failure> failure;
  std::int64_t catch_up_from_ms = 0;
};

using SteadyTime = std::chrono::steady_clock::time_point;

// The machine's view of the symbol, REST and the clock, and the outcomes it can cause.
class GapPort {
 public:
  virtual ~GapPort() = default;
  // The clock.
  virtual std::optional<std::int64_t> exchange_now_ms() = 0;
  virtual SteadyTime steady_now() = 0;
  // The symbol.
  virtual std::int64_t last_trade_id() = 0;  // -1: none applied yet
  virtual std::int64_t last_trade_ms() = 0;
  virtual bool holding() = 0;  // live events are held
  virtual SteadyTime held_since() = 0;
  virtual bool stream_up() = 0;         // a connection is up
  virtual bool stream_delivered() = 0;  // ... and has delivered a frame of this symbol
  virtual void drain_held() = 0;        // apply the held events that continue the ids
  // REST. An aggTrades answer comes back as on_trades / on_failure with the sequence number given.
  virtual void request_trades_from_id(std::int64_t id, std::uint64_t seq) = 0;
  virtual void request_trades_since(std::int64_t time_ms, std::uint64_t seq) = 0;
  [[nodiscard]] virtual RefillResult refill() = 0;  // blocking
  // The timer: on_timer after `d` (replaces a running one).
  virtual void start_timer(std::chrono::milliseconds d) = 0;
  virtual void cancel_timer() = 0;
  // Outcomes.
  virtual void gave_up() = 0;  // held events go live, the gap's bars are flagged not_repaired
  virtual void healthy() = 0;
};

struct GapOptions {
  std::chrono::milliseconds max_trade_repair{15 * 60'000};  // exchange time; longer gaps: refill
  std::chrono::milliseconds max_repair_hold{30'000};
};

inline constexpr int kPermanentAttempts = 3;
inline constexpr std::size_t kAggTradesPage = 1000;

// 1 s after the first failure, doubling, at most 30 s.
inline std::chrono::milliseconds retry_delay(int failures) {
  return std::min<std::chrono::milliseconds>(std::chrono::milliseconds(1000) * (1 << std::clamp(failures - 1, 0, 5)),
                                             std::chrono::milliseconds(30'000));
}

class GapMachine {
 public:
  GapMachine(GapPort& port, GapOptions opt) : port_(port), opt_(opt) {}

  GapState state() const { return state_; }
  bool repairing() const { return state_ != GapState::live; }
  int failures() const { return failures_; }
  SteadyTime refill_at() const { return refill_at_; }
  // The sequence number of the request in flight: an answer with another one is stale.
  bool expects(std::uint64_t seq) const { return state_ == GapState::in_flight && seq == seq_; }

  // A hole in the ids or a lost connection. False when a repair is under way already.
  bool open_gap() {
    if (repairing()) return false;
    failures_ = 0;
    next_step();
    return true;
  }
  // Startup, or a gap known to be long: refill from klines at the next on_tick().
  void start_refill() {
    port_.cancel_timer();
    failures_ = 0;
    to_refill(SteadyTime{});
  }
  // The aggTrades answer was applied (and the held events that continue it).
  void on_trades(std::uint64_t seq, std::size_t received) {
    if (!expects(seq)) return;
    failures_ = 0;
    since_.reset();
    if (received >= kAggTradesPage) return next_step();
    settle();
  }
  void on_failure(std::uint64_t seq, Failure f) {
    if (!expects(seq)) return;
    if (should_give_up(f)) return give_up();
    state_ = GapState::waiting;
    port_.start_timer(retry_delay(failures_));
  }
  void on_timer() {
    if (state_ == GapState::waiting) next_step();
  }
  // A new connection: a repair waiting out an outage goes again now rather than at its next retry.
  void on_connected() {
    if (state_ == GapState::waiting) {
      port_.cancel_timer();
      next_step();
    } else if (state_ == GapState::refill_due) {
      refill_at_ = SteadyTime{};
    }
  }
  // From tick(), outside any handler (the refill blocks).
  void on_tick() {
    if (state_ != GapState::refill_due || port_.steady_now() < refill_at_) return;
    const RefillResult r = port_.refill();
    if (r.failure) {
      if (should_give_up(*r.failure)) return give_up();
      return to_refill(port_.steady_now() + retry_delay(failures_));
    }
    failures_ = 0;
    since_ = r.catch_up_from_ms;
    next_step();
  }
  // Too many events held: give up whatever the state.
  void on_overflow() {
    if (repairing()) give_up();
  }

 private:
  void to_refill(SteadyTime at) {
    state_ = GapState::refill_due;
    refill_at_ = at;
  }
  // The next aggTrades request, a refill when the gap has grown too long, or done.
  void next_step() {
    if (since_) return request([&](std::uint64_t s) { port_.request_trades_since(*since_, s); });
    const std::int64_t last = port_.last_trade_id();
    if (last < 0) {  // nothing to continue from: the first live trade starts the series
      port_.drain_held();
      return settle();
    }
    const auto now = port_.exchange_now_ms();
    const std::int64_t last_ms = port_.last_trade_ms();
    if (now && last_ms > 0 && *now - last_ms > opt_.max_trade_repair.count()) {
      failures_ = 0;  // a new phase: its own backoff and attempts
      return to_refill(SteadyTime{});
    }
    request([&](std::uint64_t s) { port_.request_trades_from_id(last + 1, s); });
  }
  template <class Send>
  void request(Send send) {
    state_ = GapState::in_flight;
    send(++seq_);
  }
  // After an answer that was not a full page: healthy once nothing is held and the (new) stream
  // has delivered this symbol; otherwise ask again shortly.
  void settle() {
    state_ = GapState::waiting;
    if (port_.holding()) return port_.start_timer(std::chrono::milliseconds(50));  // REST behind the stream
    // Trades between REST's answer and the stream's start would otherwise go unnoticed.
    if (!port_.stream_up() || !port_.stream_delivered()) return port_.start_timer(std::chrono::milliseconds(250));
    state_ = GapState::live;
    port_.healthy();
  }
  bool should_give_up(Failure f) {
    ++failures_;
    if (f == Failure::permanent) return failures_ >= kPermanentAttempts;
    // Waiting loses nothing while the stream is down too; with it back, held events wait only so long.
    return port_.stream_up() && port_.holding() && port_.steady_now() - port_.held_since() > opt_.max_repair_hold;
  }
  void give_up() {
    port_.cancel_timer();
    state_ = GapState::live;
    failures_ = 0;
    since_.reset();
    ++seq_;  // an answer still on its way is stale now
    port_.gave_up();
  }

  GapPort& port_;
  GapOptions opt_;
  GapState state_ = GapState::live;
  int failures_ = 0;
  std::uint64_t seq_ = 0;
  SteadyTime refill_at_{};
  std::optional<std::int64_t> since_;  // catch-up by startTime after a refill
};

}  // namespace mdshm::feed
