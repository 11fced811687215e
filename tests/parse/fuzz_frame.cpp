// libFuzzer target for FrameParser (clang only; cmake -DMDSHM_FUZZ=ON). Built with ASan and UBSan:
// a crash, an out-of-bounds read or an `ok` result with an impossible value is a finding.
//   build/tests/fuzz_frame -max_total_time=60 corpus_dir/   (seed it with the frames of
//   ../shared/data/binance/ws, one file per frame)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "parse/frame_parser.hpp"

namespace {

using namespace mdshm;
using namespace mdshm::parse;

void expect(bool ok) {
  if (!ok) __builtin_trap();
}

bool positive(double v) { return std::isfinite(v) && v > 0; }
bool non_negative(double v) { return std::isfinite(v) && v >= 0; }

void check_bar(const Kline& k) {
  const Bar& b = k.bar;
  expect(!interval_name(k.interval_s).empty());
  expect(plausible_time_ms(b.open_time_ms));
  expect(positive(b.open) && positive(b.high) && positive(b.low) && positive(b.close));
  expect(non_negative(b.volume) && non_negative(b.quote_volume) && non_negative(b.taker_buy_volume) &&
         non_negative(b.taker_buy_quote_volume));
  expect(b.high >= b.low);
}

void check_trade(const Trade& t) {
  expect(positive(t.price) && positive(t.qty));
  expect(plausible_time_ms(t.time_ms));
  expect(t.id >= 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FrameParser parser;
  static std::vector<Kline> klines;
  static std::vector<Trade> trades;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  Event ev;
  const ParseResult r = parser.parse(text, ev);
  if (r.ok()) {
    if (ev.kind == EventKind::agg_trade || ev.kind == EventKind::trade) check_trade(ev.trade);
    if (ev.kind == EventKind::kline) check_bar(ev.kline);
    if (ev.kind != EventKind::server_shutdown) expect(!ev.symbol.empty());
    expect(plausible_time_ms(ev.event_time_ms));
  } else {
    expect(!r.detail.empty() || r.status == Status::api_error);
  }
  if (parser.parse_klines(text, 60, klines).ok())
    for (const auto& k : klines) check_bar(k);
  if (parser.parse_agg_trades(text, trades).ok())
    for (const auto& t : trades) check_trade(t);
  std::int64_t t = 0;
  if (parser.parse_server_time(text, t).ok()) expect(plausible_time_ms(t));
  return 0;
}
