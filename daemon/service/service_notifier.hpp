// Telling systemd how the daemon is doing (Type=notify): READY=1 once segments are up and backfill
// is done, STATUS= lines for `systemctl status`, WATCHDOG=1 from the event loop, STOPPING=1 on
// SIGTERM, RELOADING=1 on SIGHUP. A thin wrapper over libsystemd's sd_notify, which handles the
// socket protocol (path and abstract "@name" addresses, credentials); every call is a cheap no-op
// when NOTIFY_SOCKET is unset, i.e. when not started by systemd.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mdshm::service {

enum class NotifyOutcome {
  sent,       // the datagram went out
  disabled,   // NOTIFY_SOCKET unset: not running under a notify-aware service manager
  failed,     // NOTIFY_SOCKET set but sending failed; ServiceNotifier::last_error() says why
};

class ServiceNotifier {
 public:
  NotifyOutcome status(std::string_view text);                 // STATUS=text
  NotifyOutcome ready(std::string_view status_text = {});      // READY=1 (+ STATUS=)
  NotifyOutcome watchdog();                                    // WATCHDOG=1
  NotifyOutcome stopping(std::string_view status_text = {});   // STOPPING=1 (+ STATUS=)
  // RELOADING=1 with MONOTONIC_USEC=: systemd >= 253 needs the timestamp for Type=notify-reload;
  // older managers (bookworm has 252) ignore the field. Send ready() when the reload is done.
  NotifyOutcome reloading(std::string_view status_text = {});

  // How often the event loop should send WATCHDOG=1: half of WATCHDOG_USEC (systemd's own advice),
  // or nullopt when the watchdog is off (or meant for another pid, per WATCHDOG_PID).
  static std::optional<std::chrono::microseconds> watchdog_ping_interval();

  // Whether NOTIFY_SOCKET is set at all.
  static bool enabled();

  // strerror text of the last failed send; empty if none failed.
  const std::string& last_error() const { return last_error_; }
  std::uint64_t failures() const { return failures_; }

 private:
  NotifyOutcome send(const std::string& message);
  std::string last_error_;
  std::uint64_t failures_ = 0;
};

// Sends WATCHDOG=1 at most once per ping interval from a loop that calls tick() often (at least
// once per interval). Inert when the watchdog is off, so the loop can call it unconditionally.
class WatchdogPacer {
 public:
  explicit WatchdogPacer(ServiceNotifier& notifier,
                         std::optional<std::chrono::microseconds> interval = ServiceNotifier::watchdog_ping_interval())
      : notifier_(notifier), interval_ns_(interval ? interval->count() * 1000 : 0) {}
  bool active() const { return interval_ns_ > 0; }
  // now_mono_ns: CLOCK_MONOTONIC. Returns true when a ping was sent.
  bool tick(std::int64_t now_mono_ns);

 private:
  ServiceNotifier& notifier_;
  std::int64_t interval_ns_;
  std::int64_t last_ping_ns_ = -1;
};

}  // namespace mdshm::service
