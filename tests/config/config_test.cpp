#include <catch2/catch.hpp>

#include "mdshm/registry_layout.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "config/config.hpp"

using namespace mdshm::config;

namespace {

bool has_error(const LoadResult& r, const std::string& key, std::uint32_t line) {
  for (const auto& e : r.errors)
    if (e.key == key && e.line == line) return true;
  return false;
}

std::string all_errors(const LoadResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string("t.toml") + "\n";
  return s;
}

}  // namespace

TEST_CASE("an empty config gives the defaults: five series, binance source") {
  const auto r = parse_config("");
  REQUIRE(r.ok());
  const Config& c = r.config;
  CHECK(c.daemon.instance == "default");
  CHECK(c.shm.dir == "/dev/shm");
  CHECK(c.shm.mode == 0640);
  CHECK(c.source.kind == SourceKind::binance);
  CHECK(c.binance.ws_url == "wss://stream.binance.com:9443");
  CHECK(c.binance.rest_url == "https://api.binance.com");
  CHECK(c.metrics.listen.empty());
  REQUIRE(c.series.size() == 5);
  CHECK(c.series[0].id == "eth_ticks");
  CHECK(c.series[0].interval_s == 1);
  CHECK(c.series[0].capacity == 86400);
  CHECK(c.series[3].id == "eth_1d");
  CHECK(c.series[3].interval_s == 86400);
  CHECK(c.series[3].capacity == 3650);
  CHECK(c.series[4].symbol == "BTCUSDT");
  CHECK(c.symbols() == std::vector<std::string>{"ETHUSDT", "BTCUSDT"});
}

TEST_CASE("a complete good config is read") {
  const auto r = parse_config(R"(
[daemon]
instance = "demo"
log_level = "debug"
[shm]
dir = "/tmp/x"
mode = "0600"
group = "mdshm"
lock_file = "/tmp/x/lock"
[source]
kind = "synthetic"
[source.synthetic]
rate = 1_000_000
seed = 9
volatility_bps = 0.5
start_prices = { ETHUSDT = 1900.5, BTCUSDT = 24000 }
[binance]
ws_url = "ws://127.0.0.1:9000"
rest_url = "http://127.0.0.1:9001"
ca_file = "/etc/ssl/ca.pem"
watchdog_s = 5
rotate_after_s = 3600
rest_weight_budget = 1200
rest_ban_backoff_s = 2.5
repair_hold_s = 12
backfill = false
record = "/tmp/rec.txt"
[store]
dir = "/var/lib/mdshm"
fsync = "always"
fsync_interval_ms = 200
[metrics]
listen = "127.0.0.1:9464"
[[series]]
id = "sol_1m"
symbol = "SOLUSDT"
interval = "1m"
capacity = 100
backfill = false
backfill_depth = 50
[[series]]
id = "sol_1w"
symbol = "SOLUSDT"
interval = "1w"
capacity = 520
)");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const Config& c = r.config;
  CHECK(c.daemon.instance == "demo");
  CHECK(c.daemon.log_level == "debug");
  CHECK(c.shm.mode == 0600);
  CHECK(c.shm.group == "mdshm");
  CHECK(c.source.kind == SourceKind::synthetic);
  CHECK(c.source.synthetic.rate == 1e6);
  CHECK(c.source.synthetic.seed == 9);
  CHECK(c.source.synthetic.start_price_of("ETHUSDT") == 1900.5);
  CHECK(c.source.synthetic.start_price_of("BTCUSDT") == 24000);
  CHECK(c.source.synthetic.start_price_of("XRPUSDT") == 100);
  CHECK(c.binance.watchdog_s == 5);
  CHECK(c.binance.rotate_after_s == 3600);
  CHECK(c.binance.rest_weight_budget == 1200);
  CHECK(c.binance.rest_ban_backoff_s == 2.5);
  CHECK(c.binance.repair_hold_s == 12);
  CHECK_FALSE(c.binance.backfill);
  CHECK(c.store.fsync == FsyncPolicy::always);
  CHECK(c.store.fsync_interval_ms == 200);
  CHECK(c.metrics.listen == "127.0.0.1:9464");
  REQUIRE(c.series.size() == 2);
  CHECK(c.series[0].id == "sol_1m");
  CHECK_FALSE(c.series[0].backfill);
  CHECK(c.series[0].backfill_depth == 50u);
  CHECK(c.series[1].interval_s == 604800);
  CHECK(c.series[1].backfill);
  CHECK_FALSE(c.series[1].backfill_depth.has_value());
}

TEST_CASE("every problem is reported with its key and line, not just the first") {
  const auto r = parse_config(R"([daemon]
instance = "bad name!"
colour = "blue"
[shm]
mode = "0666"
[source]
kind = "kraken"
[source.synthetic]
rate = -1
[binance]
watchdog_s = "ten"
[store]
fsync = "sometimes"
[metrics]
listen = "nowhere"
[[series]]
id = "Bad-Id"
symbol = "ethusdt"
interval = "7m"
capacity = 0
[[series]]
id = "dup"
symbol = "ETHUSDT"
interval = "1m"
capacity = 16777217
[[series]]
id = "dup"
symbol = "ETHUSDT"
interval = "1m"
capacity = 10
extra = 1
[unknown_table]
)");
  INFO(all_errors(r));
  CHECK_FALSE(r.ok());
  CHECK(has_error(r, "daemon.instance", 2));
  CHECK(has_error(r, "daemon.colour", 3));
  CHECK(has_error(r, "shm.mode", 5));
  CHECK(has_error(r, "source.kind", 7));
  CHECK(has_error(r, "source.synthetic.rate", 9));
  CHECK(has_error(r, "binance.watchdog_s", 11));
  CHECK(has_error(r, "store.fsync", 13));
  CHECK(has_error(r, "metrics.listen", 15));
  CHECK(has_error(r, "series[0].id", 17));
  CHECK(has_error(r, "series[0].symbol", 18));
  CHECK(has_error(r, "series[0].interval", 19));
  CHECK(has_error(r, "series[0].capacity", 20));
  CHECK(has_error(r, "series[1].capacity", 25));
  CHECK(has_error(r, "series[2].id", 27));
  CHECK(has_error(r, "series[2].extra", 31));
  CHECK(has_error(r, "unknown_table", 32));
  CHECK(r.errors.size() == 16);
  // The printed form names file, line and key.
  CHECK(r.errors.front().to_string("t.toml") == "t.toml:2: daemon.instance: invalid instance name 'bad name!' (1-31 of [A-Za-z0-9_-])");
}

TEST_CASE("world-writable and malformed modes are refused") {
  CHECK(has_error(parse_config("[shm]\nmode = \"0642\""), "shm.mode", 2));
  CHECK(has_error(parse_config("[shm]\nmode = \"rw-r\""), "shm.mode", 2));
  CHECK(has_error(parse_config("[shm]\nmode = 640"), "shm.mode", 2));
  CHECK(parse_config("[shm]\nmode = \"0660\"").ok());
}

TEST_CASE("missing series keys and wrong shapes are named") {
  auto r = parse_config("[[series]]\nid = \"x\"\n");
  INFO(all_errors(r));
  CHECK(has_error(r, "series[0].symbol", 1));
  CHECK(has_error(r, "series[0].interval", 1));
  CHECK(has_error(r, "series[0].capacity", 1));
  r = parse_config("series = 3\n");
  CHECK(has_error(r, "series", 1));
  r = parse_config("shm = 1\n");
  CHECK(has_error(r, "shm", 1));
  r = parse_config("[[series]]\nid = \"m\"\nsymbol = \"ETHUSDT\"\ninterval = \"1M\"\ncapacity = 5\n");
  CHECK(has_error(r, "series[0].interval", 4));  // calendar months have no fixed length
  r = parse_config("[[series]]\nid = \"m\"\nsymbol = \"ETHUSDT\"\ninterval = \"1m\"\ncapacity = 5\nbackfill_depth = 6\n");
  CHECK(has_error(r, "series[0].backfill_depth", 6));
}

TEST_CASE("a TOML syntax error names its line") {
  const auto r = parse_config("[daemon]\ninstance = \"x\"\nlog_level = \n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].line == 3);
  CHECK(r.errors[0].message.rfind("TOML syntax", 0) == 0);
}

TEST_CASE("a missing file is an error, not a crash") {
  const auto r = load_config_file("/nonexistent/mdshm.toml");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message.find("/nonexistent/mdshm.toml") != std::string::npos);
}

TEST_CASE("the shipped config files are valid") {
  for (const char* name : {"mdshm.toml", "synthetic.toml"}) {
    const auto r = load_config_file(std::string(MDSHM_SOURCE_DIR) + "/config/" + name);
    INFO(name << "\n" << all_errors(r));
    REQUIRE(r.ok());
    CHECK(r.config.series.size() == 5);
  }
  const auto syn = load_config_file(std::string(MDSHM_SOURCE_DIR) + "/config/synthetic.toml");
  CHECK(syn.config.source.kind == SourceKind::synthetic);
  const auto live = load_config_file(std::string(MDSHM_SOURCE_DIR) + "/config/mdshm.toml");
  CHECK(live.config.source.kind == SourceKind::binance);
}

TEST_CASE("an endless or huge config file is refused after a bounded read") {
  const auto zero = load_config_file("/dev/zero");
  REQUIRE(zero.errors.size() == 1);
  CHECK(zero.errors[0].message.find("larger than the limit of 1024 KiB") != std::string::npos);

  const std::string path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/mdshm-config-huge-" +
                           std::to_string(::getpid()) + ".toml";
  {
    std::ofstream out(path);
    const std::string comment = "# " + std::string(1000, 'x') + "\n";
    for (std::size_t n = 0; n <= kMaxConfigBytes / comment.size(); ++n) out << comment;
  }
  const auto huge = load_config_file(path);
  std::remove(path.c_str());
  REQUIRE(huge.errors.size() == 1);
  CHECK(huge.errors[0].message.find(path) != std::string::npos);
  CHECK(huge.errors[0].message.find("larger than the limit") != std::string::npos);
}

TEST_CASE("more series than an instance holds are refused by the config check") {
  auto config_with = [](std::size_t n) {
    std::string toml;
    for (std::size_t i = 0; i < n; ++i)
      toml += "[[series]]\nid = \"s" + std::to_string(i) + "\"\nsymbol = \"ETHUSDT\"\ninterval = \"1m\"\ncapacity = 16\n";
    return toml;
  };
  CHECK(parse_config(config_with(mdshm::kMaxSeriesPerInstance)).ok());
  for (std::size_t n : {mdshm::kMaxSeriesPerInstance + 1, std::size_t{5000}}) {
    const auto r = parse_config(config_with(n));
    INFO(all_errors(r));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].key == "series");
    CHECK(r.errors[0].message == std::to_string(n) + " series configured; at most " + std::to_string(mdshm::kMaxSeriesPerInstance) + " per instance");
  }
}

TEST_CASE("nan, infinite, negative and absurd durations are errors naming key and line") {
  for (const char* v : {"nan", "inf", "-inf", "-1.0", "0.0", "1e300"}) {
    INFO("watchdog_s = " << v);
    const auto r = parse_config(std::string("[binance]\nwatchdog_s = ") + v + "\n");
    CHECK(has_error(r, "binance.watchdog_s", 2));
  }
  CHECK(has_error(parse_config("[store]\nfsync_interval_ms = -5\n"), "store.fsync_interval_ms", 2));
  CHECK(has_error(parse_config("[binance]\nrepair_hold_s = nan\n"), "binance.repair_hold_s", 2));
}
