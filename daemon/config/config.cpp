#include "config/config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "mdshm/layout.hpp"
#include "mdshm/registry_layout.hpp"
#include "model/market.hpp"

namespace mdshm::config {

double SyntheticConfig::start_price_of(std::string_view symbol) const {
  for (const auto& s : start_prices)
    if (s.symbol == symbol) return s.start_price;
  return 100.0;
}

std::vector<SeriesConfig> Config::default_series() {
  auto s = [](const char* id, const char* sym, const char* iv, std::uint32_t secs, std::uint64_t cap) {
    SeriesConfig c;
    c.id = id;
    c.symbol = sym;
    c.interval = iv;
    c.interval_s = secs;
    c.capacity = cap;
    return c;
  };
  return {s("eth_ticks", "ETHUSDT", "1s", 1, 86400), s("eth_1m", "ETHUSDT", "1m", 60, 10080),
          s("eth_1h", "ETHUSDT", "1h", 3600, 8760), s("eth_1d", "ETHUSDT", "1d", 86400, 3650),
          s("btc_ticks", "BTCUSDT", "1s", 1, 86400)};
}

std::vector<std::string> Config::symbols() const {
  std::vector<std::string> out;
  for (const auto& s : series)
    if (std::find(out.begin(), out.end(), s.symbol) == out.end()) out.push_back(s.symbol);
  return out;
}

std::string ConfigError::to_string(std::string_view file) const {
  std::string out(file);
  if (line) out += (out.empty() ? "line " : ":") + std::to_string(line);
  if (!out.empty()) out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

std::string_view to_string(SourceKind k) { return k == SourceKind::binance ? "binance" : "synthetic"; }
std::string_view to_string(FsyncPolicy p) {
  switch (p) {
    case FsyncPolicy::never: return "never";
    case FsyncPolicy::interval: return "interval";
    case FsyncPolicy::always: return "always";
  }
  return "?";
}

namespace {

std::uint32_t line_of(const toml::node& n) { return n.source().begin.line; }

std::string join(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : std::string(path) + "." + std::string(key);
}

// Walks the document, records every problem, and reads typed values. A value of the wrong type is
// reported once and otherwise treated as absent, so the default stays and checking goes on.
class Checker {
 public:
  std::vector<ConfigError> errors;

  void error(std::string key, std::uint32_t line, std::string msg) {
    errors.push_back({std::move(key), line, std::move(msg)});
  }

  void known_keys(const toml::table& t, std::string_view path, std::initializer_list<std::string_view> known) {
    for (auto&& [k, v] : t) {
      if (std::find(known.begin(), known.end(), k.str()) != known.end()) continue;
      std::string list;
      for (auto n : known) list += (list.empty() ? "" : ", ") + std::string(n);
      error(join(path, k.str()), k.source().begin.line ? k.source().begin.line : line_of(v),
            "unknown key (known here: " + list + ")");
    }
  }

  const toml::table* table(const toml::table& parent, std::string_view path, std::string_view key) {
    const toml::node* n = parent.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      error(join(path, key), line_of(*n), "must be a table");
      return nullptr;
    }
    return n->as_table();
  }

  std::optional<std::string> str(const toml::table& t, std::string_view path, std::string_view key) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (auto v = n->value<std::string>(); v && n->is_string()) return v;
    error(join(path, key), line_of(*n), "must be a string");
    return std::nullopt;
  }

  std::optional<bool> boolean(const toml::table& t, std::string_view path, std::string_view key) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (n->is_boolean()) return n->as_boolean()->get();
    error(join(path, key), line_of(*n), "must be true or false");
    return std::nullopt;
  }

  std::optional<std::int64_t> integer(const toml::table& t, std::string_view path, std::string_view key,
                                      std::int64_t lo, std::int64_t hi) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) {
      error(join(path, key), line_of(*n), "must be an integer");
      return std::nullopt;
    }
    const std::int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) {
      error(join(path, key), line_of(*n),
            "out of range: " + std::to_string(v) + " (allowed " + std::to_string(lo) + ".." + std::to_string(hi) + ")");
      return std::nullopt;
    }
    return v;
  }

  // Integers are accepted where a number is expected ("rate = 2000").
  std::optional<double> number(const toml::table& t, std::string_view path, std::string_view key, double lo,
                               double hi) {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    std::optional<double> v;
    if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
    if (n->is_floating_point()) v = n->as_floating_point()->get();
    if (!v) {
      error(join(path, key), line_of(*n), "must be a number");
      return std::nullopt;
    }
    if (!std::isfinite(*v) || *v < lo || *v > hi) {
      std::ostringstream os;
      os << "out of range: " << *v << " (allowed " << lo << ".." << hi << ")";
      error(join(path, key), line_of(*n), os.str());
      return std::nullopt;
    }
    return v;
  }

  std::uint32_t line(const toml::table& t, std::string_view key) {
    const toml::node* n = t.get(key);
    return n ? line_of(*n) : line_of(t);
  }
};

bool upper_alnum(std::string_view s) {
  if (s.empty() || s.size() >= kSymbolLen) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

std::optional<mode_t> parse_mode(std::string_view s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  mode_t m = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return std::nullopt;
    m = m * 8 + static_cast<mode_t>(c - '0');
  }
  return m;
}

bool valid_listen(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const auto port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  int p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
  }
  return p >= 1 && p <= 65535;
}

void read_daemon(Checker& c, const toml::table& root, Config& cfg) {
  const auto* t = c.table(root, "", "daemon");
  if (!t) return;
  c.known_keys(*t, "daemon", {"instance", "log_level"});
  if (auto v = c.str(*t, "daemon", "instance")) {
    if (valid_instance(*v)) cfg.daemon.instance = *v;
    else c.error("daemon.instance", c.line(*t, "instance"), "invalid instance name '" + *v + "' (1-31 of [A-Za-z0-9_-])");
  }
  if (auto v = c.str(*t, "daemon", "log_level")) {
    static constexpr std::string_view levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (std::find(std::begin(levels), std::end(levels), *v) != std::end(levels)) cfg.daemon.log_level = *v;
    else c.error("daemon.log_level", c.line(*t, "log_level"), "must be one of trace, debug, info, warn, error, critical, off");
  }
}

void read_shm(Checker& c, const toml::table& root, Config& cfg) {
  const auto* t = c.table(root, "", "shm");
  if (!t) return;
  c.known_keys(*t, "shm", {"dir", "mode", "group", "lock_file"});
  if (auto v = c.str(*t, "shm", "dir")) {
    if (!v->empty() && (*v)[0] == '/') cfg.shm.dir = *v;
    else c.error("shm.dir", c.line(*t, "dir"), "must be an absolute path");
  }
  if (auto v = c.str(*t, "shm", "mode")) {
    const auto m = parse_mode(*v);
    if (!m || *m > 0777) c.error("shm.mode", c.line(*t, "mode"), "must be an octal string such as \"0640\"");
    else if (*m & 0002) c.error("shm.mode", c.line(*t, "mode"), "world-writable mode " + *v + " refused");
    else cfg.shm.mode = *m;
  }
  if (auto v = c.str(*t, "shm", "group")) cfg.shm.group = *v;
  if (auto v = c.str(*t, "shm", "lock_file")) {
    if (v->empty() || (*v)[0] == '/') cfg.shm.lock_file = *v;
    else c.error("shm.lock_file", c.line(*t, "lock_file"), "must be an absolute path");
  }
}

void read_source(Checker& c, const toml::table& root, Config& cfg) {
  const auto* t = c.table(root, "", "source");
  if (!t) return;
  c.known_keys(*t, "source", {"kind", "synthetic"});
  if (auto v = c.str(*t, "source", "kind")) {
    if (*v == "binance") cfg.source.kind = SourceKind::binance;
    else if (*v == "synthetic") cfg.source.kind = SourceKind::synthetic;
    else c.error("source.kind", c.line(*t, "kind"), "must be \"binance\" or \"synthetic\", not \"" + *v + "\"");
  }
  const auto* s = c.table(*t, "source", "synthetic");
  if (!s) return;
  const std::string p = "source.synthetic";
  c.known_keys(*s, p, {"rate", "seed", "volatility_bps", "start_prices"});
  auto& syn = cfg.source.synthetic;
  if (auto v = c.number(*s, p, "rate", 0.001, 50e6)) syn.rate = *v;
  if (auto v = c.integer(*s, p, "seed", 0, INT64_MAX)) syn.seed = static_cast<std::uint64_t>(*v);
  if (auto v = c.number(*s, p, "volatility_bps", 0, 1000)) syn.volatility_bps = *v;
  if (const auto* prices = c.table(*s, p, "start_prices")) {
    for (auto&& [k, v] : *prices) {
      const std::string key = p + ".start_prices." + std::string(k.str());
      if (!upper_alnum(k.str())) c.error(key, line_of(v), "symbol must be upper-case letters and digits");
      if (auto price = c.number(*prices, p + ".start_prices", k.str(), 1e-8, 1e12))
        syn.start_prices.push_back({std::string(k.str()), *price});
    }
  }
}

void read_binance(Checker& c, const toml::table& root, Config& cfg) {
  const auto* t = c.table(root, "", "binance");
  if (!t) return;
  const std::string p = "binance";
  c.known_keys(*t, p, {"ws_url", "rest_url", "ca_file", "watchdog_s", "rotate_after_s", "rest_weight_budget", "rest_ban_backoff_s",
                            "repair_hold_s", "backfill", "record"});
  auto& b = cfg.binance;
  if (auto v = c.str(*t, p, "ws_url")) {
    if (v->rfind("wss://", 0) == 0 || v->rfind("ws://", 0) == 0) b.ws_url = *v;
    else c.error("binance.ws_url", c.line(*t, "ws_url"), "must start with wss:// or ws://");
  }
  if (auto v = c.str(*t, p, "rest_url")) {
    if (v->rfind("https://", 0) == 0 || v->rfind("http://", 0) == 0) b.rest_url = *v;
    else c.error("binance.rest_url", c.line(*t, "rest_url"), "must start with https:// or http://");
  }
  if (auto v = c.str(*t, p, "ca_file")) b.ca_file = *v;
  if (auto v = c.number(*t, p, "watchdog_s", 0.1, 3600)) b.watchdog_s = *v;
  if (auto v = c.number(*t, p, "rotate_after_s", 1, 86000)) b.rotate_after_s = *v;
  if (auto v = c.integer(*t, p, "rest_weight_budget", 1, 6000)) b.rest_weight_budget = static_cast<std::uint32_t>(*v);
  if (auto v = c.number(*t, p, "rest_ban_backoff_s", 1, 3 * 86400)) b.rest_ban_backoff_s = *v;
  if (auto v = c.number(*t, p, "repair_hold_s", 1, 3600)) b.repair_hold_s = *v;
  if (auto v = c.boolean(*t, p, "backfill")) b.backfill = *v;
  if (auto v = c.str(*t, p, "record")) b.record = *v;
}

void read_store(Checker& c, const toml::table& root, Config& cfg) {
  const auto* t = c.table(root, "", "store");
  if (!t) return;
  c.known_keys(*t, "store", {"dir", "fsync", "fsync_interval_ms"});
  if (auto v = c.str(*t, "store", "dir")) cfg.store.dir = *v;
  if (auto v = c.str(*t, "store", "fsync")) {
    if (*v == "never") cfg.store.fsync = FsyncPolicy::never;
    else if (*v == "interval") cfg.store.fsync = FsyncPolicy::interval;
    else if (*v == "always") cfg.store.fsync = FsyncPolicy::always;
    else c.error("store.fsync", c.line(*t, "fsync"), "must be \"never\", \"interval\" or \"always\"");
  }
  if (auto v = c.integer(*t, "store", "fsync_interval_ms", 1, 3'600'000))
    cfg.store.fsync_interval_ms = static_cast<std::uint32_t>(*v);
}

void read_metrics(Checker& c, const toml::table& root, Config& cfg) {
  const auto* t = c.table(root, "", "metrics");
  if (!t) return;
  c.known_keys(*t, "metrics", {"listen"});
  if (auto v = c.str(*t, "metrics", "listen")) {
    if (v->empty() || valid_listen(*v)) cfg.metrics.listen = *v;
    else c.error("metrics.listen", c.line(*t, "listen"), "must be \"host:port\" (port 1-65535) or \"\" for off");
  }
}

void read_series(Checker& c, const toml::table& root, Config& cfg) {
  const toml::node* n = root.get("series");
  if (!n) return;  // the five defaults
  const toml::array* arr = n->as_array();
  if (!arr || !arr->is_array_of_tables()) {
    c.error("series", line_of(*n), "must be an array of tables ([[series]])");
    return;
  }
  cfg.series.clear();
  if (arr->empty()) c.error("series", line_of(*n), "at least one series is required");
  std::set<std::string> ids;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::table& t = *arr->get(i)->as_table();
    const std::string p = "series[" + std::to_string(i) + "]";
    c.known_keys(t, p, {"id", "symbol", "interval", "capacity", "backfill", "backfill_depth"});
    SeriesConfig s;
    bool complete = true;
    auto require = [&](std::string_view key) {
      if (t.contains(key)) return true;
      c.error(p + "." + std::string(key), line_of(t), "missing (required)");
      complete = false;
      return false;
    };
    if (require("id")) {
      if (auto v = c.str(t, p, "id")) {
        if (!valid_series_id(*v)) {
          c.error(p + ".id", c.line(t, "id"), "invalid series id '" + *v + "' (1-31 of [a-z0-9_])");
        } else if (!ids.insert(*v).second) {
          c.error(p + ".id", c.line(t, "id"), "duplicate series id '" + *v + "'");
        }
        s.id = *v;
      }
    }
    if (require("symbol")) {
      if (auto v = c.str(t, p, "symbol")) {
        if (!upper_alnum(*v)) c.error(p + ".symbol", c.line(t, "symbol"), "symbol must be upper-case letters and digits, e.g. ETHUSDT");
        s.symbol = *v;
      }
    }
    if (require("interval")) {
      if (auto v = c.str(t, p, "interval")) {
        if (const auto secs = interval_seconds(*v)) {
          s.interval = *v;
          s.interval_s = *secs;
        } else {
          std::string names;
          for (const auto& iv : kIntervals) names += (names.empty() ? "" : ", ") + std::string(iv.name);
          c.error(p + ".interval", c.line(t, "interval"), "unknown interval '" + *v + "' (one of " + names + ")");
        }
      }
    }
    if (require("capacity")) {
      if (auto v = c.integer(t, p, "capacity", 1, static_cast<std::int64_t>(kMaxCapacity)))
        s.capacity = static_cast<std::uint64_t>(*v);
    }
    if (auto v = c.boolean(t, p, "backfill")) s.backfill = *v;
    if (auto v = c.integer(t, p, "backfill_depth", 1, static_cast<std::int64_t>(kMaxCapacity))) {
      s.backfill_depth = static_cast<std::uint64_t>(*v);
      if (s.capacity && *s.backfill_depth > s.capacity)
        c.error(p + ".backfill_depth", c.line(t, "backfill_depth"),
                "exceeds the capacity (" + std::to_string(s.capacity) + " bars): older bars would be lapped at once");
    }
    if (complete) cfg.series.push_back(std::move(s));
  }
  // Readers learn an instance's series from the consumers directory's manifest, which holds at most
  // kMaxSeriesPerInstance ids; the publisher refuses more at start-up.
  if (arr->size() > kMaxSeriesPerInstance)
    c.error("series", line_of(*n), std::to_string(arr->size()) + " series configured; at most " +
                                       std::to_string(kMaxSeriesPerInstance) + " per instance");
}

}  // namespace

LoadResult parse_config(std::string_view toml_text, std::string_view source_name) {
  LoadResult r;
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    r.errors.push_back({"", e.source().begin.line, "TOML syntax: " + std::string(e.description())});
    return r;
  }
  Checker c;
  c.known_keys(root, "", {"daemon", "shm", "source", "binance", "store", "metrics", "series"});
  read_daemon(c, root, r.config);
  read_shm(c, root, r.config);
  read_source(c, root, r.config);
  read_binance(c, root, r.config);
  read_store(c, root, r.config);
  read_metrics(c, root, r.config);
  read_series(c, root, r.config);
  r.errors = std::move(c.errors);
  std::stable_sort(r.errors.begin(), r.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  return r;
}

LoadResult load_config_file(const std::string& path) {
  LoadResult r;
  // Bounded: `--config /dev/zero` or a runaway file must end in an error, not in all the memory.
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    r.errors.push_back({"", 0, "cannot read config file " + path});
    return r;
  }
  std::string text(kMaxConfigBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    r.errors.push_back({"", 0, "cannot read config file " + path});
    return r;
  }
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxConfigBytes) {
    r.errors.push_back({"", 0, "config file " + path + " is larger than the limit of " +
                                   std::to_string(kMaxConfigBytes / 1024) + " KiB (not a configuration?)"});
    return r;
  }
  return parse_config(text, path);
}

}  // namespace mdshm::config
