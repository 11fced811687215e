#include "stream.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "decimal.hpp"
#include "model/market.hpp"
#include "parse/capture_line.hpp"

namespace mdshm::sim {
namespace {

// The envelope's stream name, found by text search rather than a JSON parse: the frame is relayed
// untouched, and a frame that is not an envelope (or is malformed on purpose) just has no name.
std::string stream_of(std::string_view frame) {
  constexpr std::string_view key = "\"stream\":\"";
  const auto at = frame.find(key);
  if (at == std::string_view::npos || at > 8) return {};
  const auto begin = at + key.size();
  const auto end = frame.find('"', begin);
  return end == std::string_view::npos ? std::string{} : std::string(frame.substr(begin, end - begin));
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void add_int(std::string& out, std::int64_t v) { out += std::to_string(v); }
void add_dec(std::string& out, std::int64_t v) {
  out += '"';
  append_decimal(out, v);
  out += '"';
}

}  // namespace

std::variant<std::vector<ReplayFrame>, LoadError> load_replay(const std::vector<std::string>& paths) {
  std::vector<ReplayFrame> frames;
  for (const auto& path : paths) {
    std::ifstream in(path);
    if (!in) return LoadError{"cannot open replay file " + path};
    std::string line;
    for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
      const auto cl = parse::parse_capture_line(line);
      if (!cl) continue;
      const std::string where = path + ":" + std::to_string(line_no);
      if (!cl->receive_time_s)
        return LoadError{where + ": capture line without a receive time (expected '<receive-time>: <frame>')"};
      frames.push_back({static_cast<std::int64_t>(*cl->receive_time_s * 1000.0), stream_of(cl->frame),
                        std::string(cl->frame), where});
    }
  }
  std::stable_sort(frames.begin(), frames.end(),
                   [](const ReplayFrame& a, const ReplayFrame& b) { return a.time_ms < b.time_ms; });
  return frames;
}

std::optional<std::vector<std::string>> parse_stream_target(std::string_view target) {
  constexpr std::string_view prefix = "/stream?";
  if (target.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view query = target.substr(prefix.size());
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.substr(0, 8) != "streams=") continue;
    param.remove_prefix(8);
    std::vector<std::string> out;
    while (!param.empty()) {
      const auto slash = param.find('/');
      if (slash != 0) out.emplace_back(param.substr(0, slash));
      if (slash == std::string_view::npos) break;
      param.remove_prefix(slash + 1);
    }
    if (out.empty()) return std::nullopt;
    return out;
  }
  return std::nullopt;
}

namespace {
// The fields REST /api/v3/aggTrades and the aggTrade stream share, from "a" to "M".
void append_agg_trade_fields(std::string& out, const GenTrade& t) {
  out += "\"a\":";
  add_int(out, t.id);
  out += ",\"p\":";
  add_dec(out, t.price);
  out += ",\"q\":";
  add_dec(out, t.qty);
  out += ",\"f\":";
  add_int(out, t.first_trade >= 0 ? t.first_trade : t.id);
  out += ",\"l\":";
  add_int(out, t.last_trade >= 0 ? t.last_trade : t.id);
  out += ",\"T\":";
  add_int(out, t.time_ms);
  out += t.buyer_is_maker ? ",\"m\":true,\"M\":true" : ",\"m\":false,\"M\":true";
}
}  // namespace

void append_agg_trade_json(std::string& out, const GenTrade& t) {
  out += '{';
  append_agg_trade_fields(out, t);
  out += '}';
}

std::string agg_trade_frame(const std::string& symbol, const GenTrade& t) {
  std::string out = "{\"stream\":\"" + lower(symbol) + "@aggTrade\",\"data\":{\"e\":\"aggTrade\",\"E\":";
  add_int(out, t.time_ms);
  out += ",\"s\":\"" + symbol + "\",";
  append_agg_trade_fields(out, t);
  out += "}}";
  return out;
}

std::string kline_frame(const std::string& symbol, std::uint32_t interval_s, const KlineRow& k, bool closed,
                        std::int64_t event_ms) {
  const std::string iname(interval_name(interval_s));
  std::string out = "{\"stream\":\"" + lower(symbol) + "@kline_" + iname + "\",\"data\":{\"e\":\"kline\",\"E\":";
  add_int(out, event_ms);
  out += ",\"s\":\"" + symbol + "\",\"k\":{\"t\":";
  add_int(out, k.open_ms);
  out += ",\"T\":";
  add_int(out, k.close_ms);
  out += ",\"s\":\"" + symbol + "\",\"i\":\"" + iname + "\",\"f\":";
  add_int(out, k.first_trade);
  out += ",\"L\":";
  add_int(out, k.last_trade);
  out += ",\"o\":";
  add_dec(out, k.open);
  out += ",\"c\":";
  add_dec(out, k.close);
  out += ",\"h\":";
  add_dec(out, k.high);
  out += ",\"l\":";
  add_dec(out, k.low);
  out += ",\"v\":";
  add_dec(out, k.volume);
  out += ",\"n\":";
  add_int(out, k.trade_count);
  out += closed ? ",\"x\":true,\"q\":" : ",\"x\":false,\"q\":";
  add_dec(out, k.quote_volume);
  out += ",\"V\":";
  add_dec(out, k.taker_buy_volume);
  out += ",\"Q\":";
  add_dec(out, k.taker_buy_quote_volume);
  out += ",\"B\":\"0\"}}}";
  return out;
}

void append_kline_json(std::string& out, const KlineRow& k) {
  out += '[';
  add_int(out, k.open_ms);
  for (std::int64_t v : {k.open, k.high, k.low, k.close, k.volume}) {
    out += ',';
    add_dec(out, v);
  }
  out += ',';
  add_int(out, k.close_ms);
  out += ',';
  add_dec(out, k.quote_volume);
  out += ',';
  add_int(out, k.trade_count);
  out += ',';
  add_dec(out, k.taker_buy_volume);
  out += ',';
  add_dec(out, k.taker_buy_quote_volume);
  out += ",\"0\"]";
}

StreamCursor::StreamCursor(Market& market, const std::vector<ReplayFrame>& replay,
                           const std::vector<std::string>& streams, std::int64_t start_ms)
    : market_(market), replay_(replay), streams_(streams.begin(), streams.end()) {
  replay_index_ = static_cast<std::size_t>(
      std::lower_bound(replay_.begin(), replay_.end(), start_ms,
                       [](const ReplayFrame& f, std::int64_t t) { return f.time_ms < t; }) -
      replay_.begin());
  for (auto& s : market_.all()) {
    if (!s->streamed()) continue;  // a capture carries its frames
    SymbolCursor c;
    c.series = s.get();
    c.lower = lower(s->symbol());
    c.trades = streams_.count(c.lower + "@aggTrade") > 0;
    for (const auto& iv : kIntervals)
      if (streams_.count(c.lower + "@kline_" + std::string(iv.name))) {
        const std::int64_t len = std::int64_t{iv.seconds} * 1000;
        std::int64_t first = std::max(start_ms, s->data_begin_ms() + 1);
        c.klines.push_back({iv.seconds, bar_open_ms(first - 1, iv.seconds) + len});
      }
    if (!c.trades && c.klines.empty()) continue;
    const auto& rows = s->rows();
    auto it = std::lower_bound(rows.begin(), rows.end(), start_ms,
                               [](const KlineRow& r, std::int64_t t) { return r.close_ms < t; });
    c.row = static_cast<std::size_t>(it - rows.begin());
    if (c.row < rows.size()) {
      const auto& tr = s->trades_of(c.row);
      c.index = static_cast<std::size_t>(
          std::lower_bound(tr.begin(), tr.end(), start_ms,
                           [](const GenTrade& g, std::int64_t t) { return g.time_ms < t; }) -
          tr.begin());
    }
    symbols_.push_back(std::move(c));
  }
}

std::optional<std::int64_t> StreamCursor::trade_time(SymbolCursor& c) {
  if (!c.trades) return std::nullopt;
  const auto& rows = c.series->rows();
  while (c.row < rows.size()) {
    const auto& tr = c.series->trades_of(c.row);
    if (c.index < tr.size()) return tr[c.index].time_ms;
    ++c.row;
    c.index = 0;
  }
  return std::nullopt;
}

std::optional<std::int64_t> StreamCursor::kline_time(SymbolCursor& c, std::size_t& which) {
  std::optional<std::int64_t> best;
  for (std::size_t i = 0; i < c.klines.size(); ++i) {
    const auto& k = c.klines[i];
    if (k.next_close_ms - std::int64_t{k.interval_s} * 1000 > c.series->data_end_ms()) continue;
    if (!best || k.next_close_ms < *best) {
      best = k.next_close_ms;
      which = i;
    }
  }
  return best;
}

std::optional<std::int64_t> StreamCursor::next_time() {
  std::optional<std::int64_t> best;
  if (replay_index_ < replay_.size()) {
    // Frames on streams the connection did not ask for are skipped here, once.
    while (replay_index_ < replay_.size() && !replay_[replay_index_].stream.empty() &&
           !streams_.count(replay_[replay_index_].stream))
      ++replay_index_;
    if (replay_index_ < replay_.size()) best = replay_[replay_index_].time_ms;
  }
  for (auto& c : symbols_) {
    std::size_t which = 0;
    for (auto t : {kline_time(c, which), trade_time(c)})
      if (t && (!best || *t < *best)) best = t;
  }
  return best;
}

Event StreamCursor::pop() {
  const auto t = next_time();
  Event e;
  if (!t) return e;
  e.time_ms = *t;
  if (replay_index_ < replay_.size() && replay_[replay_index_].time_ms == *t) {
    const auto& f = replay_[replay_index_++];
    e.frame = f.text;
    e.agg_trade = f.stream.find("@aggTrade") != std::string::npos;
    return e;
  }
  for (auto& c : symbols_) {  // closes before trades of the same millisecond, as on Binance
    std::size_t which = 0;
    const auto kt = kline_time(c, which);
    if (kt && *kt == *t) {
      auto& sub = c.klines[which];
      const std::int64_t len = std::int64_t{sub.interval_s} * 1000;
      const std::int64_t open = sub.next_close_ms - len;
      sub.next_close_ms += len;
      if (auto k = c.series->kline(sub.interval_s, open, open + len - 1))
        e.frame = kline_frame(c.series->symbol(), sub.interval_s, *k, true, open + len);
      return e;
    }
  }
  for (auto& c : symbols_) {
    const auto tt = trade_time(c);
    if (tt && *tt == *t) {
      const GenTrade g = c.series->trades_of(c.row)[c.index++];
      e.frame = agg_trade_frame(c.series->symbol(), g);
      e.agg_trade = true;
      return e;
    }
  }
  return e;
}

}  // namespace mdshm::sim
