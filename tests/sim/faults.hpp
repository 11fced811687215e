// Fault injection: the state the server consults before each frame and each REST reply, and the
// line protocol that scripts it (control port or --faults file). Commands, one per line:
//   drop                      close every WebSocket at once, without a close frame
//   stall SECONDS             stop sending on every WebSocket (frames and pings), sockets stay open
//   quiet SECONDS             hold data frames back (sent late, at once, afterwards); pings and
//                             pongs go on: a live connection that carries no data for a while
//   blackout SECONDS          the network is gone: every WebSocket dropped, every new connection
//                             (WebSocket and REST) closed at once, while the replay clock runs on
//   rest_down SECONDS         REST is gone (its connections closed, no answer); the stream stays
//   blackout_on TEXT SECONDS  the next REST request whose target contains TEXT starts a blackout of
//                             SECONDS (it gets no answer): an outage at an exact step of a repair
//   shutdown                  send a serverShutdown event on every WebSocket
//   malformed N | truncate N  insert N broken copies of the next frames (the real frames follow)
//   duplicate N               send each of the next N aggTrade frames twice
//   reorder N                 swap each of the next N pairs of aggTrade frames
//   hole N                    do not send the next N aggTrade frames (REST still serves them)
//   rest_error STATUS N [S]   the next N REST requests get STATUS (429, 418, 500...), Retry-After S
//   rest_slow MS              delay every REST reply by MS (0 turns it off)
//   rest_partial N            the next N REST replies send half their body, then close
//   clock                     reply with the replay clock (ms)
//   stats                     reply with counters
// Replies: "ok ..." or "error ...".
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace mdshm::sim {

struct RestFault {
  int status = 500;
  int remaining = 1;
  int retry_after_s = 0;  // 0: no Retry-After header
};

struct Faults {
  int malformed = 0, truncate = 0, duplicate = 0, reorder = 0, hole = 0;
  std::chrono::steady_clock::time_point stall_until{};
  std::chrono::steady_clock::time_point quiet_until{};
  std::chrono::steady_clock::time_point blackout_until{};
  std::chrono::steady_clock::time_point rest_down_until{};
  int rest_slow_ms = 0;
  int rest_partial = 0;
  std::deque<RestFault> rest_errors;
  std::string blackout_on;  // empty: not armed
  std::chrono::steady_clock::duration blackout_on_for{};

  // Takes one REST fault if any is queued.
  bool next_rest_error(RestFault& out) {
    while (!rest_errors.empty() && rest_errors.front().remaining <= 0) rest_errors.pop_front();
    if (rest_errors.empty()) return false;
    out = rest_errors.front();
    --rest_errors.front().remaining;
    return true;
  }
  // Fires the armed blackout_on if `target` matches: true when the network is gone from now on.
  bool trigger_blackout(std::string_view target) {
    if (blackout_on.empty() || target.find(blackout_on) == std::string_view::npos) return false;
    blackout_on.clear();
    blackout_until = std::chrono::steady_clock::now() + blackout_on_for;
    return true;
  }
  bool stalled() const { return std::chrono::steady_clock::now() < stall_until; }
  bool quiet() const { return std::chrono::steady_clock::now() < quiet_until; }
  bool blacked_out() const { return std::chrono::steady_clock::now() < blackout_until; }
  bool rest_down() const { return std::chrono::steady_clock::now() < rest_down_until; }
};

struct ControlActions {
  std::function<int()> drop_all;       // returns connections dropped
  std::function<int()> shutdown_all;   // returns connections notified
  std::function<std::int64_t()> clock_ms;
  std::function<std::string()> stats;
};

std::string apply_command(std::string_view line, Faults& faults, const ControlActions& actions);

}  // namespace mdshm::sim
