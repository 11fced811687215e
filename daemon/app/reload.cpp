#include "app/reload.hpp"

#include <spdlog/spdlog.h>

#include <tuple>

namespace mdshm::app {
namespace {

auto series_key(const config::Config& c) {
  std::vector<std::tuple<std::string, std::string, std::uint32_t, std::uint64_t, bool>> v;
  for (const auto& s : c.series) v.emplace_back(s.id, s.symbol, s.interval_s, s.capacity, s.backfill);
  return v;
}

template <class T>
void restart_needed(const char* key, const T& running, const T& loaded) {
  if (!(running == loaded)) spdlog::warn("SIGHUP: {} changed: needs a restart (running value kept)", key);
}

}  // namespace

bool reload_config(const std::string& path, const std::string& instance_override, config::Config& running,
                   const ReloadHooks& hooks) {
  auto r = config::load_config_file(path);
  if (!instance_override.empty()) r.config.daemon.instance = instance_override;
  if (!r.ok()) {
    for (const auto& e : r.errors) spdlog::error("SIGHUP: {}", e.to_string(path));
    spdlog::error("SIGHUP: {} has {} problem(s); nothing reloaded", path, r.errors.size());
    return false;
  }
  const config::Config& next = r.config;
  if (next.daemon.log_level != running.daemon.log_level) {
    spdlog::set_level(spdlog::level::from_str(next.daemon.log_level));
    spdlog::info("SIGHUP: log level {} -> {}", running.daemon.log_level, next.daemon.log_level);
    running.daemon.log_level = next.daemon.log_level;
  }
  if (next.binance.rest_weight_budget != running.binance.rest_weight_budget) {
    if (hooks.set_rest_weight_budget) {
      hooks.set_rest_weight_budget(static_cast<int>(next.binance.rest_weight_budget));
      spdlog::info("SIGHUP: REST weight budget {} -> {}", running.binance.rest_weight_budget,
                   next.binance.rest_weight_budget);
    }
    running.binance.rest_weight_budget = next.binance.rest_weight_budget;
  }
  restart_needed("daemon.instance", running.daemon.instance, next.daemon.instance);
  restart_needed("shm.dir", running.shm.dir, next.shm.dir);
  restart_needed("shm.mode", running.shm.mode, next.shm.mode);
  restart_needed("shm.group", running.shm.group, next.shm.group);
  restart_needed("shm.lock_file", running.shm.lock_file, next.shm.lock_file);
  restart_needed("source.kind", running.source.kind, next.source.kind);
  restart_needed("binance.ws_url", running.binance.ws_url, next.binance.ws_url);
  restart_needed("binance.rest_url", running.binance.rest_url, next.binance.rest_url);
  restart_needed("binance.ca_file", running.binance.ca_file, next.binance.ca_file);
  restart_needed("binance.rotate_after_s", running.binance.rotate_after_s, next.binance.rotate_after_s);
  restart_needed("binance.watchdog_s", running.binance.watchdog_s, next.binance.watchdog_s);
  restart_needed("binance.backfill", running.binance.backfill, next.binance.backfill);
  restart_needed("binance.record", running.binance.record, next.binance.record);
  restart_needed("store.fsync", running.store.fsync, next.store.fsync);
  restart_needed("store.fsync_interval_ms", running.store.fsync_interval_ms, next.store.fsync_interval_ms);
  restart_needed("binance.rest_ban_backoff_s", running.binance.rest_ban_backoff_s, next.binance.rest_ban_backoff_s);
  restart_needed("binance.repair_hold_s", running.binance.repair_hold_s, next.binance.repair_hold_s);
  restart_needed("store.dir", running.store.dir, next.store.dir);
  restart_needed("metrics.listen", running.metrics.listen, next.metrics.listen);
  restart_needed("series", series_key(running), series_key(next));
  spdlog::info("SIGHUP: configuration {} reloaded", path);
  return true;
}

}  // namespace mdshm::app
