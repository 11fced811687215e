// mdshm tail SERIES [-n N] — the newest N bars, oldest first.
#include <fmt/format.h>

#include <vector>

#include "commands.hpp"
#include "json_writer.hpp"

namespace mdshm::inspect {

void json_bar(JsonWriter& j, const Bar& b, std::uint64_t index) {
  j.field("index", index).field("open_time_ms", b.open_time_ms).field("open_time", iso_time_ms(b.open_time_ms));
  j.field("open", b.open).field("high", b.high).field("low", b.low).field("close", b.close);
  j.field("volume", b.volume).field("quote_volume", b.quote_volume).field("taker_buy_volume", b.taker_buy_volume);
  j.field("taker_buy_quote_volume", b.taker_buy_quote_volume).field("trades", b.trade_count);
  j.field("first_trade_id", b.first_trade_id).field("last_trade_id", b.last_trade_id);
  j.field("update_wall_ns", b.update_wall_ns).field("flags_raw", b.flags).key("flags").begin_array();
  for (auto f : flag_list(b.flags)) j.value(f);
  j.end_array();
}

int report_unopened(const Options& o, const Segment& seg) {
  if (o.json) {
    JsonWriter j;
    j.begin_object();
    json_segment_error(j, seg);
    j.end_object();
    fmt::print("{}\n", j.str());
  } else {
    fmt::print(stderr, "mdshm: {} ({}): {}\n", seg.series, seg.path.empty() ? "-" : seg.path, seg.error_text);
  }
  return 2;
}

int run_tail(const Options& o, const std::string& series, std::size_t n) {
  Segment seg = open_segment(o.open, series);
  if (!seg.handle) return report_unopened(o, seg);
  Series& s = *seg.handle;
  std::vector<Bar> bars(std::min<std::uint64_t>(n, s.capacity()));
  std::size_t got = 0;
  const Errc e = s.last_n(bars, got);
  if (e != Errc::ok && e != Errc::empty) {
    fmt::print(stderr, "mdshm: {}: {}\n", seg.path, to_string(e));
    return 2;
  }
  const std::uint64_t first_index = s.head() >= got ? s.head() - got : 0;  // head may have moved: indicative
  if (o.json) {
    JsonWriter j;
    j.begin_object().field("series", seg.series).field("symbol", std::string(s.symbol()));
    j.field("interval", interval_name(s.interval_s())).key("bars").begin_array();
    for (std::size_t i = 0; i < got; ++i) {
      j.begin_object();
      json_bar(j, bars[i], first_index + i);
      j.end_object();
    }
    j.end_array().end_object();
    fmt::print("{}\n", j.str());
    return 0;
  }
  if (got == 0) {
    fmt::print("{}: no bar published yet\n", seg.series);
    return 0;
  }
  fmt::print("{:<24} {:>14} {:>14} {:>14} {:>14} {:>16} {:>8}  {}\n", "OPEN TIME (UTC)", "OPEN", "HIGH", "LOW", "CLOSE",
             "VOLUME", "TRADES", "FLAGS");
  for (std::size_t i = 0; i < got; ++i) {
    const Bar& b = bars[i];
    fmt::print("{:<24} {:>14.10g} {:>14.10g} {:>14.10g} {:>14.10g} {:>16.10g} {:>8}  {}\n", iso_time_ms(b.open_time_ms),
               b.open, b.high, b.low, b.close, b.volume, b.trade_count, flag_names(b.flags));
  }
  return 0;
}

}  // namespace mdshm::inspect
