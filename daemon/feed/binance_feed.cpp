// The Binance source's live half: frames from the WebSocket to the aggregators, connection events,
// the exchange clock, tick() and start/stop. See binance_feed.hpp for the whole picture.
#include "feed/binance_feed_impl.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "net/tls_options.hpp"

namespace mdshm::feed {

using namespace detail;

std::vector<std::string> stream_names(const std::vector<std::string>& symbols,
                                      const std::vector<std::pair<std::string, std::uint32_t>>& symbol_intervals) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  std::vector<std::string> out;
  auto add = [&](std::string s) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  };
  for (const auto& s : symbols) add(lower(s) + "@aggTrade");
  for (const auto& [sym, iv] : symbol_intervals) add(lower(sym) + "@kline_" + std::string(interval_name(iv)));
  return out;
}

BinanceFeed::Impl::Impl(asio::io_context& io, FeedOptions o, std::vector<aggregate::SymbolAggregator>& a,
                        std::vector<FeedSeries> s)
    : ioc(io), opt(std::move(o)), aggs(a), series(std::move(s)) {
  net::RestOptions ro;
  ro.base_url = opt.rest_url;
  ro.tls.ca_file = opt.ca_file;
  ro.weight.budget = opt.rest_weight_budget;
  ro.ban_backoff = opt.rest_ban_backoff;
  rest = std::make_unique<net::RestClient>(ioc, ro);
  rest->set_abort(opt.abort);
  for (std::size_t i = 0; i < aggs.size(); ++i) {
    SymbolState st;
    st.name = aggs[i].symbol();
    syms.push_back(std::move(st));
  }
  for (std::size_t i = 0; i < syms.size(); ++i) {
    syms[i].port = make_symbol_port(*this, i);
    syms[i].gap = std::make_unique<GapMachine>(*syms[i].port, GapOptions{opt.max_trade_repair, opt.max_repair_hold});
  }
  for (std::size_t i = 0; i < series.size(); ++i) syms[series[i].symbol].series.push_back(i);
  for (auto& st : syms) {
    std::uint32_t smallest = 0, best = 0;
    for (auto i : st.series) {
      const auto iv = series[i].interval_s;
      if (!smallest || iv < smallest) smallest = iv;
      if (iv <= opt.catch_up_max_interval_s && iv > best) best = iv;
    }
    st.catch_up_interval_s = best ? best : smallest;
  }
}

void BinanceFeed::Impl::for_series_of(std::size_t sym, Stat s, std::uint64_t n) {
  for (auto i : syms[sym].series) series[i].sink->writer().add_stat(s, n);
}

void BinanceFeed::Impl::for_all_series(Stat s, std::uint64_t n) {
  for (auto& fs : series) fs.sink->writer().add_stat(s, n);
}

std::optional<std::size_t> BinanceFeed::Impl::find_symbol(const parse::Symbol& s) const {
  for (std::size_t i = 0; i < syms.size(); ++i)
    if (s.equals_ignore_case(syms[i].name)) return i;
  return std::nullopt;
}

std::optional<std::int64_t> BinanceFeed::Impl::exchange_now() { return clock.now_ms(net::realtime_ns()); }

void BinanceFeed::Impl::add_clock_sample(const net::RestResponse& r) {
  std::int64_t server_ms = 0;
  if (!r.ok() || !parser.parse_server_time(r.body, server_ms).ok()) return;
  clock.add_sample(r.sent_wall_ns / 2 + r.recv_wall_ns / 2, server_ms);
  rest->set_clock_offset_ns(clock.offset_ns());
  ++clock_samples;
}

void BinanceFeed::Impl::note_trade(SymbolState& st, const Trade& t) {
  st.last_trade_ms = std::max(st.last_trade_ms, t.time_ms);
  clock.saw_exchange_time(t.time_ms);
}

void BinanceFeed::Impl::apply_trade(std::size_t sym, const Trade& t) {
  auto& agg = aggs[sym];
  switch (agg.on_trade(t)) {
    case aggregate::TradeOutcome::applied: note_trade(syms[sym], t); break;
    case aggregate::TradeOutcome::rejected:
      bad_trades.warn("{}: trade {} rejected (price {}, qty {}, time {})", agg.symbol(), t.id, t.price, t.qty, t.time_ms);
      break;
    case aggregate::TradeOutcome::duplicate: dup_trades.warn("{}: duplicate aggTrade {} dropped", agg.symbol(), t.id); break;
  }
}

void BinanceFeed::Impl::apply_kline(std::size_t sym, const Kline& k) {
  auto& st = syms[sym];
  for (auto& [iv, open] : st.last_kline)
    if (iv == k.interval_s) {
      if (k.bar.open_time_ms <= open) return;  // seen (two connections overlap during a rotation)
      open = k.bar.open_time_ms;
      aggs[sym].on_exchange_kline(k);
      return;
    }
  st.last_kline.emplace_back(k.interval_s, k.bar.open_time_ms);
  aggs[sym].on_exchange_kline(k);
}

void BinanceFeed::Impl::hold(std::size_t sym, Held h) {
  auto& st = syms[sym];
  if (st.held.size() >= opt.max_held_events) {
    spdlog::error("{}: {} live events held while repairing: giving up the repair", st.name, st.held.size());
    st.gap->on_overflow();
    return apply_live(sym, std::move(h));
  }
  if (st.held.empty()) st.held_since = std::chrono::steady_clock::now();
  st.held.push_back(std::move(h));
}

void BinanceFeed::Impl::apply_live(std::size_t sym, Held h) {
  if (h.is_kline) apply_kline(sym, h.kline);
  else apply_trade(sym, h.trade);
}

void BinanceFeed::Impl::on_trade_event(std::size_t sym, const Trade& t) {
  auto& st = syms[sym];
  if (st.gap->repairing()) return hold(sym, Held{false, t, {}});
  const auto last = aggs[sym].last_trade_id();
  if (st.overlap && last >= 0) {
    if (t.id <= last) {
      ++st.overlap_trades;
      return;
    }
    if (frame_conn == newest_conn) {
      spdlog::info("{}: rotation overlap over: {} trade(s) came on both connections, kept once", st.name,
                   st.overlap_trades);
      st.overlap = false;
      st.overlap_trades = 0;
    }
  }
  if (last >= 0 && t.id > last + 1) {
    open_gap(sym, "aggTrade id hole: " + std::to_string(last + 1) + ".." + std::to_string(t.id - 1));
    return hold(sym, Held{false, t, {}});
  }
  apply_trade(sym, t);
}

void BinanceFeed::Impl::on_kline_event(std::size_t sym, const Kline& k) {
  if (!k.closed) return;  // only closed klines reconcile
  if (syms[sym].gap->repairing()) return hold(sym, Held{true, {}, k});
  apply_kline(sym, k);
}

void BinanceFeed::Impl::handle_frame(std::string_view text, std::int64_t recv_ns, parse::Padding padding) {
  recorder.write(recv_ns, text);
  ++frames_since_tick;
  const auto r = parser.parse(text, ev, recv_ns, padding);
  if (!r.ok()) {
    ++unattributed_frames;
    if (r.status == parse::Status::ignored) return;
    if (const auto stat = parse::stat_for(r.status)) {
      if (*stat == Stat::unknown_events) ++unknown_events;
      else if (*stat == Stat::rejected_values) ++rejected;
      else ++parse_errors;
    }
    bad_frames.warn("bad frame: {} ({}): {:.200}", parse::to_string(r.status), r.detail, text);
    return;
  }
  if (ev.event_time_ms > stream_event_ms) {
    stream_event_ms = ev.event_time_ms;
    stream_event_recv_ns = recv_ns;
  }
  if (ev.kind == parse::EventKind::server_shutdown) {
    ++unattributed_frames;
    spdlog::info("serverShutdown received: rotating the connection");
    if (ws) ws->request_rotation("serverShutdown");
    return;
  }
  const auto sym = find_symbol(ev.symbol);
  if (!sym) {
    ++unattributed_frames;
    ++unknown_events;
    bad_frames.warn("frame for a symbol not configured: {}", ev.symbol.view());
    return;
  }
  ++syms[*sym].frames;
  syms[*sym].seen_since_connect = true;
  switch (ev.kind) {
    case parse::EventKind::agg_trade: on_trade_event(*sym, ev.trade); break;
    case parse::EventKind::kline: on_kline_event(*sym, ev.kline); break;
    default: break;  // legacy `trade` stream: not subscribed, not an aggTrade id
  }
}

void BinanceFeed::Impl::on_ws_event(const net::WsEvent& e) {
  switch (e.kind) {
    case net::WsEvent::Kind::connected:
      spdlog::info("stream connected (connection {}{})", e.conn_id, e.rotation ? ", rotation" : "");
      if (!e.rotation && ever_connected) for_all_series(Stat::reconnects, 1);
      connected = true;
      ever_connected = true;
      newest_conn = e.conn_id;
      for (auto& st : syms) st.overlap = e.rotation;
      if (!e.rotation)
        for (std::size_t s = 0; s < syms.size(); ++s) {
          syms[s].seen_since_connect = false;
          syms[s].gap->on_connected();
        }
      break;
    case net::WsEvent::Kind::rotated:
      spdlog::info("stream rotated: connection {} took over from {}", e.conn_id, e.previous_conn_id);
      break;
    case net::WsEvent::Kind::stalled: spdlog::warn("stream stalled (connection {}): {}", e.conn_id, e.reason); break;
    case net::WsEvent::Kind::disconnected:
      spdlog::warn("stream disconnected (connection {}): {}{}", e.conn_id, e.reason, e.feed_lost ? "" : " (covered)");
      if (e.feed_lost)
        for (auto& st : syms) st.overlap = false;
      if (e.feed_lost) {
        connected = false;
        for (std::size_t s = 0; s < syms.size(); ++s) open_gap(s, "connection lost");
      }
      break;
  }
}

void BinanceFeed::Impl::schedule_clock_sync() {
  // The first few samples come fast so the clock's rate is known within seconds.
  const auto d = clock_samples < 4 ? std::chrono::milliseconds(1000) : opt.clock_sync_interval;
  clock_timer->expires_after(d);
  clock_timer->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    rest->get("/api/v3/time", 1, [this](net::RestResponse r) {
      if (r.error == net::RestError::stopped) return;
      if (r.ok()) add_clock_sample(r);
      else rest_log.warn("clock sync failed: {} ({})", net::to_string(r.error), r.message);
      schedule_clock_sync();
    });
  });
}

namespace {
constexpr auto kResumeGap = std::chrono::milliseconds(250);
}  // namespace

void BinanceFeed::Impl::tick() {
  const auto steady = std::chrono::steady_clock::now();
  for (std::size_t s = 0; s < syms.size(); ++s) {
    auto& st = syms[s];
    st.gap->on_tick();
    if (!st.gap->repairing() && !st.healing && !st.unhealed.empty() && steady >= st.next_heal && !rest->banned_until_ns())
      heal(s);
  }
  // tick() runs every ~20 ms; a much longer gap means this process was stopped or starved, and
  // what arrived meanwhile has not been read yet: no bar closes on the clock before it has.
  const bool resumed = last_tick != std::chrono::steady_clock::time_point{} && steady - last_tick > kResumeGap;
  last_tick = steady;
  const bool reading = std::exchange(frames_since_tick, 0) > 0;
  if (const auto now = exchange_now(); now && !resumed) {
    const auto grace = static_cast<std::int64_t>(static_cast<double>(opt.close_grace.count()) * clock.rate());
    std::int64_t upto = *now - grace;
    // A backlog (the daemon was paused, the link slowed down): frames arrive later than the grace,
    // so trades of bars the clock says are over may still wait in the socket. While frames are
    // being read (some came since the last tick) and the newest came late, close only what the
    // stream has shown (one connection delivers in event order). A stream that delivered nothing
    // since the last tick has nothing waiting: a quiet symbol's bars close on time.
    const auto arrived = stream_event_ms ? clock.at_ms(stream_event_recv_ns) : std::nullopt;
    if (reading && arrived && *arrived - stream_event_ms > grace) upto = std::min(upto, stream_event_ms);
    for (std::size_t s = 0; s < syms.size(); ++s)
      if (!syms[s].gap->repairing()) aggs[s].advance_to(upto);
  }
  for (auto& fs : series)
    if (auto* st = fs.sink->store()) {
      if (auto r = st->maybe_sync(steady); !r.ok()) rest_log.warn("{}: store sync: {}", fs.id, r.message);
    }
  flush_counters();
  recorder.flush();
}

void BinanceFeed::Impl::flush_counters() {
  for (auto& fs : series) fs.sink->flush_stats();
  for (std::size_t s = 0; s < syms.size(); ++s) {
    if (syms[s].frames) for_series_of(s, Stat::frames, syms[s].frames);
    syms[s].frames = 0;
  }
  if (unattributed_frames) for_all_series(Stat::frames, unattributed_frames);
  if (parse_errors) for_all_series(Stat::parse_errors, parse_errors);
  if (rejected) for_all_series(Stat::rejected_values, rejected);
  if (unknown_events) for_all_series(Stat::unknown_events, unknown_events);
  unattributed_frames = parse_errors = rejected = unknown_events = 0;
  const auto& rs = rest->stats();
  const auto offset_ms = static_cast<std::uint64_t>(clock.offset_ns() / 1'000'000);
  for (auto& fs : series) {
    fs.sink->writer().set_stat(Stat::exchange_offset_ms, offset_ms);
    fs.sink->writer().set_stat(Stat::rest_requests, rs.requests);
    if (rs.last_used_weight >= 0) fs.sink->writer().set_stat(Stat::rest_weight_used, static_cast<std::uint64_t>(rs.last_used_weight));
  }
}

// A re-attached segment whose bars run ahead of the exchange clock was written by another source,
// or by a replay that has started again from an earlier time (a simulator run twice). Its trade ids
// are ahead too: every live trade would be dropped as a duplicate while the series stops updating,
// and the writer cannot put earlier bars after later ones. So the daemon does not start on it.
std::string BinanceFeed::Impl::check_segments_behind(std::int64_t now_ms) {
  constexpr std::int64_t kSlackMs = 60'000;  // clock error and the bar in progress
  for (const auto& fs : series) {
    const auto newest = fs.sink->writer().newest();
    const std::int64_t len = std::int64_t{fs.interval_s} * 1000;
    if (newest && newest->open_time_ms > bar_open_ms(now_ms, fs.interval_s) + len + kSlackMs)
      return "series " + fs.id + ": the segment's newest bar opens at " + std::to_string(newest->open_time_ms) +
             " ms, after the exchange clock (" + std::to_string(now_ms) +
             " ms): it holds another source's or an earlier replay's bars; remove it (or use another instance)";
  }
  return {};
}

std::string BinanceFeed::Impl::start() {
  if (!rest->setup_error().empty()) return "REST: " + rest->setup_error();
  if (!opt.record_path.empty() && !recorder.open(opt.record_path))
    return "cannot open --record file " + opt.record_path + ": " + std::strerror(errno);
  for (int i = 0; i < 2; ++i) {
    auto r = rest->get_blocking("/api/v3/time", 1);
    if (!r.ok())
      return "GET " + opt.rest_url + "/api/v3/time: " + std::string(net::to_string(r.error)) + " (" + r.message + ")";
    add_clock_sample(r);
  }
  if (!clock.synced()) return "GET /api/v3/time: no serverTime in the response";
  spdlog::info("exchange clock: {} ms (offset {} ms)", *exchange_now(), clock.offset_ns() / 1'000'000);
  if (auto err = check_segments_behind(*exchange_now()); !err.empty()) return err;
  for (auto& st : syms) {
    st.gap->start_refill();
    st.gap->on_tick();
  }
  flush_counters();

  clock_timer = std::make_unique<asio::steady_timer>(ioc);
  schedule_clock_sync();
  if (!opt.connect_ws) {
    connected = true;
    return {};
  }
  net::WsFeedOptions wo;
  wo.url = opt.ws_url;
  wo.tls.ca_file = opt.ca_file;
  wo.stall_timeout = opt.stall_timeout;
  wo.max_lifetime = opt.ws_max_lifetime;
  std::vector<std::string> names;
  std::vector<std::pair<std::string, std::uint32_t>> ivs;
  for (auto& st : syms) names.push_back(st.name);
  for (auto& fs : series) ivs.emplace_back(syms[fs.symbol].name, fs.interval_s);
  wo.streams = stream_names(names, ivs);
  ws = std::make_unique<net::WsFeed>(
      ioc, wo,
      [this](const net::WsFrame& f) {
        frame_conn = f.conn_id;
        const bool padded = f.zero_padding >= parse::FrameParser::kPadding;
        handle_frame(f.text, f.recv_wall_ns, padded ? parse::Padding::zeroed : parse::Padding::none);
        // One frame is one batch: wake the readers of the series it touched (a load for the rest).
        for (auto& fs : series)
          if (fs.sink) fs.sink->writer().wake_readers();
      },
      [this](const net::WsEvent& e) { on_ws_event(e); });
  if (auto err = ws->start(); !err.empty()) return "WebSocket: " + err;
  return {};
}

void BinanceFeed::Impl::stop() {
  if (ws) ws->stop();
  if (clock_timer) clock_timer->cancel();
  for (auto& st : syms) st.port->cancel_timer();
  rest->stop();
  flush_counters();
  recorder.flush();
  for (auto& fs : series)
    if (auto* st = fs.sink->store()) {
      if (auto r = st->flush(); !r.ok()) spdlog::error("{}: store flush: {}", fs.id, r.message);
    }
}

BinanceFeed::BinanceFeed(asio::io_context& ioc, FeedOptions options, std::vector<aggregate::SymbolAggregator>& aggs,
                         std::vector<FeedSeries> series)
    : impl_(std::make_unique<Impl>(ioc, std::move(options), aggs, std::move(series))) {}
BinanceFeed::~BinanceFeed() = default;
std::string BinanceFeed::start() { return impl_->start(); }
void BinanceFeed::tick() { impl_->tick(); }
void BinanceFeed::stop() { impl_->stop(); }
void BinanceFeed::set_rest_weight_budget(int budget) { impl_->rest->set_weight_budget(budget); }
void BinanceFeed::handle_frame(std::string_view text, std::int64_t recv_wall_ns, parse::Padding padding) {
  impl_->handle_frame(text, recv_wall_ns, padding);
}
void BinanceFeed::set_exchange_time(std::int64_t local_ns, std::int64_t ms) { impl_->clock.add_sample(local_ns, ms); }
bool BinanceFeed::repairing(std::size_t symbol) const { return impl_->syms.at(symbol).gap->repairing(); }

}  // namespace mdshm::feed
