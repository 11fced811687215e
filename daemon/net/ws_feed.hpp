// The live source's transport: one TLS WebSocket to Binance's combined-stream endpoint, kept alive
// through pings, stalls, drops, serverShutdown and the 24 h connection limit. Parsing is elsewhere:
// frames leave here as text with their receive time. No Beast in this header (see ws_feed.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/pacing.hpp"
#include "net/tls_options.hpp"

namespace mdshm::net {

struct WsFeedOptions {
  std::string url = "wss://stream.binance.com:9443";  // host and port; the path is set from streams
  std::vector<std::string> streams;                   // e.g. "ethusdt@aggTrade", "ethusdt@kline_1m"
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{10'000};    // resolve + TCP + TLS + WebSocket handshake
  std::chrono::milliseconds ping_interval{20'000};      // our own pings; the server's are answered
  std::chrono::milliseconds stall_timeout{30'000};      // no frame, ping or pong this long -> reconnect
  std::chrono::milliseconds max_lifetime{23 * 3600'000};  // rotate before Binance's 24 h cut
  std::size_t max_frame_bytes = 4 << 20;
  BackoffOptions backoff;
  ConnectRateOptions connect_rate;
};

// Zero bytes the read buffer holds after every frame's text, so a parser that needs padding past
// the end (simdjson) can read the frame in place.
inline constexpr std::size_t kWsFramePadding = 64;

struct WsFrame {
  std::string_view text;     // valid only during the callback (points into the read buffer)
  std::int64_t recv_wall_ns;  // CLOCK_REALTIME when the read completed
  std::uint64_t conn_id;      // which connection; during a rotation two deliver the same trades
  // Readable zero bytes after text (kWsFramePadding from WsFeed; 0 = promise nothing).
  std::size_t zero_padding = 0;
};

struct WsEvent {
  enum class Kind {
    connected,     // handshake done; `rotation` true when an older connection still covers the feed
    rotated,       // conn_id took over from previous_conn_id with overlap: nothing was missed
    stalled,       // no frame for stall_timeout on conn_id; a disconnected event follows
    disconnected,  // conn_id is gone; `feed_lost` true when no other connection was delivering
  };
  Kind kind;
  std::uint64_t conn_id = 0;
  std::uint64_t previous_conn_id = 0;
  bool rotation = false;
  bool feed_lost = false;
  std::string_view reason;  // valid only during the callback
};

struct WsFeedStats {
  std::uint64_t frames = 0;
  std::uint64_t bytes = 0;
  std::uint64_t non_text_frames = 0;
  std::uint64_t connect_attempts = 0;
  std::uint64_t connects = 0;
  std::uint64_t disconnects = 0;
  std::uint64_t stalls = 0;
  std::uint64_t rotations = 0;
  std::uint64_t pings_sent = 0;
  std::uint64_t pongs_received = 0;
  std::uint64_t pings_received = 0;  // answered by Beast while a read is pending
  std::uint64_t rate_limited = 0;    // connects held back by the 300 per 5 minutes rule
};

std::string combined_stream_target(const std::vector<std::string>& streams);

class WsFeed {
 public:
  using FrameHandler = std::function<void(const WsFrame&)>;
  using EventHandler = std::function<void(const WsEvent&)>;

  // Runs on `ioc`, which the caller owns and runs on one thread; every callback runs there.
  WsFeed(boost::asio::io_context& ioc, WsFeedOptions options, FrameHandler on_frame,
         EventHandler on_event);
  // Stops; pending handlers finish harmlessly when the io_context next runs. Destroy the feed
  // before the io_context, and never from inside one of its own callbacks.
  ~WsFeed();
  WsFeed(const WsFeed&) = delete;
  WsFeed& operator=(const WsFeed&) = delete;

  // Empty string on success, else why (bad URL, no streams).
  std::string start();
  void stop();
  // Open a new connection and drop the current one once the new one delivers (e.g. on
  // serverShutdown, which the parser sees, or at the caller's discretion).
  void request_rotation(std::string_view reason);
  const WsFeedStats& stats() const;
  std::uint64_t current_conn_id() const;  // 0 while not connected

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace mdshm::net
