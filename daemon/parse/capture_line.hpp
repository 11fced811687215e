// One line of a frame capture: the format of ../shared/data/binance/ws/ and of `mdshmd --record`.
//   first line (optional):  <url> <-> <connect-time>
//   every other line:       [<receive-time>: ]<frame JSON>
// receive-time is Unix seconds with a fraction, e.g. 1633998512.0633569.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mdshm::parse {

struct CaptureLine {
  std::optional<double> receive_time_s;  // absent when the line has no prefix
  std::string_view frame;                // the JSON text, untouched
};

// nullopt for blank lines and the URL header line.
inline std::optional<CaptureLine> parse_capture_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.empty() || line.find(" <-> ") != std::string_view::npos) return std::nullopt;
  if (line.front() == '{' || line.front() == '[') return CaptureLine{std::nullopt, line};
  const auto colon = line.find(": ");
  if (colon == std::string_view::npos) return CaptureLine{std::nullopt, line};
  double t = 0;
  const auto [ptr, ec] = std::from_chars(line.data(), line.data() + colon, t);
  if (ec != std::errc() || ptr != line.data() + colon) return CaptureLine{std::nullopt, line};
  return CaptureLine{t, line.substr(colon + 2)};
}

}  // namespace mdshm::parse
