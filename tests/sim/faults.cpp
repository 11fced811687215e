#include "faults.hpp"

#include <charconv>
#include <vector>

namespace mdshm::sim {
namespace {

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\r' && s[j] != '\n') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

bool to_int(std::string_view s, int& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v >= 0;
}

}  // namespace

std::string apply_command(std::string_view line, Faults& f, const ControlActions& a) {
  const auto w = words(line);
  if (w.empty()) return "error empty command";
  const std::string_view cmd = w[0];
  int n = 0;
  auto count_arg = [&](int& field) -> std::string {
    if (w.size() != 2 || !to_int(w[1], n)) return "error usage: " + std::string(cmd) + " N";
    field += n;
    return "ok " + std::string(cmd) + " " + std::to_string(field);
  };
  if (cmd == "drop") return "ok dropped " + std::to_string(a.drop_all ? a.drop_all() : 0);
  if (cmd == "shutdown") return "ok notified " + std::to_string(a.shutdown_all ? a.shutdown_all() : 0);
  if (cmd == "clock") return "ok " + std::to_string(a.clock_ms ? a.clock_ms() : 0);
  if (cmd == "stats") return "ok " + (a.stats ? a.stats() : std::string{});
  if (cmd == "malformed") return count_arg(f.malformed);
  if (cmd == "truncate") return count_arg(f.truncate);
  if (cmd == "duplicate") return count_arg(f.duplicate);
  if (cmd == "reorder") return count_arg(f.reorder);
  if (cmd == "hole") return count_arg(f.hole);
  if (cmd == "rest_partial") return count_arg(f.rest_partial);
  auto seconds_arg = [&](std::chrono::steady_clock::time_point& until) -> bool {
    double s = 0;
    if (w.size() != 2) return false;
    auto [p, ec] = std::from_chars(w[1].data(), w[1].data() + w[1].size(), s);
    if (ec != std::errc() || p != w[1].data() + w[1].size() || s < 0) return false;
    until = std::chrono::steady_clock::now() +
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
    return true;
  };
  if (cmd == "stall") return seconds_arg(f.stall_until) ? "ok stall" : "error usage: stall SECONDS";
  if (cmd == "quiet") return seconds_arg(f.quiet_until) ? "ok quiet" : "error usage: quiet SECONDS";
  if (cmd == "rest_down") return seconds_arg(f.rest_down_until) ? "ok rest_down" : "error usage: rest_down SECONDS";
  if (cmd == "blackout") {
    if (!seconds_arg(f.blackout_until)) return "error usage: blackout SECONDS";
    return "ok blackout, dropped " + std::to_string(a.drop_all ? a.drop_all() : 0);
  }
  if (cmd == "blackout_on") {
    double s = 0;
    if (w.size() != 3) return "error usage: blackout_on TEXT SECONDS";
    auto [p, ec] = std::from_chars(w[2].data(), w[2].data() + w[2].size(), s);
    if (ec != std::errc() || p != w[2].data() + w[2].size() || s < 0) return "error usage: blackout_on TEXT SECONDS";
    f.blackout_on = std::string(w[1]);
    f.blackout_on_for = std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
    return "ok blackout_on " + f.blackout_on;
  }
  if (cmd == "rest_slow") {
    if (w.size() != 2 || !to_int(w[1], n)) return "error usage: rest_slow MS";
    f.rest_slow_ms = n;
    return "ok rest_slow " + std::to_string(n);
  }
  if (cmd == "rest_error") {
    RestFault r;
    if (w.size() < 3 || w.size() > 4 || !to_int(w[1], r.status) || !to_int(w[2], r.remaining) ||
        r.status < 100 || r.status > 599)
      return "error usage: rest_error STATUS N [RETRY_AFTER_S]";
    if (w.size() == 4 && !to_int(w[3], r.retry_after_s)) return "error usage: rest_error STATUS N [RETRY_AFTER_S]";
    if (w.size() == 3 && (r.status == 429 || r.status == 418)) r.retry_after_s = 1;
    f.rest_errors.push_back(r);
    return "ok rest_error " + std::to_string(r.status) + " x" + std::to_string(r.remaining);
  }
  return "error unknown command '" + std::string(cmd) + "'";
}

}  // namespace mdshm::sim
