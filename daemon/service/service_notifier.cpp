#include "service/service_notifier.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdlib>
#include <cstring>

namespace mdshm::service {

namespace {

// A STATUS= value ends at the first newline in the protocol; anything after it would be read as
// further assignments (e.g. a stray "READY=1" in a log message). Flatten instead.
std::string one_line(std::string_view text) {
  std::string s(text);
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string with_status(std::string message, std::string_view status_text) {
  if (!status_text.empty()) message += "\nSTATUS=" + one_line(status_text);
  return message;
}

}  // namespace

bool ServiceNotifier::enabled() {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s && *s;
}

NotifyOutcome ServiceNotifier::send(const std::string& message) {
  // unset_environment = 0: the watchdog and later notifications still need NOTIFY_SOCKET.
  const int r = sd_notify(0, message.c_str());
  if (r > 0) return NotifyOutcome::sent;
  if (r == 0) return NotifyOutcome::disabled;
  ++failures_;
  last_error_ = std::strerror(-r);
  return NotifyOutcome::failed;
}

NotifyOutcome ServiceNotifier::status(std::string_view text) { return send("STATUS=" + one_line(text)); }
NotifyOutcome ServiceNotifier::ready(std::string_view s) { return send(with_status("READY=1", s)); }
NotifyOutcome ServiceNotifier::watchdog() { return send("WATCHDOG=1"); }
NotifyOutcome ServiceNotifier::stopping(std::string_view s) { return send(with_status("STOPPING=1", s)); }

NotifyOutcome ServiceNotifier::reloading(std::string_view s) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const auto usec = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
  return send(with_status("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec), s));
}

std::optional<std::chrono::microseconds> ServiceNotifier::watchdog_ping_interval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(static_cast<std::int64_t>(usec / 2 > 0 ? usec / 2 : 1));
}

bool WatchdogPacer::tick(std::int64_t now_mono_ns) {
  if (interval_ns_ <= 0) return false;
  if (last_ping_ns_ >= 0 && now_mono_ns - last_ping_ns_ < interval_ns_) return false;
  last_ping_ns_ = now_mono_ns;
  notifier_.watchdog();
  return true;
}

}  // namespace mdshm::service
