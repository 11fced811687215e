// mdshm-sim: a Binance spot exchange simulator on loopback, for the tests and the demo.
#include <CLI/CLI.hpp>
#include <iostream>

#include "decimal.hpp"
#include "model/market.hpp"
#include "server.hpp"
#include "trades.hpp"
#include "mdshm/build_info.hpp"

namespace {

using namespace mdshm::sim;

std::vector<std::string> split_colon(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto c = s.find(':', start);
    out.push_back(s.substr(start, c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  return out;
}

// SYMBOL:INTERVAL:FILE (the file may itself contain ':', so only the first two split).
bool add_klines(Market& market, const std::string& spec) {
  const auto a = spec.find(':'), b = a == std::string::npos ? a : spec.find(':', a + 1);
  if (b == std::string::npos) {
    std::cerr << "mdshm-sim: --klines wants SYMBOL:INTERVAL:FILE, got '" << spec << "'\n";
    return false;
  }
  const std::string symbol = spec.substr(0, a), interval = spec.substr(a + 1, b - a - 1), file = spec.substr(b + 1);
  const auto seconds = mdshm::interval_seconds(interval);
  if (!seconds) {
    std::cerr << "mdshm-sim: unknown interval '" << interval << "' in --klines " << spec << "\n";
    return false;
  }
  auto loaded = load_kline_csv(file, *seconds);
  if (auto* err = std::get_if<LoadError>(&loaded)) {
    std::cerr << "mdshm-sim: " << err->message << "\n";
    return false;
  }
  auto rows = std::move(std::get<std::vector<KlineRow>>(loaded));
  // Several files of one symbol (consecutive days) become one series.
  if (market.find(symbol)) {
    std::cerr << "mdshm-sim: --klines for " << symbol << " given twice; pass the files in one flag, comma-separated\n";
    return false;
  }
  market.add(symbol, *seconds, std::move(rows));
  return true;
}

// FILE[,FILE...]: consecutive files (days) of one symbol, each loaded by `load`, joined into one
// series; `in_order(last of one, first of the next)` must hold across each boundary. nullopt (the
// error printed) on any failure.
template <class Row, class Load, class InOrder>
std::optional<std::vector<Row>> load_consecutive(const std::string& files, Load load, InOrder in_order,
                                                 const std::string& disorder) {
  std::vector<Row> all;
  for (std::size_t pos = 0; pos <= files.size();) {
    const auto comma = std::min(files.find(',', pos), files.size());
    auto loaded = load(files.substr(pos, comma - pos));
    if (auto* err = std::get_if<LoadError>(&loaded)) {
      std::cerr << "mdshm-sim: " << err->message << "\n";
      return std::nullopt;
    }
    auto& part = std::get<std::vector<Row>>(loaded);
    if (!all.empty() && !part.empty() && !in_order(all.back(), part.front())) {
      std::cerr << "mdshm-sim: " << disorder << "\n";
      return std::nullopt;
    }
    all.insert(all.end(), part.begin(), part.end());
    pos = comma + 1;
  }
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "mdshm-sim: a Binance spot exchange simulator on 127.0.0.1, over TLS with a certificate made for the "
      "run.\nWebSocket combined stream at /stream?streams=a/b/c and REST /api/v3/{klines,aggTrades,time,ping} "
      "on one port.\nWhen ready it prints 'listening ws=wss://127.0.0.1:PORT rest=https://127.0.0.1:PORT' "
      "(preceded by 'control=127.0.0.1:PORT' when a control port is open)."};
  std::vector<std::string> replay, klines, derive, trades;
  ServerOptions o;
  std::int64_t start = -1;
  app.add_option("--replay", replay,
                 "Frame capture files to replay: an optional URL header line, then '<receive-time>: <frame>' "
                 "lines (the format of mdshmd --record); frames go to connections subscribed to their stream");
  app.add_option("--klines", klines,
                 "SYMBOL:INTERVAL:FILE[,FILE...] kline CSVs in the data.binance.vision layout (12 columns, no "
                 "header, ms or µs timestamps), consecutive files of one symbol comma-separated. Served over "
                 "REST klines (any interval) and aggTrades (generated to match each kline's OHLCV, volume, "
                 "taker-buy volume and trade count), and streamed as <sym>@aggTrade and closed <sym>@kline_<i>");
  app.add_option("--trades", trades,
                 "SYMBOL:FILE[,FILE...] real aggTrades CSVs as data.binance.vision publishes them (8 columns, no "
                 "header, ms or µs timestamps), consecutive files comma-separated. Streamed as <sym>@aggTrade and "
                 "closed <sym>@kline_<i> computed from them, and served over REST aggTrades and klines (any "
                 "interval). The aggTrade frames of --replay captures are served over REST the same way");
  app.add_option("--derive", derive,
                 "SYMBOL:FROM:FACTOR a series derived from FROM's klines, prices times FACTOR and volumes "
                 "divided by it (e.g. BTCUSDT:ETHUSDT:12.5 for a demo BTC series)");
  app.add_option("--speed", o.speed,
                 "Replay clock rate relative to the data's times; 0 = as fast as the client reads (the clock "
                 "is then the newest event sent)")
      ->default_val(1.0)->check(CLI::NonNegativeNumber);
  app.add_option("--start", start, "Replay clock at startup, Unix ms (default: the first event in the data)");
  app.add_option("--port", o.port, "TLS port for WebSocket and REST; 0 = pick one and print it")->default_val(0);
  app.add_option("--control", o.control_port,
                 "Open a plain-text control port on 127.0.0.1 (0 = pick, printed as 'control=127.0.0.1:PORT'); "
                 "one command per line, see --help-faults");
  app.add_option("--faults", o.faults_file, "Fault script: '<seconds-after-start> <command>' per line ('#' comments)");
  app.add_option("--ca-out", o.ca_out, "Write the generated CA certificate (PEM) here, for the client's ca_file");
  app.add_option("--request-log", o.request_log,
                 "Append one line per REST request: '<replay-clock-ms> <status> <method> <target-with-params>'");
  app.add_option("--send-log", o.send_log,
                 "Append one line per aggTrade frame sent: '<aggTrade id> <CLOCK_REALTIME ns>', stamped as the "
                 "frame is handed to TLS (for latency benchmarks)");
  app.add_option("--ping-interval", o.ping_interval_s, "Seconds between server pings (Binance: 20)")->default_val(20.0);
  app.add_option("--pong-timeout", o.pong_timeout_s, "Drop a connection whose ping is unanswered this long (Binance: 60)")
      ->default_val(60.0);
  app.add_option("--max-conn-lifetime", o.max_conn_lifetime_s,
                 "Close every WebSocket after this many seconds (Binance: 24 h = 86400)")
      ->default_val(86400.0);
  app.add_option("--weight-limit", o.weight_limit, "REST weight per minute before 429 (Binance: 6000)")->default_val(6000);
  bool help_faults = false;
  app.add_flag("--help-faults", help_faults, "List the fault commands (control port and --faults script) and exit");
  app.set_version_flag("--version", mdshm::build::version_line("mdshm-sim"));
  CLI11_PARSE(app, argc, argv);
  if (help_faults) {
    std::cout << "drop | stall SECONDS | blackout SECONDS | rest_down SECONDS | shutdown | malformed N | truncate N | duplicate N | reorder N | hole N |\n"
                 "rest_error STATUS N [RETRY_AFTER_S] | rest_slow MS | rest_partial N | clock | stats\n"
                 "malformed/truncate insert broken copies before the real frames; hole skips aggTrade frames on the\n"
                 "stream (REST still serves them); rest_error 429/418 sends Retry-After (default 1 s);\n"
                 "blackout drops every WebSocket and closes every new connection (WebSocket and REST)\n"
                 "at once for SECONDS while the replay clock runs on: a network outage; rest_down does\n"
                 "that to REST only, the stream stays up.\n";
    return 0;
  }

  Market market;
  for (const auto& spec : klines) {
    // FILE may be a comma-separated list of consecutive days.
    const auto a = spec.find(':'), b = a == std::string::npos ? a : spec.find(':', a + 1);
    if (b == std::string::npos || spec.find(',', b) == std::string::npos) {
      if (!add_klines(market, spec)) return 2;
      continue;
    }
    const auto seconds = mdshm::interval_seconds(spec.substr(a + 1, b - a - 1));
    if (!seconds) {
      std::cerr << "mdshm-sim: unknown interval in --klines " << spec << "\n";
      return 2;
    }
    auto all = load_consecutive<KlineRow>(
        spec.substr(b + 1), [&](const std::string& f) { return load_kline_csv(f, *seconds); },
        [](const KlineRow& last, const KlineRow& next) { return next.open_ms > last.open_ms; },
        "files of --klines " + spec + " are not in time order");
    if (!all) return 2;
    market.add(spec.substr(0, a), *seconds, std::move(*all));
  }
  for (const auto& spec : derive) {
    const auto parts = split_colon(spec);
    Series* from = parts.size() == 3 ? market.find(parts[1]) : nullptr;
    double factor = 0;
    try {
      factor = parts.size() == 3 ? std::stod(parts[2]) : 0;
    } catch (const std::exception&) {
    }
    if (!from || !(factor > 0)) {
      std::cerr << "mdshm-sim: --derive wants SYMBOL:FROM:FACTOR with FROM given by --klines, got '" << spec << "'\n";
      return 2;
    }
    // BTC-like steps: price to the cent, quantity to 1e-5.
    market.add(parts[0], from->interval_s(), derive_rows(from->rows(), factor, 1'000'000, 1'000));
  }
  std::optional<std::int64_t> first_trade_ms;  // real trades start the clock, not their minute
  auto add_real = [&](const std::string& symbol, std::vector<GenTrade> real, bool streamed, const std::string& from) {
    if (market.find(symbol)) {
      std::cerr << "mdshm-sim: " << symbol << " has real trades from " << from
                << " and trades from another flag: one source per symbol, real and generated trades do not mix\n";
      return false;
    }
    if (!real.empty() && (!first_trade_ms || real.front().time_ms < *first_trade_ms)) first_trade_ms = real.front().time_ms;
    market.add_trades(symbol, std::move(real), streamed);
    return true;
  };
  for (const auto& spec : trades) {
    const auto colon = spec.find(':');
    if (colon == std::string::npos || colon == 0) {
      std::cerr << "mdshm-sim: --trades wants SYMBOL:FILE[,FILE...], got '" << spec << "'\n";
      return 2;
    }
    auto all = load_consecutive<GenTrade>(
        spec.substr(colon + 1), [](const std::string& f) { return load_agg_trades_csv(f); },
        [](const GenTrade& last, const GenTrade& next) { return next.id > last.id; },
        "files of --trades " + spec + " are not in id order");
    if (!all || !add_real(spec.substr(0, colon), std::move(*all), true, "--trades")) return 2;
  }
  auto loaded = load_replay(replay);
  if (auto* err = std::get_if<LoadError>(&loaded)) {
    std::cerr << "mdshm-sim: " << err->message << "\n";
    return 2;
  }
  const auto& frames = std::get<std::vector<ReplayFrame>>(loaded);
  // The capture's aggTrade frames are relayed as recorded; REST answers from the same trades.
  auto captured = capture_trades(frames);
  if (auto* err = std::get_if<LoadError>(&captured)) {
    std::cerr << "mdshm-sim: " << err->message << "\n";
    return 2;
  }
  for (auto& [symbol, real] : std::get<0>(captured))
    if (!add_real(symbol, std::move(real), false, "--replay")) return 2;
  // Recorded klines of a generated symbol would contradict its generated trades.
  for (const auto& f : frames) {
    const auto at = f.stream.find("@kline_");
    if (at == std::string::npos) continue;
    if (const Series* s = market.find(f.stream.substr(0, at)); s && !s->real()) {
      std::cerr << "mdshm-sim: " << f.where << ": a recorded kline of " << s->symbol()
                << ", whose trades --klines/--derive generate: real and generated data do not mix\n";
      return 2;
    }
  }
  for (auto& s : market.all())
    if (s->rows_adjusted())
      std::cerr << "mdshm-sim: " << s->symbol() << ": " << s->rows_adjusted()
                << " klines got a trade count different from the CSV (volume too small to split)\n";

  if (start >= 0) {
    o.start_ms = start;
  } else {
    std::optional<std::int64_t> first;
    if (!frames.empty()) first = frames.front().time_ms;
    for (auto& s : market.all())
      if (!s->real() && !s->rows().empty() && (!first || s->data_begin_ms() < *first)) first = s->data_begin_ms();
    if (first_trade_ms && (!first || *first_trade_ms < *first)) first = first_trade_ms;
    o.start_ms = first.value_or(0);
  }
  return run_server(o, market, frames);
}
