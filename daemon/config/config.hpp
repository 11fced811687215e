// mdshmd's configuration: TOML (toml++), schema documented in config/mdshm.toml.
// Loading never stops at the first problem: every unknown key and bad value is reported with its
// key path and line, so an operator fixes a file in one go.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mdshm::config {

struct DaemonConfig {
  std::string instance = "default";
  std::string log_level = "info";  // trace|debug|info|warn|error|critical|off
};

struct ShmConfig {
  std::string dir = "/dev/shm";
  mode_t mode = 0640;              // from the string "0640"; never world-writable
  std::string group;               // empty: the daemon's own group
  std::string lock_file;           // empty: <dir>/mdshm.<instance>/@lock (paths.hpp)
};

struct SyntheticSymbol {
  std::string symbol;
  double start_price = 0;
};

struct SyntheticConfig {
  double rate = 2000;              // trades per second, all symbols together
  std::uint64_t seed = 1;
  double volatility_bps = 1.0;     // standard deviation of one trade's price step, basis points
  std::vector<SyntheticSymbol> start_prices;  // symbols without one start at 100
  double start_price_of(std::string_view symbol) const;
};

enum class SourceKind { binance, synthetic };

struct SourceConfig {
  SourceKind kind = SourceKind::binance;
  SyntheticConfig synthetic;
};

struct BinanceConfig {
  std::string ws_url = "wss://stream.binance.com:9443";
  std::string rest_url = "https://api.binance.com";
  std::string ca_file;             // empty: the system store
  double watchdog_s = 10;          // no frame for this long: reconnect
  double rotate_after_s = 82800;   // replace the connection (with overlap) before Binance's 24 h cut
  std::uint32_t rest_weight_budget = 600;  // of Binance's 6000 per minute
  double rest_ban_backoff_s = 300;  // after HTTP 418 no REST request for at least this long
  double repair_hold_s = 30;        // live events held at most this long while REST cannot repair
  bool backfill = true;
  std::string record;              // empty: no recording
};

enum class FsyncPolicy { never, interval, always };

struct StoreConfig {
  std::string dir;                 // empty: no history store
  FsyncPolicy fsync = FsyncPolicy::interval;
  std::uint32_t fsync_interval_ms = 1000;
};

struct MetricsConfig {
  std::string listen;              // "host:port"; empty: off
};

struct SeriesConfig {
  std::string id;
  std::string symbol;
  std::string interval;            // Binance name, e.g. "1m"
  std::uint32_t interval_s = 0;
  std::uint64_t capacity = 0;
  bool backfill = true;
  std::optional<std::uint64_t> backfill_depth;  // bars; empty: the whole capacity
};

struct Config {
  DaemonConfig daemon;
  ShmConfig shm;
  SourceConfig source;
  BinanceConfig binance;
  StoreConfig store;
  MetricsConfig metrics;
  std::vector<SeriesConfig> series = default_series();

  // The five series of DESIGN.md: eth_ticks, eth_1m, eth_1h, eth_1d, btc_ticks.
  static std::vector<SeriesConfig> default_series();
  std::vector<std::string> symbols() const;  // distinct, in order of first appearance
};

struct ConfigError {
  std::string key;                 // dotted path, e.g. "series[2].capacity"; empty for syntax errors
  std::uint32_t line = 0;          // 1-based; 0 when not known (e.g. a missing key)
  std::string message;
  std::string to_string(std::string_view file = {}) const;  // "file:12: series[2].capacity: ..."
};

struct LoadResult {
  Config config;                   // meaningful only when errors is empty
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Larger files are refused unread (a real configuration is a few KiB).
inline constexpr std::size_t kMaxConfigBytes = std::size_t{1} << 20;

LoadResult parse_config(std::string_view toml_text, std::string_view source_name = "config");
LoadResult load_config_file(const std::string& path);

std::string_view to_string(SourceKind k);
std::string_view to_string(FsyncPolicy p);

}  // namespace mdshm::config
