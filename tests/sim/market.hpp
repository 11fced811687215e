// The simulator's market: per symbol either kline series loaded from data.binance.vision CSVs (or
// derived from one) with the aggTrades that each kline implies, generated on demand, or real
// aggTrades replayed as they were (trades.hpp loads them); klines of any interval are built from the
// trades. All prices and quantities are exact 1e-8 integers (decimal.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mdshm::sim {

struct KlineRow {
  std::int64_t open_ms = 0;
  std::int64_t close_ms = 0;  // open + interval - 1, as Binance writes it
  std::int64_t open = 0, high = 0, low = 0, close = 0;
  std::int64_t volume = 0, quote_volume = 0;
  std::int64_t trade_count = 0;
  std::int64_t taker_buy_volume = 0, taker_buy_quote_volume = 0;
  std::int64_t first_id = -1, last_id = -1;  // aggTrade ids; -1 when the bar has no trade
  // The exchange's trade ids, what a kline's `f` and `L` carry; -1 when the bar has no trade.
  // Generated trades stand for one trade each, with the aggTrade's id.
  std::int64_t first_trade = -1, last_trade = -1;
};

// One aggTrade, generated or real.
struct GenTrade {
  std::int64_t id = 0;
  std::int64_t time_ms = 0;
  std::int64_t price = 0;
  std::int64_t qty = 0;
  bool buyer_is_maker = false;  // Binance `m`: true = the taker sold
  // The exchange's trade ids it aggregates (`f`, `l`); -1 for generated trades, which stand for
  // one trade whose id is `id`.
  std::int64_t first_trade = -1, last_trade = -1;
};

// Trades an aggTrade stands for: what a Binance kline's `n` counts.
inline std::int64_t trades_in(const GenTrade& t) {
  return t.first_trade >= 0 && t.last_trade >= t.first_trade ? t.last_trade - t.first_trade + 1 : 1;
}

struct LoadError {
  std::string message;
};

// One symbol: the source klines (one interval) and the trades generated from them, or real trades
// and one-minute rows computed from them (empty minutes included, flat at the previous close).
class Series {
 public:
  Series(std::string symbol, std::uint32_t interval_s, std::vector<KlineRow> rows, std::int64_t first_id,
         std::uint64_t seed);
  // Real trades, in id order. `streamed`: the stream sends them (and closed klines); false when a
  // capture already carries this symbol's frames and the series only answers REST.
  Series(std::string symbol, std::vector<GenTrade> trades, bool streamed);

  const std::string& symbol() const { return symbol_; }
  std::uint32_t interval_s() const { return interval_s_; }
  const std::vector<KlineRow>& rows() const { return rows_; }
  std::int64_t data_begin_ms() const { return rows_.empty() ? 0 : rows_.front().open_ms; }
  std::int64_t data_end_ms() const { return rows_.empty() ? -1 : rows_.back().close_ms; }
  std::int64_t first_id() const { return first_id_; }
  std::int64_t last_id() const;  // first_id - 1 when there is no trade at all
  bool real() const { return !real_.empty(); }
  bool streamed() const { return streamed_; }
  // Rows whose trade count could not be honoured exactly (e.g. volume too small to split); 0 on real data.
  std::size_t rows_adjusted() const { return rows_adjusted_; }
  // Rows generated so far whose trades could not be made to add up to the row's quote volume.
  std::size_t quote_unmatched() const { return quote_unmatched_; }

  // The trades of row `i`, generated deterministically (same seed, same trades). Kept in a small
  // cache, so the reference stays valid only until the next call.
  const std::vector<GenTrade>& trades_of(std::size_t row);
  std::optional<std::size_t> row_at(std::int64_t t_ms) const;  // row whose interval holds t
  // The row holding the first trade whose id is `id` or more (real ids need not be contiguous).
  std::optional<std::size_t> row_from_id(std::int64_t id) const;

  // The kline of `interval_s` opening at `open_ms` as it stood at time `upto_ms` (only trades up to
  // then count, so the bar containing upto is the unfinished one). nullopt outside the data or when
  // the bar had not opened by upto. A bar without trades is flat at the previous close, volume 0.
  std::optional<KlineRow> kline(std::uint32_t interval_s, std::int64_t open_ms, std::int64_t upto_ms);

 private:
  std::vector<GenTrade> generate(std::size_t row) const;
  std::int64_t previous_close(std::int64_t before_ms);
  void index_traded_rows();

  std::string symbol_;
  std::uint32_t interval_s_;
  std::vector<KlineRow> rows_;
  std::int64_t first_id_;
  std::uint64_t seed_;
  std::int64_t price_tick_ = 1;
  std::size_t rows_adjusted_ = 0;
  mutable std::size_t quote_unmatched_ = 0;  // counted by generate(), which is otherwise pure
  std::map<std::size_t, std::vector<GenTrade>> cache_;
  std::vector<std::size_t> cache_order_;
  std::vector<std::vector<GenTrade>> real_;  // real trades by row; empty for generated series
  bool streamed_ = true;
  std::vector<std::size_t> traded_rows_;     // rows with at least one trade, for id look-ups
};

// Reads a data.binance.vision kline CSV: 12 columns, no header (a header line is skipped), ms
// timestamps (µs in 2025+ files, detected by size). Errors name the file and line.
std::variant<std::vector<KlineRow>, LoadError> load_kline_csv(const std::string& path,
                                                             std::uint32_t interval_s);

// A series whose prices are the source's times `factor` (rounded to `price_step` units) and whose
// volumes are divided by it (rounded down to `qty_step` units): BTC from ETH for the demo.
std::vector<KlineRow> derive_rows(const std::vector<KlineRow>& source, double factor,
                                  std::int64_t price_step, std::int64_t qty_step);

class Market {
 public:
  Series& add(std::string symbol, std::uint32_t interval_s, std::vector<KlineRow> rows);
  Series& add_trades(std::string symbol, std::vector<GenTrade> trades, bool streamed);
  Series* find(std::string_view symbol);  // case-insensitive
  std::vector<std::unique_ptr<Series>>& all() { return series_; }

 private:
  std::vector<std::unique_ptr<Series>> series_;
};

}  // namespace mdshm::sim
