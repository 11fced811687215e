// What a WebSocket connection sends, in replay-clock order: frames from recorded captures and the
// aggTrade / closed-kline events of generated series, filtered by the connection's streams.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "market.hpp"

namespace mdshm::sim {

struct ReplayFrame {
  std::int64_t time_ms = 0;  // receive time
  std::string stream;        // "" when the frame is not a combined-stream envelope
  std::string text;
  std::string where;         // "file:line", for errors about the frame
};

// Reads capture files (../shared/data/binance/ws/ format: an optional URL header line, then
// '<receive-time>: <frame>' per line). A frame line without a receive time is an error naming the
// file and line: its place in the replay would be a guess. Frames of all files are merged by time.
std::variant<std::vector<ReplayFrame>, LoadError> load_replay(const std::vector<std::string>& paths);

// `/stream?streams=a/b/c` -> {a, b, c}; nullopt when the target is not a combined-stream URL.
std::optional<std::vector<std::string>> parse_stream_target(std::string_view target);

struct Event {
  std::int64_t time_ms = 0;
  std::string frame;
  bool agg_trade = false;  // fault injection (holes, duplicates, reordering) applies to these
};

std::string agg_trade_frame(const std::string& symbol, const GenTrade& t);
std::string kline_frame(const std::string& symbol, std::uint32_t interval_s, const KlineRow& k, bool closed,
                        std::int64_t event_ms);
// The JSON array row /api/v3/klines returns for one kline.
void append_kline_json(std::string& out, const KlineRow& k);
void append_agg_trade_json(std::string& out, const GenTrade& t);

// One connection's position in the event sequence. Starts at the first event at or after start_ms.
class StreamCursor {
 public:
  StreamCursor(Market& market, const std::vector<ReplayFrame>& replay, const std::vector<std::string>& streams,
               std::int64_t start_ms);
  std::optional<std::int64_t> next_time();  // nullopt: nothing more to send, ever
  Event pop();                              // only after next_time() returned a value

 private:
  struct KlineSub {
    std::uint32_t interval_s;
    std::int64_t next_close_ms;  // the bar [next_close - interval, next_close) closes then
  };
  struct SymbolCursor {
    Series* series = nullptr;
    bool trades = false;
    std::size_t row = 0;
    std::size_t index = 0;
    std::vector<KlineSub> klines;
    std::string lower;
  };
  std::optional<std::int64_t> trade_time(SymbolCursor& c);
  std::optional<std::int64_t> kline_time(SymbolCursor& c, std::size_t& which);

  Market& market_;
  const std::vector<ReplayFrame>& replay_;
  std::set<std::string, std::less<>> streams_;
  std::size_t replay_index_ = 0;
  std::vector<SymbolCursor> symbols_;
};

}  // namespace mdshm::sim
