// The scalar rules every parsed number obeys: exact decimals, sane timestamps, clean symbols.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "mdshm/layout.hpp"

namespace mdshm::parse {

// Binance sends prices and quantities as plain decimal strings ("1632.46000000"). GCC 12's
// std::from_chars returns the correctly rounded nearest double, so the shortest printout of the
// result gives the exchange's digits back. The grammar is stricter than from_chars: a leading
// digit (no sign, no "nan"/"inf", no hex), no exponent, nothing trailing.
inline bool parse_decimal(std::string_view s, double& out) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::fixed);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return false;
  out = v;
  return true;
}

// Exchange timestamps in milliseconds: anything before Binance-era crypto (2009-01-01) or after
// 2100-01-01 is a unit mix-up (seconds, microseconds) or garbage, never a real event.
inline constexpr std::int64_t kMinTimeMs = 1230768000000;  // 2009-01-01T00:00:00Z
inline constexpr std::int64_t kMaxTimeMs = 4102444800000;  // 2100-01-01T00:00:00Z
constexpr bool plausible_time_ms(std::int64_t t) { return t >= kMinTimeMs && t < kMaxTimeMs; }

// A symbol in a fixed buffer (NUL-padded like the segment header's), so a frame costs no
// allocation. Binance spot symbols are upper-case letters and digits; stream names spell them in
// lower case, so comparisons ignore case.
struct Symbol {
  char chars[kSymbolLen] = {};
  std::uint8_t size = 0;

  std::string_view view() const { return {chars, size}; }
  bool empty() const { return size == 0; }

  // false (and left empty) unless 1..kSymbolLen-1 characters of [A-Za-z0-9]; stored upper-case.
  bool assign(std::string_view s) {
    clear();
    if (s.empty() || s.size() >= kSymbolLen) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return clear(), false;
      chars[i] = c;
    }
    size = static_cast<std::uint8_t>(s.size());
    return true;
  }
  void clear() {
    for (auto& c : chars) c = '\0';
    size = 0;
  }
  bool equals_ignore_case(std::string_view s) const {
    if (s.size() != size) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (c != chars[i]) return false;
    }
    return true;
  }
};

}  // namespace mdshm::parse
