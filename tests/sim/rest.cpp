#include "rest.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

#include "model/market.hpp"
#include "stream.hpp"

namespace mdshm::sim {
namespace {

using Params = std::map<std::string, std::string, std::less<>>;

Params parse_query(std::string_view q) {
  Params p;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view kv = q.substr(0, amp);
    const auto eq = kv.find('=');
    if (eq != std::string_view::npos) p.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return p;
}

RestReply error(int status, int code, std::string_view msg, int weight) {
  return {status, "{\"code\":" + std::to_string(code) + ",\"msg\":\"" + std::string(msg) + "\"}", weight};
}

// Absent -> nullopt in *out and true; present but not an integer -> false.
bool int_param(const Params& p, std::string_view name, std::optional<std::int64_t>& out) {
  const auto it = p.find(name);
  out.reset();
  if (it == p.end()) return true;
  std::int64_t v = 0;
  const auto& s = it->second;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return false;
  out = v;
  return true;
}

RestReply klines(Market& market, const Params& p, std::int64_t clock_ms) {
  const int w = kWeightKlines;
  const auto sym = p.find("symbol");
  const auto iv = p.find("interval");
  if (sym == p.end()) return error(400, -1102, "Mandatory parameter 'symbol' was not sent.", w);
  if (iv == p.end()) return error(400, -1102, "Mandatory parameter 'interval' was not sent.", w);
  Series* s = market.find(sym->second);
  if (!s) return error(400, -1121, "Invalid symbol.", w);
  const auto interval = interval_seconds(iv->second);
  if (!interval) return error(400, -1120, "Invalid interval.", w);
  std::optional<std::int64_t> start, end, limit;
  if (!int_param(p, "startTime", start) || !int_param(p, "endTime", end) || !int_param(p, "limit", limit))
    return error(400, -1100, "Illegal characters found in a parameter.", w);
  const std::int64_t n = limit.value_or(500);
  if (n < 1 || n > kMaxLimit) return error(400, -1130, "Invalid data sent for a parameter.", w);
  const std::int64_t len = std::int64_t{*interval} * 1000;
  const std::int64_t newest = bar_open_ms(std::min({clock_ms, s->data_end_ms(), end.value_or(INT64_MAX)}), *interval);
  const std::int64_t oldest = bar_open_ms(s->data_begin_ms(), *interval);
  std::int64_t first;
  if (start) {
    first = std::max(oldest, bar_open_ms(*start, *interval) + (bar_open_ms(*start, *interval) < *start ? len : 0));
  } else {
    first = std::max(oldest, newest - (n - 1) * len);
  }
  RestReply r{200, "[", w};
  std::int64_t count = 0;
  for (std::int64_t open = first; open <= newest && count < n; open += len) {
    const auto k = s->kline(*interval, open, clock_ms);
    if (!k) continue;
    if (count++) r.body += ',';
    append_kline_json(r.body, *k);
  }
  r.body += ']';
  return r;
}

RestReply agg_trades(Market& market, const Params& p, std::int64_t clock_ms) {
  const int w = kWeightAggTrades;
  const auto sym = p.find("symbol");
  if (sym == p.end()) return error(400, -1102, "Mandatory parameter 'symbol' was not sent.", w);
  Series* s = market.find(sym->second);
  if (!s) return error(400, -1121, "Invalid symbol.", w);
  std::optional<std::int64_t> from_id, start, end, limit;
  if (!int_param(p, "fromId", from_id) || !int_param(p, "startTime", start) || !int_param(p, "endTime", end) ||
      !int_param(p, "limit", limit))
    return error(400, -1100, "Illegal characters found in a parameter.", w);
  const std::int64_t n = limit.value_or(500);
  if (n < 1 || n > kMaxLimit) return error(400, -1130, "Invalid data sent for a parameter.", w);
  if (start && end && (*end < *start || *end - *start > 3'600'000))
    return error(400, -1127, "More than 1 hours between startTime and endTime.", w);
  const std::int64_t until = std::min(clock_ms, end.value_or(INT64_MAX));
  const auto& rows = s->rows();

  // Find the row and trade to start from, then walk forward.
  std::size_t row = 0, index = 0;
  if (from_id) {
    // Binance: trades whose id is fromId or more, in id order.
    if (auto r = s->row_from_id(*from_id)) {
      row = *r;
      const auto& tr = s->trades_of(row);
      index = static_cast<std::size_t>(
          std::lower_bound(tr.begin(), tr.end(), *from_id, [](const GenTrade& g, std::int64_t id) { return g.id < id; }) -
          tr.begin());
    } else {
      row = rows.size();
    }
  } else if (start) {
    auto it = std::lower_bound(rows.begin(), rows.end(), *start,
                               [](const KlineRow& k, std::int64_t t) { return k.close_ms < t; });
    row = static_cast<std::size_t>(it - rows.begin());
    if (row < rows.size()) {
      const auto& tr = s->trades_of(row);
      index = static_cast<std::size_t>(
          std::lower_bound(tr.begin(), tr.end(), *start,
                           [](const GenTrade& g, std::int64_t t) { return g.time_ms < t; }) -
          tr.begin());
    }
  } else {
    // The most recent n trades up to the clock: step back from the clock's row.
    auto r = s->row_at(std::min(until, s->data_end_ms()));
    if (!r) r = until >= s->data_end_ms() && !rows.empty() ? std::optional<std::size_t>(rows.size() - 1) : std::nullopt;
    if (!r) return {200, "[]", w};
    std::int64_t need = n;
    std::size_t k = *r;
    std::size_t visible = 0;
    for (const auto& t : s->trades_of(k)) visible += t.time_ms <= until;
    while (true) {
      if (static_cast<std::int64_t>(visible) >= need || k == 0) {
        row = k;
        index = static_cast<std::size_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(visible) - need));
        break;
      }
      need -= static_cast<std::int64_t>(visible);
      --k;
      visible = s->trades_of(k).size();
    }
  }
  RestReply r{200, "[", w};
  std::int64_t count = 0;
  for (; row < rows.size() && count < n; ++row, index = 0) {
    if (rows[row].open_ms > until) break;
    const auto& tr = s->trades_of(row);
    for (; index < tr.size() && count < n; ++index) {
      const auto& t = tr[index];
      if (t.time_ms > until) break;
      if (start && t.time_ms < *start) continue;
      if (count++) r.body += ',';
      append_agg_trade_json(r.body, t);
    }
  }
  r.body += ']';
  return r;
}

}  // namespace

RestReply handle_rest(Market& market, std::string_view target, std::int64_t clock_ms) {
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const Params p = parse_query(q == std::string_view::npos ? std::string_view{} : target.substr(q + 1));
  if (path == "/api/v3/klines") return klines(market, p, clock_ms);
  if (path == "/api/v3/aggTrades") return agg_trades(market, p, clock_ms);
  if (path == "/api/v3/time") return {200, "{\"serverTime\":" + std::to_string(clock_ms) + "}", kWeightTime};
  if (path == "/api/v3/ping") return {200, "{}", kWeightTime};
  return error(404, -1000, "Unknown endpoint.", 1);
}

}  // namespace mdshm::sim
