#include "app/daemon.hpp"

#include <grp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <iostream>
#include <memory>
#include <spdlog/spdlog.h>
#include <vector>

#include "aggregate/aggregator.hpp"
#include "aggregate/segment_sink.hpp"
#include "feed/binance_feed.hpp"
#include "feed/bounded_log.hpp"
#include "feed/store_sink.hpp"
#include "store/history_store.hpp"
#include "publish/publisher.hpp"
#include "source/synthetic.hpp"
#include "app/log_setup.hpp"
#include "app/preflight.hpp"
#include "app/reload.hpp"
#include "metrics/exposition.hpp"
#include "metrics/http_exporter.hpp"
#include "service/service_notifier.hpp"
#include "mdshm/build_info.hpp"

namespace mdshm::app {

namespace {

using feed::BoundedLog;
using feed::mono_ns;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void on_stop_signal(int) { g_stop.store(true, std::memory_order_relaxed); }
extern "C" void on_reload_signal(int) { g_reload.store(true, std::memory_order_relaxed); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_reload_signal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
}

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

namespace {

store::FsyncPolicy store_policy(config::FsyncPolicy p) {
  switch (p) {
    case config::FsyncPolicy::never: return store::FsyncPolicy::never;
    case config::FsyncPolicy::always: return store::FsyncPolicy::always;
    case config::FsyncPolicy::interval: break;
  }
  return store::FsyncPolicy::interval;
}

// What report_store_health() has logged so far for one series.
struct StoreHealthLog {
  StoreState state = StoreState::ok;
  std::uint64_t lost = 0;
  std::shared_ptr<BoundedLog> dropped = std::make_shared<BoundedLog>("store backlog drops");
};

// Publishes a store's health into its segment (Stat::store_*) and logs each change of state and
// every drop of queued bars (rate-limited).
void report_store_health(publish::SegmentWriter& w, const std::string& id, const store::StoreHealth& h,
                         StoreHealthLog& logged) {
  w.set_stat(Stat::store_state, static_cast<std::uint64_t>(h.state));
  w.set_stat(Stat::store_pending_bars, h.pending);
  w.set_stat(Stat::store_write_errors, h.errors);
  w.set_stat(Stat::store_last_errno, static_cast<std::uint64_t>(h.last_errno));
  w.set_stat(Stat::store_corrupt_records, h.corrupt_records);
  if (h.lost > logged.lost) {
    logged.dropped->warn("{}: history store backlog full: {} closed bar(s) dropped so far (REST refills them at the "
                         "next start)", id, h.lost);
    logged.lost = h.lost;
  }
  if (h.state == logged.state) return;
  if (h.state == StoreState::ok)
    spdlog::info("{}: history store works again; the bars it missed are written", id);
  else
    spdlog::error("{}: history store {}: {} ({} closed bar(s) kept in memory, retrying)", id,
                  h.state == StoreState::unavailable ? "unavailable" : "failing", h.last_error, h.pending);
  logged.state = h.state;
}

// The history store of each series (null where none is configured). A store that cannot be opened
// is kept as "unavailable": it queues the bars and retries, and `mdshm check` reports it.
std::vector<std::unique_ptr<store::HistoryStore>> open_stores(const config::Config& cfg, publish::Publisher& pub) {
  std::vector<std::unique_ptr<store::HistoryStore>> out;
  for (std::size_t i = 0; i < cfg.series.size(); ++i) {
    const auto& s = cfg.series[i];
    if (cfg.store.dir.empty()) {
      pub.at(i).set_stat(Stat::store_state, static_cast<std::uint64_t>(StoreState::none));
      out.emplace_back();
      continue;
    }
    store::StoreOptions o;
    o.dir = cfg.store.dir;
    o.instance = cfg.daemon.instance;
    o.series = {s.id, s.symbol, s.interval_s};
    o.capacity = s.capacity;
    o.fsync = store_policy(cfg.store.fsync);
    o.fsync_interval = std::chrono::milliseconds(cfg.store.fsync_interval_ms);
    o.on_mismatch = store::MismatchPolicy::move_aside;
    try {
      auto st = std::make_unique<store::HistoryStore>(store::HistoryStore::open_or_defer(o));
      // A new store file is the normal first start; everything else in the notes was repaired.
      for (const auto& n : st->notes()) {
        if (n.rfind("created ", 0) == 0) spdlog::info("{}: history store: {}", s.id, n);
        else spdlog::warn("{}: history store: {}", s.id, n);
      }
      if (st->health().state == StoreState::ok)
        spdlog::info("{}: history store {}: {} bar(s)", s.id, st->path(), st->loaded().size());
      st->observe([&w = pub.at(i), id = s.id, logged = StoreHealthLog{}](const store::StoreHealth& h) mutable {
        report_store_health(w, id, h, logged);
      });
      out.push_back(std::move(st));
    } catch (const store::StoreError& e) {
      // A lock held by another daemon, or options the config check should have refused.
      spdlog::error("{}: history store unusable, running without it: {}", s.id, e.what());
      pub.at(i).set_stat(Stat::store_state, static_cast<std::uint64_t>(StoreState::unavailable));
      pub.at(i).add_stat(Stat::store_write_errors, 1);
      pub.at(i).set_stat(Stat::store_last_errno, static_cast<std::uint64_t>(e.sys_errno));
      out.emplace_back();
    }
  }
  return out;
}

// What the main loops share besides the configuration: the service manager and SIGHUP.
struct Runtime {
  service::ServiceNotifier notifier;
  std::string config_path;
  std::string instance_override;
  config::Config live;  // the running configuration; SIGHUP updates the reloadable parts

  void maybe_reload(const ReloadHooks& hooks) {
    if (!g_reload.exchange(false, std::memory_order_relaxed)) return;
    if (config_path.empty()) return;
    notifier.reloading("reloading configuration");
    reload_config(config_path, instance_override, live, hooks);
    notifier.ready("configuration reloaded");
  }
};

int run_synthetic(const config::Config& cfg, std::vector<aggregate::SymbolAggregator>& aggs,
                  publish::Publisher& pub, const std::atomic<bool>& stop, Runtime& rt) {
  for (auto& a : aggs) a.restore();
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
  rt.notifier.ready(fmt::format("serving {} series (synthetic source)", cfg.series.size()));
  service::WatchdogPacer watchdog(rt.notifier);
  while (!stop.load(std::memory_order_relaxed)) {
    src->poll(router, kAdvanceEveryNs);
    pub.wake_readers();  // once per batch: no syscall per publish, one FUTEX_WAKE per segment touched
    const auto now = mono_ns();
    watchdog.tick(now);
    rt.maybe_reload({});
    if (now - last_advance >= kAdvanceEveryNs) {
      const std::int64_t wall_ms = aggregate::system_wall_ns() / 1'000'000;
      for (auto& a : aggs) {
        a.advance_to(wall_ms);
        a.flush_stats();  // the sinks batch per-trade statistics (feed::StoreSink)
      }
      pub.wake_readers();
      last_advance = now;
    }
    if (now - last_status >= kStatusEveryNs) {
      spdlog::info("{} trades in the last {} s", router.trades - trades_at_status, (now - last_status) / 1'000'000'000);
      trades_at_status = router.trades;
      last_status = now;
    }
  }
  for (auto& a : aggs) a.flush_stats();
  spdlog::info("stopping: {} trades aggregated", router.trades);
  rt.notifier.stopping("stopping: flushing the history store");
  return kExitOk;
}

int run_binance(const config::Config& cfg, std::vector<aggregate::SymbolAggregator>& aggs,
                std::vector<std::unique_ptr<feed::StoreSink>>& sinks, const std::atomic<bool>& stop, Runtime& rt) {
  const auto symbols = cfg.symbols();
  std::vector<feed::FeedSeries> fseries;
  for (std::size_t i = 0; i < cfg.series.size(); ++i) {
    const auto& s = cfg.series[i];
    feed::FeedSeries f;
    f.id = s.id;
    f.symbol = static_cast<std::size_t>(std::find(symbols.begin(), symbols.end(), s.symbol) - symbols.begin());
    f.interval_s = s.interval_s;
    f.capacity = s.capacity;
    f.backfill = cfg.binance.backfill && s.backfill;
    f.backfill_depth = s.backfill_depth.value_or(0);
    f.sink = sinks[i].get();
    fseries.push_back(std::move(f));
  }
  feed::FeedOptions fo;
  fo.ws_url = cfg.binance.ws_url;
  fo.rest_url = cfg.binance.rest_url;
  fo.ca_file = cfg.binance.ca_file;
  fo.stall_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(cfg.binance.watchdog_s * 1000));
  fo.rest_weight_budget = static_cast<int>(cfg.binance.rest_weight_budget);
  fo.ws_max_lifetime = std::chrono::milliseconds(static_cast<std::int64_t>(cfg.binance.rotate_after_s * 1000));
  fo.rest_ban_backoff = std::chrono::milliseconds(static_cast<std::int64_t>(cfg.binance.rest_ban_backoff_s * 1000));
  fo.max_repair_hold = std::chrono::milliseconds(static_cast<std::int64_t>(cfg.binance.repair_hold_s * 1000));
  fo.record_path = cfg.binance.record;
  fo.abort = &stop;

  boost::asio::io_context ioc;
  auto work = boost::asio::make_work_guard(ioc);
  int rc = kExitOk;
  {
    feed::BinanceFeed feed(ioc, fo, aggs, std::move(fseries));
    rt.notifier.status("backfilling from " + cfg.binance.rest_url);
    if (auto err = feed.start(); !err.empty()) {
      if (stop.load()) {  // SIGTERM/SIGINT during clock sync or backfill: a clean stop, not a failure
        spdlog::info("stopped during startup ({})", err);
        rt.notifier.stopping("stopped during startup");
        feed.stop();
        return kExitOk;
      }
      spdlog::error("Binance feed: {}", err);
      feed.stop();
      return kExitRuntime;
    }
    spdlog::info("mdshmd running: instance '{}', {} series from {}", cfg.daemon.instance, cfg.series.size(),
                 cfg.binance.ws_url);
    // Handlers run inside run_for; tick() (bars closing on time, long-gap refills, store syncs)
    // runs between slices, so it may block on REST without running inside a handler.
    constexpr auto kSlice = std::chrono::milliseconds(20);
    // READY only now: segments are up and backfill is done, as the unit's Type=notify promises.
    rt.notifier.ready(fmt::format("serving {} series from {}", cfg.series.size(), cfg.binance.ws_url));
    service::WatchdogPacer watchdog(rt.notifier);
    const ReloadHooks hooks{[&feed](int budget) { feed.set_rest_weight_budget(budget); }};
    while (!stop.load(std::memory_order_relaxed)) {
      ioc.run_for(kSlice);
      feed.tick();
      for (auto& s : sinks) s->writer().wake_readers();  // bars closed on time by tick()
      watchdog.tick(mono_ns());
      rt.maybe_reload(hooks);
    }
    spdlog::info("stopping");
    rt.notifier.stopping("stopping: closing the feed, flushing the history store");
    feed.stop();
    work.reset();
    ioc.run_for(std::chrono::milliseconds(200));  // let cancelled operations finish harmlessly
  }
  return rc;
}

}  // namespace

namespace {
int serve(const config::Config& cfg, const std::atomic<bool>& stop, Runtime& rt) {
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
  const bool synthetic = cfg.source.kind == config::SourceKind::synthetic;
  const std::string source_kind = synthetic ? "synthetic" : "binance";
  const std::string endpoint = (synthetic ? "seed=" + std::to_string(cfg.source.synthetic.seed) : cfg.binance.ws_url)
                                   .substr(0, kSourceEndpointLen - 1);  // a longer URL is compared by its prefix
  for (const auto& s : cfg.series) specs.push_back({s.id, s.symbol, s.interval_s, s.capacity, source_kind, endpoint});

  rt.notifier.status("opening segments");
  std::unique_ptr<publish::Publisher> pub;
  try {
    pub = std::make_unique<publish::Publisher>(popt, specs);
  } catch (const publish::WriterLockHeld& e) {
    spdlog::error("another writer already serves instance '{}': {}", cfg.daemon.instance, e.what());
    return kExitLockHeld;
  } catch (const std::exception& e) {
    spdlog::error("cannot publish instance '{}': {}", cfg.daemon.instance, e.what());
    return kExitRuntime;
  }

  // One sink per series (segment + history store), one aggregator per symbol holding all of that
  // symbol's intervals.
  auto stores = open_stores(cfg, *pub);
  const auto symbols = cfg.symbols();
  std::vector<std::unique_ptr<feed::StoreSink>> sinks;
  std::vector<aggregate::SymbolAggregator> aggs;
  for (const auto& sym : symbols) aggs.emplace_back(sym);
  for (std::size_t i = 0; i < cfg.series.size(); ++i) {
    const auto& s = cfg.series[i];
    auto log_store_error = [id = s.id, log = std::make_shared<BoundedLog>("store errors")](const std::string& m) {
      log->warn("{}: history store append failed: {}", id, m);
    };
    sinks.push_back(std::make_unique<feed::StoreSink>(pub->at(i), stores[i].get(), log_store_error));
    const auto sym = std::find(symbols.begin(), symbols.end(), s.symbol) - symbols.begin();
    aggs[static_cast<std::size_t>(sym)].add_interval(s.interval_s, *sinks.back(), s.capacity);
  }

  // Declared after pub, so it is destroyed (its thread joined) before the segments it renders.
  std::unique_ptr<metrics::MetricsExporter> exporter;
  if (!cfg.metrics.listen.empty()) {
    const OpenOptions registry{cfg.daemon.instance, cfg.shm.dir};
    try {
      exporter = std::make_unique<metrics::MetricsExporter>(
          cfg.metrics.listen, [&pub, registry] { return metrics::render_metrics(*pub, registry); });
      spdlog::info("metrics: http://{}/metrics", cfg.metrics.listen);
    } catch (const std::exception& e) {
      spdlog::error("metrics.listen: {}", e.what());
      return kExitConfig;
    }
  }

  int rc = cfg.source.kind == config::SourceKind::binance ? run_binance(cfg, aggs, sinks, stop, rt)
                                                          : run_synthetic(cfg, aggs, *pub, stop, rt);
  for (std::size_t i = 0; i < stores.size(); ++i)
    if (stores[i]) {
      if (auto r = stores[i]->flush(); !r.ok()) spdlog::error("{}: history store flush: {}", cfg.series[i].id, r.message);
    }
  return rc;  // ~Publisher stops its threads and releases the lock; segments stay for readers
}
}  // namespace

int run_daemon(const config::Config& cfg, const std::atomic<bool>& stop) {
  Runtime rt;  // no config file behind it: SIGHUP re-reads nothing
  rt.live = cfg;
  return serve(cfg, stop, rt);
}

int run_main(int argc, char** argv) {
  CLI::App cli{"mdshmd: market-data daemon publishing OHLCV series into shared memory"};
  std::string config_path, instance;
  bool check_only = false;
  cli.set_version_flag("--version", build::version_line("mdshmd"));
  cli.add_option("--config", config_path, "TOML configuration file")->required();
  cli.add_option("--instance", instance, "instance name (overrides daemon.instance)");
  cli.add_flag("--check-config", check_only, "validate the configuration and exit (0 ok, 2 bad)");
  std::string record;
  cli.add_option("--record", record,
                 "append every WebSocket frame received to FILE as '<receive-time>: <frame>' lines "
                 "(the format mdshm-sim --replay reads); overrides binance.record");
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
  // The machine's side (directories, group, address, space): the same for --check-config and start-up.
  if (result.ok())
    for (auto& e : preflight(result.config)) result.errors.push_back(std::move(e));
  if (!result.ok()) {
    for (const auto& e : result.errors) std::cerr << e.to_string(config_path) << "\n";
    std::cerr << config_path << ": " << result.errors.size() << " problem(s); not started\n";
    return kExitConfig;
  }
  if (!record.empty()) result.config.binance.record = record;
  const auto& cfg = result.config;
  if (check_only) {
    std::cout << config_path << ": ok (instance '" << cfg.daemon.instance << "', " << cfg.series.size()
              << " series, source " << config::to_string(cfg.source.kind) << ")\n";
    return kExitOk;
  }

  setup_logging(level_of(cfg.daemon.log_level));
  install_signal_handlers();
  Runtime rt;
  rt.config_path = config_path;
  rt.instance_override = instance;
  rt.live = cfg;
  try {
    return serve(cfg, g_stop, rt);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return kExitRuntime;
  }
}

}  // namespace mdshm::app
