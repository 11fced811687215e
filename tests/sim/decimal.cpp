#include "decimal.hpp"

#include <charconv>
#include <cstdio>

namespace mdshm::sim {

std::optional<std::int64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 30) return std::nullopt;
  const auto dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  if (whole.empty() || frac.size() > 8 + 10) return std::nullopt;
  std::int64_t w = 0;
  auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), w);
  if (ec != std::errc() || p != whole.data() + whole.size() || w < 0) return std::nullopt;
  if (w > INT64_MAX / kUnitsPerOne - 1) return std::nullopt;
  std::int64_t f = 0;
  for (std::size_t i = 0; i < frac.size(); ++i) {
    const char c = frac[i];
    if (c < '0' || c > '9') return std::nullopt;
    if (i >= 8) {
      if (c != '0') return std::nullopt;  // finer than Binance's eight places
      continue;
    }
    f = f * 10 + (c - '0');
  }
  for (std::size_t i = frac.size(); i < 8; ++i) f *= 10;
  return w * kUnitsPerOne + f;
}

void append_decimal(std::string& out, std::int64_t units) {
  char buf[40];
  const bool neg = units < 0;
  const std::uint64_t u = neg ? 0 - static_cast<std::uint64_t>(units) : static_cast<std::uint64_t>(units);
  const int n = std::snprintf(buf, sizeof buf, "%s%llu.%08llu", neg ? "-" : "",
                              static_cast<unsigned long long>(u / kUnitsPerOne),
                              static_cast<unsigned long long>(u % kUnitsPerOne));
  out.append(buf, static_cast<std::size_t>(n));
}

std::string format_decimal(std::int64_t units) {
  std::string s;
  append_decimal(s, units);
  return s;
}

}  // namespace mdshm::sim
