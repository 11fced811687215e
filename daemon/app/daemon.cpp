#include "app/daemon.hpp"

#include <grp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <vector>

#include "aggregate/aggregator.hpp"
#include "aggregate/segment_sink.hpp"
#include "publish/publisher.hpp"
#include "source/synthetic.hpp"

namespace mdshm::app {

namespace {

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void on_stop_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// At most `per_window` lines per 10 s per kind of problem, then one line saying how many were
// suppressed: bad input must never flood the log. Hand-written because spdlog 1.10 has no rate
// limiting of its own.
class BoundedLog {
 public:
  explicit BoundedLog(std::string what, int per_window = 5) : what_(std::move(what)), per_window_(per_window) {}
  template <class... Args>
  void warn(fmt::format_string<Args...> f, Args&&... args) {
    const auto now = mono_ns();
    if (now - window_start_ > 10'000'000'000) {
      if (suppressed_) spdlog::warn("{}: {} more suppressed in the last 10 s", what_, suppressed_);
      window_start_ = now;
      in_window_ = suppressed_ = 0;
    }
    if (in_window_++ < per_window_) spdlog::warn(f, std::forward<Args>(args)...);
    else ++suppressed_;
  }

 private:
  std::string what_;
  int per_window_;
  std::int64_t window_start_ = 0;
  int in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

// Routes a source's output to the aggregator of each symbol.
class Router final : public source::TradeHandler {
 public:
  explicit Router(std::vector<aggregate::SymbolAggregator>& aggs) : aggs_(aggs) {}
  void on_trade(std::size_t symbol, const Trade& t) override {
    auto& agg = aggs_[symbol];
    switch (agg.on_trade(t)) {
      case aggregate::TradeOutcome::applied: ++trades; break;
      case aggregate::TradeOutcome::rejected:
        bad_.warn("{}: trade {} rejected (price {}, qty {}, time {})", agg.symbol(), t.id, t.price, t.qty, t.time_ms);
        break;
      case aggregate::TradeOutcome::duplicate:
        dup_.warn("{}: duplicate trade id {} dropped", agg.symbol(), t.id);
        break;
    }
  }
  void on_kline(std::size_t symbol, const Kline& k) override { aggs_[symbol].on_exchange_kline(k); }
  std::uint64_t trades = 0;

 private:
  std::vector<aggregate::SymbolAggregator>& aggs_;
  BoundedLog bad_{"rejected trades"};
  BoundedLog dup_{"duplicate trades"};
};

std::optional<gid_t> group_id(const std::string& name) {
  std::vector<char> buf(16384);
  group g{};
  group* out = nullptr;
  if (getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &out) != 0 || !out) return std::nullopt;
  return out->gr_gid;
}

spdlog::level::level_enum level_of(const std::string& s) { return spdlog::level::from_str(s); }

void log_from_publisher(publish::LogLevel l, std::string_view m) {
  switch (l) {
    case publish::LogLevel::debug: spdlog::debug("{}", m); break;
    case publish::LogLevel::info: spdlog::info("{}", m); break;
    case publish::LogLevel::warn: spdlog::warn("{}", m); break;
    case publish::LogLevel::error: spdlog::error("{}", m); break;
  }
}

}  // namespace

int run_daemon(const config::Config& cfg, const std::atomic<bool>& stop) {
  if (cfg.source.kind == config::SourceKind::binance) {
    spdlog::error("source.kind = \"binance\": the Binance feed is not implemented yet; "
                  "run the synthetic source (config/synthetic.toml)");
    return kExitConfig;
  }

  publish::PublisherOptions popt;
  popt.segments.shm_dir = cfg.shm.dir;
  popt.segments.instance = cfg.daemon.instance;
  popt.segments.mode = cfg.shm.mode;
  if (!cfg.shm.group.empty()) {
    const auto gid = group_id(cfg.shm.group);
    if (!gid) {
      spdlog::error("shm.group: no such group '{}'", cfg.shm.group);
      return kExitConfig;
    }
    popt.segments.group = *gid;
  }
  popt.lock_path = cfg.shm.lock_file;
  popt.log = &log_from_publisher;

  std::vector<publish::SeriesSpec> specs;
  for (const auto& s : cfg.series) specs.push_back({s.id, s.symbol, s.interval_s, s.capacity});

  std::unique_ptr<publish::Publisher> pub;
  try {
    pub = std::make_unique<publish::Publisher>(popt, specs);
  } catch (const publish::WriterLockHeld& e) {
    spdlog::error("another mdshmd (pid {}) already serves instance '{}' ({})", e.holder_pid, cfg.daemon.instance,
                  e.what());
    return kExitLockHeld;
  } catch (const std::exception& e) {
    spdlog::error("cannot publish instance '{}': {}", cfg.daemon.instance, e.what());
    return kExitRuntime;
  }

  // One sink per series, one aggregator per symbol holding all of that symbol's intervals.
  const auto symbols = cfg.symbols();
  std::vector<std::unique_ptr<aggregate::SegmentSink>> sinks;
  std::vector<aggregate::SymbolAggregator> aggs;
  for (const auto& sym : symbols) aggs.emplace_back(sym);
  for (std::size_t i = 0; i < cfg.series.size(); ++i) {
    const auto& s = cfg.series[i];
    sinks.push_back(std::make_unique<aggregate::SegmentSink>(pub->at(i)));
    const auto sym = std::find(symbols.begin(), symbols.end(), s.symbol) - symbols.begin();
    aggs[static_cast<std::size_t>(sym)].add_interval(s.interval_s, *sinks.back(), s.capacity);
  }
  for (auto& a : aggs) a.restore();

  // The trade source. The Binance feed goes here, next to the synthetic one, when it lands.
  std::unique_ptr<source::TradeSource> src;
  {
    const auto& syn = cfg.source.synthetic;
    std::vector<source::SyntheticSymbol> ss;
    for (auto& a : aggs) {
      // After a restart the walk continues from the last close, ids after the last id.
      double start = syn.start_price_of(a.symbol());
      for (auto& iv : a.intervals())
        if (iv.has_bar() && iv.newest().close > 0) start = iv.newest().close;
      ss.push_back({a.symbol(), start, a.last_trade_id() + 1});
    }
    src = std::make_unique<source::SyntheticSource>(
        std::move(ss), source::SyntheticOptions{syn.rate, syn.seed, syn.volatility_bps, 4096});
    spdlog::info("synthetic source: {} symbol(s), {} trades/s", aggs.size(), syn.rate);
  }

  Router router(aggs);
  constexpr std::int64_t kAdvanceEveryNs = 20'000'000;  // well inside the 100 ms promise
  constexpr std::int64_t kStatusEveryNs = 60'000'000'000;
  std::int64_t last_advance = 0, last_status = mono_ns();
  std::uint64_t trades_at_status = 0;
  spdlog::info("mdshmd running: instance '{}', {} series", cfg.daemon.instance, cfg.series.size());
  while (!stop.load(std::memory_order_relaxed)) {
    src->poll(router, kAdvanceEveryNs);
    const auto now = mono_ns();
    if (now - last_advance >= kAdvanceEveryNs) {
      const std::int64_t wall_ms = aggregate::system_wall_ns() / 1'000'000;
      for (auto& a : aggs) a.advance_to(wall_ms);
      last_advance = now;
    }
    if (now - last_status >= kStatusEveryNs) {
      spdlog::info("{} trades in the last {} s", router.trades - trades_at_status, (now - last_status) / 1'000'000'000);
      trades_at_status = router.trades;
      last_status = now;
    }
  }
  spdlog::info("stopping: {} trades aggregated", router.trades);
  return kExitOk;  // ~Publisher stops its threads and releases the lock; segments stay for readers
}

int run_main(int argc, char** argv) {
  CLI::App cli{"mdshmd: market-data daemon publishing OHLCV series into shared memory"};
  std::string config_path, instance;
  bool check_only = false;
  cli.add_option("--config", config_path, "TOML configuration file")->required();
  cli.add_option("--instance", instance, "instance name (overrides daemon.instance)");
  cli.add_flag("--check-config", check_only, "validate the configuration and exit (0 ok, 2 bad)");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? kExitOk : kExitConfig;
  }

  auto result = config::load_config_file(config_path);
  if (!instance.empty()) {
    if (valid_instance(instance)) result.config.daemon.instance = instance;
    else result.errors.push_back({"--instance", 0, "invalid instance name '" + instance + "' (1-31 of [A-Za-z0-9_-])"});
  }
  if (!result.ok()) {
    for (const auto& e : result.errors) std::cerr << e.to_string(config_path) << "\n";
    std::cerr << config_path << ": " << result.errors.size() << " problem(s); not started\n";
    return kExitConfig;
  }
  const auto& cfg = result.config;
  if (check_only) {
    std::cout << config_path << ": ok (instance '" << cfg.daemon.instance << "', " << cfg.series.size()
              << " series, source " << config::to_string(cfg.source.kind) << ")\n";
    return kExitOk;
  }

  auto logger = spdlog::stderr_color_mt("mdshmd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level_of(cfg.daemon.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%P] %v");
  install_signal_handlers();
  try {
    return run_daemon(cfg, g_stop);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return kExitRuntime;
  }
}

}  // namespace mdshm::app
