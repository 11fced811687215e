// The Universal Data Adapter (client/include/mdshm/adapter.hpp) on bars built in memory.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "mdshm/adapter.hpp"

using namespace mdshm;
using namespace mdshm::adapter;

namespace {

constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kT0 = 1'672'531'200'000;  // 2023-01-01 00:00 UTC

Bar bar(std::int64_t open_ms, double price, std::uint32_t flags = flag::closed) {
  Bar b{};
  b.open_time_ms = open_ms;
  b.open = price;
  b.high = price + 2;
  b.low = price - 1;
  b.close = price + 1;
  b.volume = 10 + price / 100;
  b.flags = flags;
  return b;
}

std::vector<Bar> hours(std::size_t n, std::int64_t from = kT0) {
  std::vector<Bar> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back(bar(from + static_cast<std::int64_t>(i) * kHour, 100.0 + static_cast<double>(i)));
  return v;
}

Output run(const std::vector<Bar>& bars, std::int64_t as_of, std::size_t window, bool in_progress = false,
           PriceNorm pn = PriceNorm::none, VolumeNorm vn = VolumeNorm::none) {
  const SeriesInput in[] = {{"eth_1h", 3600, bars}};
  Options o;
  o.window = window;
  o.as_of_ms = as_of;
  o.in_progress = in_progress;
  o.price = pn;
  o.volume = vn;
  Output out;
  REQUIRE(build(in, o, out) == Errc::ok);
  return out;
}

bool all_finite(const Output& o) {
  for (float x : o.tensor)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

TEST_CASE("the 1h bar closing at 15:00 enters at 15:00:00.000, not at 14:59:59.999") {
  auto bars = hours(20);  // 00:00 .. 19:00 opens
  const std::int64_t fifteen = kT0 + 15 * kHour;
  const Output before = run(bars, fifteen - 1, 4);
  const Output at = run(bars, fifteen, 4);
  // Last slot: the bar opened 13:00 (closed 14:00) just before 15:00; 14:00 (closed 15:00) at 15:00.
  CHECK(before.open_time_ms.back() == kT0 + 13 * kHour);
  CHECK(at.open_time_ms.back() == kT0 + 14 * kHour);
  CHECK(before.at(0, 0, 3) == Approx(113.0));
  CHECK(at.at(0, 0, 3) == Approx(114.0));
  CHECK(before.mask == std::vector<std::uint8_t>{1, 1, 1, 1});
}

TEST_CASE("output at as_of is bit-identical whether the bars extend past as_of or not") {
  const auto full = hours(500);
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> pick(kT0 - 10 * kHour, kT0 + 510 * kHour);
  const PriceNorm norms[] = {PriceNorm::none, PriceNorm::log_returns, PriceNorm::zscore, PriceNorm::minmax,
                             PriceNorm::relative};
  for (int i = 0; i < 2000; ++i) {
    const std::int64_t as_of = pick(rng);
    std::vector<Bar> cut;
    for (const Bar& b : full)
      if (b.open_time_ms + kHour <= as_of) cut.push_back(b);
    const PriceNorm pn = norms[i % 5];
    const Output a = run(full, as_of, 48, false, pn, VolumeNorm::zscore);
    const Output b = run(cut, as_of, 48, false, pn, VolumeNorm::zscore);
    REQUIRE(a.tensor.size() == b.tensor.size());
    REQUIRE(std::memcmp(a.tensor.data(), b.tensor.data(), a.tensor.size() * sizeof(float)) == 0);
    REQUIRE(a.mask == b.mask);
    REQUIRE(std::memcmp(&a.params[0], &b.params[0], sizeof(Params)) == 0);
  }
}

TEST_CASE("gaps and missing history are zero with mask 0; empty bars are valid; not_repaired masked") {
  auto bars = hours(10);
  bars.erase(bars.begin() + 4);                 // a gap at 04:00
  bars[6].flags |= flag::not_repaired;          // 07:00
  bars[2].flags |= flag::empty;                 // 02:00: a real no-trade bar
  bars[2].volume = 0;
  bars[2].high = bars[2].low = bars[2].open = bars[2].close = 101;
  const Output o = run(bars, kT0 + 10 * kHour, 12, false, PriceNorm::log_returns, VolumeNorm::log1p);
  // Slots: 22:00, 23:00 (no history), 00:00 .. 09:00.
  const std::vector<std::uint8_t> want = {0, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1};
  CHECK(o.mask == want);
  for (std::size_t t = 0; t < o.time; ++t)
    if (!want[t])
      for (std::size_t f = 0; f < o.features; ++f) CHECK(o.at(0, f, t) == 0.0f);
  const Quality& q = o.quality[0];
  CHECK(q.valid == 8);
  CHECK(q.missing == 3);
  CHECK(q.gaps == 2);
  CHECK(q.not_repaired == 1);
  CHECK(q.empty_bars == 1);
  CHECK_FALSE(q.meets_completeness);
  CHECK(all_finite(o));
}

TEST_CASE("non-finite and impossible bars are masked and counted, never NaN in the output") {
  auto bars = hours(6);
  bars[1].close = NAN;
  bars[2].high = INFINITY;
  bars[3].low = bars[3].high + 5;  // low above high
  bars[4].open = 0;                // non-positive price
  for (auto pn : {PriceNorm::none, PriceNorm::log_returns, PriceNorm::zscore, PriceNorm::minmax, PriceNorm::relative}) {
    const Output o = run(bars, kT0 + 6 * kHour, 6, false, pn, VolumeNorm::zscore);
    CHECK(o.quality[0].invalid_values == 4);
    CHECK(o.mask == std::vector<std::uint8_t>{1, 0, 0, 0, 0, 1});
    CHECK(all_finite(o));
  }
  const Output empty = run({}, kT0, 5, true, PriceNorm::zscore, VolumeNorm::zscore);
  CHECK(empty.quality[0].valid == 0);
  CHECK(empty.quality[0].staleness_ms == -1);
  CHECK(all_finite(empty));
}

TEST_CASE("normalisations return their parameters and invert") {
  const auto bars = hours(30);
  const std::int64_t as_of = kT0 + 30 * kHour;
  for (auto pn : {PriceNorm::zscore, PriceNorm::minmax, PriceNorm::relative}) {
    const Output o = run(bars, as_of, 24, false, pn, VolumeNorm::zscore);
    const Params& p = o.params[0];
    for (std::size_t t = 0; t < o.time; ++t) {
      const Bar& b = bars[6 + t];
      CHECK(o.at(0, 3, t) * p.price_scale + p.price_offset == Approx(b.close).epsilon(1e-5));
      CHECK(o.at(0, 4, t) * p.volume_scale + p.volume_offset == Approx(b.volume).epsilon(1e-5));
    }
  }
  const Output rel = run(bars, as_of, 24, false, PriceNorm::relative);
  CHECK(rel.at(0, 3, 23) == 0.0f);  // the last close relative to itself
  const Output mm = run(bars, as_of, 24, false, PriceNorm::minmax);
  float lo = 1, hi = 0;
  for (std::size_t f = 0; f < 4; ++f)
    for (std::size_t t = 0; t < mm.time; ++t) lo = std::min(lo, mm.at(0, f, t)), hi = std::max(hi, mm.at(0, f, t));
  CHECK(lo == 0.0f);
  CHECK(hi == 1.0f);
  const Output lr = run(bars, as_of, 24, false, PriceNorm::log_returns);
  CHECK(lr.at(0, 3, 0) == 0.0f);  // no previous close in the window
  CHECK(lr.at(0, 3, 5) == Approx(std::log(bars[11].close / bars[10].close)));
}

TEST_CASE("the bar in progress comes only on request, only while live, with elapsed_frac") {
  auto bars = hours(10);
  bars.push_back(bar(kT0 + 10 * kHour, 110, flag::in_progress));
  const std::int64_t as_of = kT0 + 10 * kHour + kHour / 4;
  const Output closed_only = run(bars, as_of, 5);
  CHECK(closed_only.features == 5);
  CHECK(closed_only.open_time_ms.back() == kT0 + 9 * kHour);
  const Output live = run(bars, as_of, 5, true);
  REQUIRE(live.features == 6);
  REQUIRE(live.time == 6);
  CHECK(live.mask.back() == 1);
  CHECK(live.at(0, kElapsedFeature, 5) == Approx(0.25));
  CHECK(live.at(0, kElapsedFeature, 4) == 1.0f);
  // Replaying history: the 10:00 bar closed later, so at 10:15 its values hold the future: masked.
  bars.back().flags = flag::closed;
  const Output replay = run(bars, as_of, 5, true);
  CHECK(replay.mask.back() == 0);
  CHECK(replay.quality[0].unfinished == 1);
}

TEST_CASE("series are aligned on one as_of, and the layouts index the same values") {
  std::vector<Bar> minutes;
  for (int i = 0; i < 600; ++i) minutes.push_back(bar(kT0 + i * 60'000, 50.0 + i));
  const auto h = hours(10);
  const SeriesInput in[] = {{"eth_1m", 60, minutes}, {"eth_1h", 3600, h}};
  Options o;
  o.window = 8;
  o.as_of_ms = kT0 + 5 * kHour + 30 * 60'000;  // 05:30
  Output out;
  REQUIRE(build(in, o, out) == Errc::ok);
  CHECK(out.open_time_ms[7] == o.as_of_ms - 60'000);       // 05:29 closed at 05:30
  CHECK(out.open_time_ms[8 + 7] == kT0 + 4 * kHour);       // 04:00 closed at 05:00
  std::vector<float> tr;
  transformer(out, 1, tr);
  CHECK(tr[7 * out.features + 3] == out.at(1, 3, 7));
  const auto idx = rl_index(out, in);
  REQUIRE(idx.size() == 10);
  CHECK(idx[8].name == "eth_1h.close");
  CHECK(out.tensor[idx[8].begin + 7] == out.at(1, 3, 7));
  Output bad;
  o.window = 0;
  CHECK(build(in, o, bad) == Errc::invalid_argument);
}

TEST_CASE("rolling correlation of log returns: +1, -1, masked where returns are missing") {
  std::vector<Bar> a, b, c;
  for (int i = 0; i < 40; ++i) {
    const double r = (i % 3 == 0 ? 0.01 : -0.004) * (1 + i % 5);  // a varying return path
    const double pa = i ? a.back().close * std::exp(r) : 100.0;
    const double pb = i ? b.back().close * std::exp(2 * r) : 50.0;   // same returns, doubled: corr +1
    const double pc = i ? c.back().close * std::exp(-r) : 80.0;      // mirrored: corr -1
    for (auto [v, p] : {std::pair{&a, pa}, {&b, pb}, {&c, pc}}) {
      Bar x = bar(kT0 + i * 1000, p);
      x.close = p;
      x.open = p;
      x.high = p + 0.1;
      x.low = p - 0.1;
      v->push_back(x);
    }
  }
  a.erase(a.begin() + 20);  // one gap: the returns into and out of it are missing
  const SeriesInput in[] = {{"a", 1, a}, {"b", 1, b}, {"c", 1, c}};
  Options o;
  o.window = 40;
  o.as_of_ms = kT0 + 40 * 1000;
  Output out;
  REQUIRE(build(in, o, out) == Errc::ok);
  const std::size_t T = out.time;
  auto row = [&](auto& v, std::size_t s) { return std::span(v.data() + s * T, T); };
  std::vector<float> corr;
  std::vector<std::uint8_t> mask;
  REQUIRE(rolling_correlation(row(out.close, 0), row(out.mask, 0), row(out.close, 1), row(out.mask, 1), 10, corr,
                              mask) == Errc::ok);
  CHECK(mask[3] == 0);  // fewer than span/2 returns yet
  CHECK(mask[39] == 1);
  CHECK(corr[39] == Approx(1.0).margin(1e-5));
  REQUIRE(rolling_correlation(row(out.close, 1), row(out.mask, 1), row(out.close, 2), row(out.mask, 2), 10, corr,
                              mask) == Errc::ok);
  CHECK(corr[39] == Approx(-1.0).margin(1e-5));
  for (float x : corr) CHECK(std::isfinite(x));
  std::vector<double> shorter(3);
  CHECK(rolling_correlation(shorter, row(out.mask, 0), row(out.close, 1), row(out.mask, 1), 10, corr, mask) ==
        Errc::invalid_argument);
}
