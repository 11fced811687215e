// Real trade dumps for the simulator: aggTrades CSVs as data.binance.vision publishes them, and the
// aggTrade frames of a capture. Errors name the file and line.
#pragma once

#include <istream>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "market.hpp"
#include "stream.hpp"

namespace mdshm::sim {

// A spot aggTrades CSV (data/spot/.../aggTrades/SYMBOL-aggTrades-DAY.csv): no header (one is
// skipped), 8 columns: agg trade id, price, quantity, first trade id, last trade id, timestamp,
// is buyer maker, is best match (True/False). Timestamps are ms, or µs in files from 2025-01-01 on
// (told apart by size). Ids must increase and times must not go back. `name` is used in errors.
std::variant<std::vector<GenTrade>, LoadError> parse_agg_trades_csv(std::istream& in, const std::string& name);
std::variant<std::vector<GenTrade>, LoadError> load_agg_trades_csv(const std::string& path);

// The aggTrade frames among `frames`, by symbol (upper case), in id order. A malformed aggTrade
// frame is an error naming its line.
std::variant<std::map<std::string, std::vector<GenTrade>>, LoadError> capture_trades(
    const std::vector<ReplayFrame>& frames);

}  // namespace mdshm::sim
