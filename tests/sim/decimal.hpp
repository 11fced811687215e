// Binance's decimal strings ("1983.55000000") as exact integers of 1e-8 units. The generated trades
// must sum to a kline's volume exactly, which doubles cannot promise; eight places is what Binance
// spot prints for every price and quantity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mdshm::sim {

inline constexpr std::int64_t kUnitsPerOne = 100'000'000;

// nullopt on anything that is not a plain non-negative decimal with at most eight places.
std::optional<std::int64_t> parse_decimal(std::string_view s);
// Always eight places, as Binance prints them: 198355000000 -> "1983.55000000".
std::string format_decimal(std::int64_t units);
void append_decimal(std::string& out, std::int64_t units);

}  // namespace mdshm::sim
