#include "trades.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <optional>
#include <string_view>

#include "decimal.hpp"

namespace mdshm::sim {
namespace {

std::optional<std::int64_t> integer(std::string_view s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// data.binance.vision writes Python's True/False; JSON has true/false.
std::optional<bool> boolean(std::string_view s) {
  if (s == "True" || s == "true") return true;
  if (s == "False" || s == "false") return false;
  return std::nullopt;
}

// data.binance.vision switched spot files to microseconds on 2025-01-01; 1e14 ms is year 5138.
std::int64_t to_ms(std::int64_t t) { return t > 100'000'000'000'000LL ? t / 1000 : t; }

// The raw text of `"key":value` in a flat JSON object, quotes stripped; nullopt when absent.
std::optional<std::string_view> field(std::string_view obj, std::string_view key) {
  // Built with append, not operator+: GCC 12 at -O3 reports a false -Wrestrict on the latter.
  std::string k;
  k.reserve(key.size() + 3);
  k.append(1, '"').append(key).append("\":");
  const auto at = obj.find(k);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view v = obj.substr(at + k.size());
  v = v.substr(0, std::min(v.find(','), v.find('}')));
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

}  // namespace

std::variant<std::vector<GenTrade>, LoadError> parse_agg_trades_csv(std::istream& in, const std::string& name) {
  std::vector<GenTrade> out;
  std::string line;
  for (std::size_t line_no = 1; std::getline(in, line); ++line_no) {
    auto fail = [&](const std::string& what) { return LoadError{name + ":" + std::to_string(line_no) + ": " + what}; };
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!std::isdigit(static_cast<unsigned char>(line[0]))) {
      if (line_no == 1) continue;  // a header (futures files have one)
      return fail("not an aggTrades row");
    }
    std::vector<std::string_view> col;
    for (std::string_view rest = line;;) {
      const auto comma = rest.find(',');
      col.push_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (col.size() != 8 && col.size() != 7)
      return fail("expected 8 columns (agg trade id, price, quantity, first trade id, last trade id, timestamp, "
                  "is buyer maker, is best match), got " + std::to_string(col.size()));
    const auto id = integer(col[0]), first = integer(col[3]), last = integer(col[4]), time = integer(col[5]);
    const auto price = parse_decimal(col[1]), qty = parse_decimal(col[2]);
    const auto maker = boolean(col[6]);
    if (!id || *id < 0) return fail("bad agg trade id '" + std::string(col[0]) + "'");
    if (!price || *price <= 0) return fail("bad price '" + std::string(col[1]) + "'");
    if (!qty || *qty <= 0) return fail("bad quantity '" + std::string(col[2]) + "'");
    if (!first || !last || *first < 0 || *last < *first) return fail("bad first/last trade id");
    if (!time || *time <= 0) return fail("bad timestamp '" + std::string(col[5]) + "'");
    if (!maker) return fail("bad is-buyer-maker '" + std::string(col[6]) + "' (True or False)");
    GenTrade t{*id, to_ms(*time), *price, *qty, *maker, *first, *last};
    if (!out.empty() && t.id <= out.back().id) return fail("agg trade ids do not increase");
    if (!out.empty() && t.time_ms < out.back().time_ms) return fail("timestamp goes back");
    out.push_back(t);
  }
  return out;
}

std::variant<std::vector<GenTrade>, LoadError> load_agg_trades_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return LoadError{"cannot open aggTrades CSV " + path};
  return parse_agg_trades_csv(in, path);
}

std::variant<std::map<std::string, std::vector<GenTrade>>, LoadError> capture_trades(
    const std::vector<ReplayFrame>& frames) {
  std::map<std::string, std::vector<GenTrade>> out;
  for (const auto& f : frames) {
    const std::string_view text = f.text;
    const auto data = text.find("\"data\":");
    const std::string_view obj = data == std::string_view::npos ? text : text.substr(data);
    if (field(obj, "e") != std::optional<std::string_view>("aggTrade")) continue;
    // Plain values filled by the readers below (optionals here trip GCC 12's maybe-uninitialized).
    std::int64_t id = 0, first = 0, last = 0, time = 0, price = 0, qty = 0;
    bool maker = false;
    auto read_int = [&](std::string_view key, std::int64_t& out) {
      const auto v = field(obj, key);
      const auto n = v ? integer(*v) : std::nullopt;
      if (n) out = *n;
      return n.has_value();
    };
    auto read_dec = [&](std::string_view key, std::int64_t& out) {
      const auto v = field(obj, key);
      const auto d = v ? parse_decimal(*v) : std::nullopt;
      if (d) out = *d;
      return d.has_value() && out > 0;
    };
    const auto sym = field(obj, "s");
    const auto m = field(obj, "m");
    const auto mb = m ? boolean(*m) : std::nullopt;
    if (mb) maker = *mb;
    if (!sym || sym->empty() || !read_int("a", id) || !read_int("f", first) || !read_int("l", last) ||
        !read_int("T", time) || !read_dec("p", price) || !read_dec("q", qty) || !mb)
      return LoadError{f.where + ": aggTrade frame without a valid s, a, p, q, f, l, T or m"};
    const GenTrade t{id, to_ms(time), price, qty, maker, first, last};
    std::string s(*sym);
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    out[s].push_back(t);
  }
  for (auto& [sym, trades] : out) {
    std::stable_sort(trades.begin(), trades.end(), [](const GenTrade& a, const GenTrade& b) { return a.id < b.id; });
    // A capture spanning a reconnect may hold a trade twice.
    trades.erase(std::unique(trades.begin(), trades.end(), [](const GenTrade& a, const GenTrade& b) { return a.id == b.id; }),
                 trades.end());
  }
  return out;
}

}  // namespace mdshm::sim
