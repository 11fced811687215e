// Corpus/mutation fuzzing in ctest: every real frame, mutated ~200k ways with a fixed seed. The
// parser must never crash (ASan/UBSan builds make "crash" strict) and never return ok with a value
// that could not be true.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <random>

#include "parse/frame_parser.hpp"
#include "parse_test_util.hpp"

using namespace mdshm;
using namespace mdshm::parse;
using namespace mdshm::parse::test;

namespace {

bool finite_positive(double v) { return std::isfinite(v) && v > 0; }
bool finite_non_negative(double v) { return std::isfinite(v) && v >= 0 && !std::signbit(v); }

// What every ok result must satisfy, whatever the input was.
void check_sane(const Event& ev) {
  switch (ev.kind) {
    case EventKind::agg_trade:
    case EventKind::trade:
      REQUIRE(finite_positive(ev.trade.price));
      REQUIRE(finite_positive(ev.trade.qty));
      REQUIRE(plausible_time_ms(ev.trade.time_ms));
      REQUIRE(plausible_time_ms(ev.event_time_ms));
      REQUIRE(ev.trade.id >= 0);
      REQUIRE_FALSE(ev.symbol.empty());
      break;
    case EventKind::kline: {
      const Bar& b = ev.kline.bar;
      REQUIRE(interval_name(ev.kline.interval_s) != "");
      REQUIRE(plausible_time_ms(b.open_time_ms));
      REQUIRE(bar_open_ms(b.open_time_ms, ev.kline.interval_s) == b.open_time_ms);
      for (double v : {b.open, b.high, b.low, b.close}) REQUIRE(finite_positive(v));
      for (double v : {b.volume, b.quote_volume, b.taker_buy_volume, b.taker_buy_quote_volume})
        REQUIRE(finite_non_negative(v));
      REQUIRE(b.high >= b.low);
      REQUIRE(b.high >= b.open);
      REQUIRE(b.low <= b.close);
      REQUIRE_FALSE(ev.symbol.empty());
      break;
    }
    case EventKind::server_shutdown: REQUIRE(plausible_time_ms(ev.event_time_ms)); break;
    case EventKind::none: FAIL("ok without an event"); break;
  }
}

const char* const kNastyValues[] = {
    "1e400",   "-1",      "NaN",       "\"NaN\"",  "\"-1\"",     "99999999999999999999", "\"abc\"",
    "null",    "\"\"",    "\"1e400\"", "-0",       "\"0\"",      "true",                 "{}",
    "[]",      "1.5",     "\"inf\"",   "\"-0.0\"", "\"1e5\"",    "0",                    "\"0.0000\"",
    "-9223372036854775808", "9223372036854775807", "\"\\u0031\"", "\"1\\u0000\"", "\"1 \"", "1E2",
};

// Byte offsets of the scalar values (numbers and strings after a colon or inside an array).
std::vector<std::pair<std::size_t, std::size_t>> value_spans(const std::string& s) {
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != ':' && s[i] != '[' && s[i] != ',') continue;
    std::size_t j = i + 1;
    while (j < s.size() && (s[j] == ' ' || s[j] == '\n')) ++j;
    if (j >= s.size()) break;
    std::size_t k = j;
    if (s[j] == '"') {
      k = s.find('"', j + 1);
      if (k == std::string::npos) break;
      ++k;
    } else {
      while (k < s.size() && (std::isalnum(static_cast<unsigned char>(s[k])) || s[k] == '.' || s[k] == '-')) ++k;
    }
    if (k > j) spans.emplace_back(j, k - j);
  }
  return spans;
}

std::string mutate(const std::string& in, std::mt19937_64& rng) {
  std::string s = in;
  auto pick = [&](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  const int rounds = 1 + static_cast<int>(rng() % 3);
  for (int r = 0; r < rounds && !s.empty(); ++r) {
    switch (rng() % 7) {
      case 0: s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8)); break;  // bit flip
      case 1: s[pick(s.size())] = static_cast<char>(rng()); break;                // byte replace
      case 2: {                                                                   // delete a span
        const auto at = pick(s.size());
        s.erase(at, 1 + pick(16));
        break;
      }
      case 3: {  // duplicate a span
        const auto at = pick(s.size());
        const auto len = 1 + pick(std::min<std::size_t>(40, s.size() - at));
        s.insert(pick(s.size()), s.substr(at, len));
        break;
      }
      case 4:
      case 5: {  // replace a value with something nasty
        const auto spans = value_spans(s);
        if (spans.empty()) break;
        const auto [at, len] = spans[pick(spans.size())];
        s.replace(at, len, kNastyValues[pick(std::size(kNastyValues))]);
        break;
      }
      case 6: s.insert(pick(s.size() + 1), 1, "{}[]\",:\\ 0-"[pick(12)]); break;  // structural noise
    }
  }
  return s;
}

}  // namespace

TEST_CASE("truncation at every length never crashes and never yields a bad value", "[mutations]") {
  FrameParser p;
  Event ev;
  long ok = 0, total = 0;
  for (const auto& frame : all_real_frames()) {
    for (std::size_t n = 0; n < frame.size(); ++n) {
      const auto r = p.parse(std::string_view(frame).substr(0, n), ev);
      ++total;
      if (r.ok()) {
        ++ok;
        check_sane(ev);
      }
    }
  }
  INFO(ok << " of " << total << " truncated frames parsed");
  // Only the pretty-printed frames' trailing newline may be cut off and still leave valid JSON.
  CHECK(ok <= 4);
  CHECK(total > 50000);
}

TEST_CASE("200k random mutations of the real frames (fixed seed)", "[mutations]") {
  FrameParser p;
  Event ev;
  // Most captured frames are depth and book updates, ignored after one look at the stream name; the
  // frames we use (aggTrade, trade, kline) get four mutations in five so their fields are hammered.
  const auto frames = all_real_frames();
  std::vector<std::string> used;
  for (const auto& f : frames)
    if (p.parse(f, ev).ok()) used.push_back(f);
  REQUIRE(used.size() == 14);
  std::mt19937_64 rng(20240601);
  std::map<Status, long> by_status;
  constexpr long kMutations = 200000;
  for (long i = 0; i < kMutations; ++i) {
    const auto& pool = rng() % 5 == 0 ? frames : used;
    const auto& original = pool[static_cast<std::size_t>(rng() % pool.size())];
    const auto mutated = mutate(original, rng);
    const auto r = p.parse(mutated, ev);
    by_status[r.status]++;
    if (r.ok()) check_sane(ev);
    if (!r.ok() && r.status != Status::ignored) REQUIRE_FALSE(r.detail.empty());
  }
  for (const auto& [status, n] : by_status) WARN(to_string(status) << ": " << n);
  // The mutations must actually exercise the parser: many rejections of every main kind.
  CHECK(by_status[Status::malformed_json] > 1000);
  CHECK(by_status[Status::bad_number] + by_status[Status::bad_type] > 1000);
  CHECK(by_status[Status::ok] > 100);
  // The unmutated frames still parse the same afterwards (no state leaks between frames).
  REQUIRE(p.parse(read_file(data_path("ws/ws_spot_agg_trade.json")), ev).ok());
  CHECK(ev.trade.id == 226532);
}

TEST_CASE("REST bodies under mutation", "[mutations]") {
  FrameParser p;
  std::vector<Kline> rows;
  std::vector<Trade> trades;
  const auto klines = read_file(data_path("rest/http_spot_market_klines.json"));
  const auto aggs = read_file(data_path("rest/http_spot_market_agg_trades.json"));
  std::mt19937_64 rng(7);
  long ok = 0;
  for (int i = 0; i < 20000; ++i) {
    if (p.parse_klines(mutate(klines, rng), 60, rows).ok()) {
      ++ok;
      for (const auto& k : rows) {
        Event ev;
        ev.kind = EventKind::kline;
        ev.kline = k;
        ev.symbol.assign("X");
        check_sane(ev);
      }
    }
    if (p.parse_agg_trades(mutate(aggs, rng), trades).ok()) {
      ++ok;
      for (const auto& t : trades) {
        REQUIRE(finite_positive(t.price));
        REQUIRE(finite_positive(t.qty));
        REQUIRE(plausible_time_ms(t.time_ms));
      }
    }
  }
  CHECK(ok > 100);
}
