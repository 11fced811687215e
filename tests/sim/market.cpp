#include "market.hpp"

#include <optional>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <unordered_set>

#include "decimal.hpp"
#include "model/market.hpp"

namespace mdshm::sim {
namespace {

constexpr std::size_t kCacheRows = 8;

// The smallest lot the generated quantities are cut in: fine enough for any spot pair, coarse
// enough that a kline's volume splits into many trades.
std::int64_t lot_of(const KlineRow& r) {
  const std::int64_t g = std::gcd(r.volume, r.taker_buy_volume);
  return g == 0 ? 1 : std::gcd(g, std::int64_t{1'000'000});
}

// Trades a row gets: its count, raised to the number of distinct price points OHLC needs and
// capped by how many lots the volume holds (every trade has a positive quantity).
std::int64_t planned_count(const KlineRow& r) {
  if (r.volume <= 0) return 0;
  std::int64_t needed = r.open == r.close ? 1 : 2;
  if (r.high != r.open && r.high != r.close) ++needed;
  if (r.low != r.open && r.low != r.close && r.low != r.high) ++needed;
  std::int64_t n = std::max(r.trade_count, needed);
  const std::int64_t lot = lot_of(r);
  const std::int64_t buy_lots = r.taker_buy_volume / lot, sell_lots = (r.volume - r.taker_buy_volume) / lot;
  std::int64_t cap = buy_lots + sell_lots;
  return std::min(n, cap);
}

// m positive parts summing to total (m <= total), cut at m-1 distinct random points.
std::vector<std::int64_t> split(std::int64_t total, std::int64_t m, std::mt19937_64& rng) {
  std::vector<std::int64_t> parts;
  if (m <= 0) return parts;
  std::vector<std::int64_t> cuts;
  if (m - 1 > total / 2) {
    // Dense: every part is 1 plus a share of the rest.
    parts.assign(static_cast<std::size_t>(m), 1);
    std::uniform_int_distribution<std::int64_t> pick(0, m - 1);
    for (std::int64_t left = total - m; left > 0; --left) ++parts[static_cast<std::size_t>(pick(rng))];
    return parts;
  }
  std::unordered_set<std::int64_t> seen;
  std::uniform_int_distribution<std::int64_t> cut(1, total - 1);
  while (static_cast<std::int64_t>(cuts.size()) < m - 1) {
    const std::int64_t c = cut(rng);
    if (seen.insert(c).second) cuts.push_back(c);
  }
  std::sort(cuts.begin(), cuts.end());
  std::int64_t prev = 0;
  for (std::int64_t c : cuts) {
    parts.push_back(c - prev);
    prev = c;
  }
  parts.push_back(total - prev);
  return parts;
}

std::int64_t quote_of(const GenTrade& t) {
  return static_cast<std::int64_t>(static_cast<__int128>(t.price) * t.qty / kUnitsPerOne);
}

// Makes the quote volume of one side's trades (taker buys, or taker sells) equal `target`, the
// CSV's, keeping prices of the open, close, high and low, every trade's side, the side's volume and
// the trade count, so OHLC, volumes and counts still match the row. Without it the exchange's closed
// kline (the CSV row) would differ from a bar built from these trades in quote volume alone.
//  1. One interior trade strictly inside (low, high) is kept to a single lot: repricing it by one
//     tick then moves the quote by one unit, which settles whatever is left at the end.
//  2. Lots move from the cheapest trades to the dearest (or back), in bulk.
//  3. If the side's prices do not reach far enough, its biggest trades are repriced toward it.
//  4. Lots move between neighbouring price levels for the rest, then step 1's trade is repriced.
// False when the target is out of reach (a quote off the tick x lot grid, no room to move).
bool match_quote(std::vector<GenTrade>& trades, bool taker_buys, std::int64_t target, std::int64_t lot,
                 std::int64_t tick, std::int64_t low, std::int64_t high) {
  std::vector<std::size_t> side;
  auto side_quote = [&] {
    __int128 q = 0;
    for (std::size_t i = 0; i < trades.size(); ++i)
      if (trades[i].buyer_is_maker != taker_buys) q += quote_of(trades[i]);
    return q;
  };
  for (std::size_t i = 0; i < trades.size(); ++i)
    if (trades[i].buyer_is_maker != taker_buys) side.push_back(i);
  if (side.empty()) return target == 0;
  // Quantities were cut in `lot`s; the quote may need a finer step (a divisor of lot, still a valid
  // quantity step): moving one such step one tick changes the quote by `unit`.
  const __int128 diff = target - side_quote();
  if (diff * kUnitsPerOne % tick != 0) return diff == 0;
  const __int128 need = diff * kUnitsPerOne / tick % lot;  // gcd(lot, x) = gcd(lot, x mod lot)
  lot = std::gcd(lot, static_cast<std::int64_t>(need < 0 ? -need : need));
  const __int128 unit = static_cast<__int128>(tick) * lot / kUnitsPerOne;
  if (unit <= 0) return diff == 0;
  std::optional<std::size_t> fine;
  for (std::size_t k = 0; k < side.size() && !fine && side.size() > 1; ++k) {
    const std::size_t i = side[k];
    if (i == 0 || i + 1 == trades.size() || trades[i].price <= low || trades[i].price >= high) continue;
    fine = i;
    auto& other = trades[side[k == 0 ? 1 : 0]];
    other.qty += trades[i].qty - lot;
    trades[i].qty = lot;
    side.erase(side.begin() + static_cast<std::ptrdiff_t>(k));
  }
  std::int64_t steps = static_cast<std::int64_t>((target - side_quote()) / unit);  // lot-ticks still to move up
  std::sort(side.begin(), side.end(), [&](std::size_t a, std::size_t b) { return trades[a].price < trades[b].price; });
  // Moves up to `m` lots from g to t (prices d ticks apart, the right way for `steps`).
  auto move = [&](GenTrade& g, GenTrade& t, std::int64_t d, std::int64_t m) {
    m = std::min(m, g.qty / lot - 1);
    if (m <= 0) return std::int64_t{0};
    g.qty -= m * lot;
    t.qty += m * lot;
    steps -= (steps > 0 ? 1 : -1) * m * d;
    return m;
  };
  for (std::size_t lo = 0, hi = side.size() - 1; steps != 0 && lo < hi;) {
    auto& cheap = trades[side[lo]];
    auto& dear = trades[side[hi]];
    const std::int64_t d = (dear.price - cheap.price) / tick;
    const std::int64_t want = d > 0 ? std::abs(steps) / d : 0;
    if (want == 0) break;
    if ((steps > 0 ? move(cheap, dear, d, want) : move(dear, cheap, d, want)) == want) break;
    if (steps > 0) ++lo;  // that trade is down to one lot
    else --hi;
  }
  // The side's trades may not span the price its quote needs (the walk planted the high or the low
  // on the other side, or every trade is down to one lot): reprice the trades that carry the most
  // lots toward it, within [low, high], never the open, the close or the last trade at the high or
  // the low.
  if (steps != 0) {
    std::vector<std::size_t> by_lots = side;
    std::sort(by_lots.begin(), by_lots.end(), [&](std::size_t a, std::size_t b) { return trades[a].qty > trades[b].qty; });
    // A trade at the high or the low may move while another (of either side) stays there.
    std::int64_t at_low = 0, at_high = 0;
    for (const auto& t : trades) {
      at_low += t.price == low;
      at_high += t.price == high;
    }
    for (const std::size_t i : by_lots) {
      auto& t = trades[i];
      if (steps == 0) break;
      if (i == 0 || i + 1 == trades.size() || (t.price == low && at_low < 2) || (t.price == high && at_high < 2)) continue;
      const std::int64_t lots = t.qty / lot;
      const std::int64_t price = std::clamp(t.price + steps / lots * tick, low, high);
      if (price == t.price) continue;
      at_low += (price == low) - (t.price == low);
      at_high += (price == high) - (t.price == high);
      steps -= lots * ((price - t.price) / tick);
      t.price = price;
    }
    std::sort(side.begin(), side.end(), [&](std::size_t a, std::size_t b) { return trades[a].price < trades[b].price; });
  }
  // Across each boundary between neighbouring price levels, any trade of the level on the giving
  // side may give.
  for (bool progress = true; steps != 0 && progress;) {
    progress = false;
    for (std::size_t j = 0; j + 1 < side.size() && steps != 0; ++j) {
      const std::int64_t d = (trades[side[j + 1]].price - trades[side[j]].price) / tick;
      if (d <= 0 || d > std::abs(steps)) continue;
      const std::int64_t level = trades[side[steps > 0 ? j : j + 1]].price;
      auto& taker = trades[side[steps > 0 ? j + 1 : j]];
      for (std::size_t g = 0; g < side.size() && steps != 0 && d <= std::abs(steps); ++g)
        if (trades[side[g]].price == level) progress |= move(trades[side[g]], taker, d, std::abs(steps) / d) > 0;
    }
  }
  if (steps != 0 && fine) {
    const std::int64_t price = trades[*fine].price + steps * tick;
    if (price > low && price < high) {
      trades[*fine].price = price;
      steps = 0;
    }
  }
  return steps == 0;
}

struct Acc {
  bool any = false;
  KlineRow k;
  void add_row(const KlineRow& r) {
    if (r.volume == 0 && r.trade_count == 0) return;
    if (!any) {
      k.open = r.open;
      k.high = r.high;
      k.low = r.low;
      k.first_id = r.first_id;
      k.first_trade = r.first_trade;
      any = true;
    }
    k.high = std::max(k.high, r.high);
    k.low = std::min(k.low, r.low);
    k.close = r.close;
    k.volume += r.volume;
    k.quote_volume += r.quote_volume;
    k.trade_count += r.trade_count;
    k.taker_buy_volume += r.taker_buy_volume;
    k.taker_buy_quote_volume += r.taker_buy_quote_volume;
    k.last_id = r.last_id;
    k.last_trade = r.last_trade;
  }
  void add_trade(const GenTrade& t) {
    const auto quote = quote_of(t);
    KlineRow r;
    r.open = r.high = r.low = r.close = t.price;
    r.volume = t.qty;
    r.quote_volume = quote;
    r.trade_count = trades_in(t);
    r.taker_buy_volume = t.buyer_is_maker ? 0 : t.qty;
    r.taker_buy_quote_volume = t.buyer_is_maker ? 0 : quote;
    r.first_id = r.last_id = t.id;
    r.first_trade = t.first_trade >= 0 ? t.first_trade : t.id;
    r.last_trade = t.last_trade >= 0 ? t.last_trade : t.id;
    add_row(r);
  }
};

}  // namespace

Series::Series(std::string symbol, std::uint32_t interval_s, std::vector<KlineRow> rows, std::int64_t first_id,
               std::uint64_t seed)
    : symbol_(std::move(symbol)), interval_s_(interval_s), rows_(std::move(rows)), first_id_(first_id), seed_(seed) {
  std::int64_t tick = 0;
  std::int64_t next_id = first_id_;
  for (auto& r : rows_) {
    for (std::int64_t p : {r.open, r.high, r.low, r.close}) tick = std::gcd(tick, p);
    const std::int64_t n = planned_count(r);
    if (n != r.trade_count) ++rows_adjusted_;
    r.trade_count = n;
    r.first_id = n > 0 ? next_id : -1;
    r.last_id = n > 0 ? next_id + n - 1 : -1;
    r.first_trade = r.first_id;
    r.last_trade = r.last_id;
    next_id += n;
  }
  price_tick_ = tick <= 0 ? 1 : std::min<std::int64_t>(tick, 1'000'000);
  index_traded_rows();
}

Series::Series(std::string symbol, std::vector<GenTrade> trades, bool streamed)
    : symbol_(std::move(symbol)),
      interval_s_(60),
      first_id_(trades.empty() ? 0 : trades.front().id),
      seed_(0),
      streamed_(streamed) {
  if (trades.empty()) return;
  constexpr std::int64_t kRowMs = 60'000;
  const std::int64_t first_open = bar_open_ms(trades.front().time_ms, interval_s_);
  const std::int64_t last_open = bar_open_ms(trades.back().time_ms, interval_s_);
  real_.resize(static_cast<std::size_t>((last_open - first_open) / kRowMs + 1));
  for (auto& t : trades) real_[static_cast<std::size_t>((bar_open_ms(t.time_ms, interval_s_) - first_open) / kRowMs)].push_back(t);
  std::int64_t close = trades.front().price;
  for (std::size_t i = 0; i < real_.size(); ++i) {
    Acc acc;
    for (const auto& t : real_[i]) acc.add_trade(t);
    KlineRow r = acc.k;
    if (!acc.any) {
      r.open = r.high = r.low = r.close = close;  // Binance's flat bar for a minute without trades
      r.first_id = r.last_id = r.first_trade = r.last_trade = -1;
    }
    close = r.close;
    r.open_ms = first_open + static_cast<std::int64_t>(i) * kRowMs;
    r.close_ms = r.open_ms + kRowMs - 1;
    rows_.push_back(r);
  }
  index_traded_rows();
}

void Series::index_traded_rows() {
  traded_rows_.clear();
  for (std::size_t i = 0; i < rows_.size(); ++i)
    if (rows_[i].last_id >= 0) traded_rows_.push_back(i);
}

std::int64_t Series::last_id() const {
  for (auto it = rows_.rbegin(); it != rows_.rend(); ++it)
    if (it->last_id >= 0) return it->last_id;
  return first_id_ - 1;
}

std::optional<std::size_t> Series::row_at(std::int64_t t_ms) const {
  auto it = std::upper_bound(rows_.begin(), rows_.end(), t_ms,
                             [](std::int64_t t, const KlineRow& r) { return t < r.open_ms; });
  if (it == rows_.begin()) return std::nullopt;
  --it;
  if (t_ms > it->close_ms) return std::nullopt;
  return static_cast<std::size_t>(it - rows_.begin());
}

std::optional<std::size_t> Series::row_from_id(std::int64_t id) const {
  auto it = std::lower_bound(traded_rows_.begin(), traded_rows_.end(), id,
                             [this](std::size_t r, std::int64_t v) { return rows_[r].last_id < v; });
  if (it == traded_rows_.end()) return std::nullopt;
  return *it;
}

const std::vector<GenTrade>& Series::trades_of(std::size_t row) {
  if (real()) return real_[row];
  auto it = cache_.find(row);
  if (it != cache_.end()) return it->second;
  if (cache_order_.size() >= kCacheRows) {
    cache_.erase(cache_order_.front());
    cache_order_.erase(cache_order_.begin());
  }
  cache_order_.push_back(row);
  return cache_.emplace(row, generate(row)).first->second;
}

std::vector<GenTrade> Series::generate(std::size_t row) const {
  const KlineRow& r = rows_[row];
  const std::int64_t n = r.trade_count;
  std::vector<GenTrade> out;
  if (n <= 0) return out;
  std::mt19937_64 rng(seed_ ^ (static_cast<std::uint64_t>(r.open_ms) * 0x9E3779B97F4A7C15ULL));

  // Prices: a bounded walk on the tick grid from open to close, with the high and the low planted
  // at distinct interior trades.
  std::vector<std::int64_t> price(static_cast<std::size_t>(n), r.open);
  std::uniform_int_distribution<int> step(-3, 3);
  for (std::int64_t i = 1; i < n; ++i) {
    const std::int64_t p = price[i - 1] + step(rng) * price_tick_;
    price[i] = std::clamp(p, r.low, r.high);
  }
  price[n - 1] = r.close;
  price[0] = r.open;
  const bool need_high = r.high != r.open && r.high != r.close;
  const bool need_low = r.low != r.open && r.low != r.close;
  if (n >= 4) {
    std::uniform_int_distribution<std::int64_t> interior(1, n - 2);
    const std::int64_t hi = interior(rng);
    std::int64_t lo = interior(rng);
    while (lo == hi) lo = interior(rng);
    price[hi] = r.high;
    price[lo] = r.low;
  } else if (n == 3) {
    price[1] = need_high ? r.high : need_low ? r.low : price[1];
  }

  // Times: sorted, inside the bar.
  std::vector<std::int64_t> time(static_cast<std::size_t>(n));
  std::uniform_int_distribution<std::int64_t> when(r.open_ms, r.close_ms);
  for (auto& t : time) t = when(rng);
  std::sort(time.begin(), time.end());

  // Sides and quantities: buys sum to the taker-buy volume, sells to the rest.
  const std::int64_t lot = lot_of(r);
  const std::int64_t buy_lots = r.taker_buy_volume / lot, sell_lots = (r.volume - r.taker_buy_volume) / lot;
  std::int64_t buys = 0;
  if (sell_lots == 0) {
    buys = n;
  } else if (buy_lots > 0) {
    buys = std::llround(static_cast<double>(n) * static_cast<double>(r.taker_buy_volume) /
                        static_cast<double>(r.volume));
    buys = std::clamp<std::int64_t>(buys, 1, n - 1);
    buys = std::min(buys, buy_lots);
    buys = std::max(buys, n - sell_lots);
  }
  std::vector<bool> is_buy(static_cast<std::size_t>(n), false);
  std::fill(is_buy.begin(), is_buy.begin() + buys, true);
  std::shuffle(is_buy.begin(), is_buy.end(), rng);
  const auto buy_parts = split(buy_lots, buys, rng);
  const auto sell_parts = split(sell_lots, n - buys, rng);
  std::size_t bi = 0, si = 0;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    GenTrade t;
    t.id = r.first_id + i;
    t.time_ms = time[i];
    t.price = price[i];
    t.buyer_is_maker = !is_buy[i];
    t.qty = (is_buy[i] ? buy_parts[bi++] : sell_parts[si++]) * lot;
    out.push_back(t);
  }
  const bool matched =
      match_quote(out, true, r.taker_buy_quote_volume, lot, price_tick_, r.low, r.high) &&
      match_quote(out, false, r.quote_volume - r.taker_buy_quote_volume, lot, price_tick_, r.low, r.high);
  if (!matched) ++quote_unmatched_;
  return out;
}

std::int64_t Series::previous_close(std::int64_t before_ms) {
  const auto r = row_at(before_ms - 1);
  if (!r) return rows_.empty() ? 0 : (before_ms <= rows_.front().open_ms ? rows_.front().open : rows_.back().close);
  std::int64_t last = -1;
  for (const auto& t : trades_of(*r))
    if (t.time_ms < before_ms) last = t.price;
  if (last >= 0) return last;
  return *r > 0 ? rows_[*r - 1].close : rows_[*r].open;
}

std::optional<KlineRow> Series::kline(std::uint32_t interval_s, std::int64_t open_ms, std::int64_t upto_ms) {
  if (rows_.empty() || interval_s == 0) return std::nullopt;
  const std::int64_t end_ms = open_ms + std::int64_t{interval_s} * 1000 - 1;
  if (open_ms > upto_ms || open_ms > data_end_ms() || end_ms < data_begin_ms()) return std::nullopt;
  const std::int64_t last_ms = std::min(end_ms, upto_ms);
  Acc acc;
  auto r = row_at(std::max(open_ms, data_begin_ms()));
  for (std::size_t i = r ? *r : 0; i < rows_.size() && rows_[i].open_ms <= last_ms; ++i) {
    const KlineRow& row = rows_[i];
    if (row.close_ms < open_ms) continue;
    if (row.open_ms >= open_ms && row.close_ms <= last_ms) {
      acc.add_row(row);
      continue;
    }
    for (const auto& t : trades_of(i))
      if (t.time_ms >= open_ms && t.time_ms <= last_ms) acc.add_trade(t);
  }
  KlineRow k = acc.k;
  if (!acc.any) {
    k.open = k.high = k.low = k.close = previous_close(open_ms);
    k.first_id = k.last_id = k.first_trade = k.last_trade = -1;
  }
  k.open_ms = open_ms;
  k.close_ms = end_ms;
  return k;
}

std::variant<std::vector<KlineRow>, LoadError> load_kline_csv(const std::string& path, std::uint32_t interval_s) {
  std::ifstream in(path);
  if (!in) return LoadError{"cannot open kline CSV " + path};
  std::vector<KlineRow> rows;
  std::string line;
  std::size_t line_no = 0;
  auto fail = [&](const std::string& what) {
    return LoadError{path + ":" + std::to_string(line_no) + ": " + what};
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!std::isdigit(static_cast<unsigned char>(line[0]))) {
      if (line_no == 1) continue;  // a header
      return fail("not a kline row");
    }
    std::vector<std::string_view> col;
    std::string_view rest = line;
    while (true) {
      const auto comma = rest.find(',');
      col.push_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (col.size() < 11) return fail("expected 12 columns, got " + std::to_string(col.size()));
    KlineRow r;
    auto integer = [](std::string_view s) -> std::optional<std::int64_t> {
      std::int64_t v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
      return v;
    };
    const auto open_t = integer(col[0]);
    const auto count = integer(col[8]);
    if (!open_t || !count || *count < 0) return fail("bad open time or trade count");
    // data.binance.vision switched spot files to microseconds on 2025-01-01.
    r.open_ms = *open_t > 100'000'000'000'000LL ? *open_t / 1000 : *open_t;
    r.close_ms = r.open_ms + std::int64_t{interval_s} * 1000 - 1;
    r.trade_count = *count;
    std::int64_t* dec[] = {&r.open, &r.high, &r.low, &r.close, &r.volume};
    for (int i = 0; i < 5; ++i) {
      const auto v = parse_decimal(col[static_cast<std::size_t>(i + 1)]);
      if (!v) return fail("bad decimal in column " + std::to_string(i + 2));
      *dec[i] = *v;
    }
    const auto q = parse_decimal(col[7]), tb = parse_decimal(col[9]), tbq = parse_decimal(col[10]);
    if (!q || !tb || !tbq) return fail("bad quote or taker-buy volume");
    r.quote_volume = *q;
    r.taker_buy_volume = *tb;
    r.taker_buy_quote_volume = *tbq;
    if (r.low > r.high || r.open < r.low || r.open > r.high || r.close < r.low || r.close > r.high ||
        r.taker_buy_volume > r.volume)
      return fail("inconsistent OHLCV");
    if (!rows.empty() && r.open_ms <= rows.back().open_ms) return fail("rows not in time order");
    rows.push_back(r);
  }
  return rows;
}

std::vector<KlineRow> derive_rows(const std::vector<KlineRow>& source, double factor, std::int64_t price_step,
                                  std::int64_t qty_step) {
  auto px = [&](std::int64_t p) {
    const double v = static_cast<double>(p) * factor / static_cast<double>(price_step);
    return static_cast<std::int64_t>(std::llround(v)) * price_step;
  };
  auto qty = [&](std::int64_t q) {
    const double v = static_cast<double>(q) / factor / static_cast<double>(qty_step);
    return static_cast<std::int64_t>(std::floor(v)) * qty_step;
  };
  // The quote volume keeps the source's average price (times factor) over the new volume, on the
  // grid of one price step times one quantity step, so that trades can add up to it.
  const std::int64_t grid = std::max<std::int64_t>(1, price_step * qty_step / kUnitsPerOne);
  auto quote = [&](const KlineRow& r, std::int64_t q, std::int64_t v_source, std::int64_t v) -> std::int64_t {
    if (v_source <= 0) return 0;
    const long double x = static_cast<long double>(q) * factor * static_cast<long double>(v) / static_cast<long double>(v_source);
    const std::int64_t rounded = static_cast<std::int64_t>(std::llroundl(x / static_cast<long double>(grid))) * grid;
    // Rounded prices may leave that average a hair outside what trades can reach: all of the volume
    // at the low (or high) but one step each for the open and the close trade.
    const auto at = [&](std::int64_t p) { return static_cast<std::int64_t>(static_cast<__int128>(p) * v / kUnitsPerOne); };
    const std::int64_t margin = 2 * (r.high - r.low) / price_step * grid;
    const std::int64_t lo = at(r.low) + margin, hi = at(r.high) - margin;
    return lo <= hi ? std::clamp(rounded, lo, hi) : rounded;
  };
  std::vector<KlineRow> out = source;
  for (auto& r : out) {
    const KlineRow s = r;
    r.open = px(r.open);
    r.high = px(r.high);
    r.low = px(r.low);
    r.close = px(r.close);
    r.volume = qty(r.volume);
    r.taker_buy_volume = std::min(qty(r.taker_buy_volume), r.volume);
    r.taker_buy_quote_volume = quote(r, s.taker_buy_quote_volume, s.taker_buy_volume, r.taker_buy_volume);
    r.quote_volume = r.taker_buy_quote_volume + quote(r, s.quote_volume - s.taker_buy_quote_volume,
                                                      s.volume - s.taker_buy_volume, r.volume - r.taker_buy_volume);
    if (r.volume == 0) r.trade_count = 0;
  }
  return out;
}

Series& Market::add(std::string symbol, std::uint32_t interval_s, std::vector<KlineRow> rows) {
  for (auto& c : symbol) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::int64_t first_id = 100'000'000LL * static_cast<std::int64_t>(series_.size() + 1);
  const std::uint64_t seed = std::hash<std::string>{}(symbol);
  series_.push_back(std::make_unique<Series>(std::move(symbol), interval_s, std::move(rows), first_id, seed));
  return *series_.back();
}

Series& Market::add_trades(std::string symbol, std::vector<GenTrade> trades, bool streamed) {
  for (auto& c : symbol) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  series_.push_back(std::make_unique<Series>(std::move(symbol), std::move(trades), streamed));
  return *series_.back();
}

Series* Market::find(std::string_view symbol) {
  for (auto& s : series_) {
    if (s->symbol().size() != symbol.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < symbol.size() && same; ++i)
      same = std::toupper(static_cast<unsigned char>(symbol[i])) == s->symbol()[i];
    if (same) return s.get();
  }
  return nullptr;
}

}  // namespace mdshm::sim
