#include "metrics/exposition.hpp"

#include <charconv>
#include <cmath>
#include <set>

#include "model/market.hpp"
#include "mdshm/platform/proc.hpp"
#include "publish/publisher.hpp"

namespace mdshm::metrics {

namespace {

// One line per Stat, in kStatNames order: the HELP text operators read in Prometheus.
constexpr std::string_view kStatHelp[] = {
    "Bars closed",
    "Frames or messages received from the source",
    "Trades applied to this series",
    "Reconnects of the source",
    "Id holes, stalls and disconnects that touched this series",
    "Gaps repaired from REST",
    "Bars written from REST",
    "Malformed frames",
    "Impossible values rejected (never in a bar)",
    "Duplicate or older trade ids dropped",
    "Trades older than the bar in progress",
    "Closed exchange klines compared with the built bar",
    "Closed exchange klines that differed (exchange values won)",
    "Bars a gap touched that could not be repaired",
    "Bars loaded from the on-disk history",
    "Bars the history store lacked",
    "REST requests sent",
    "Binance REST weight used in the current minute (last X-MBX-USED-WEIGHT-1M)",
    "Unknown events received",
    "Event to publish latency samples",
    "Event to publish latency total, nanoseconds",
    "Largest event to publish latency seen, seconds",
    "Source clock minus local wall clock, milliseconds",
    "History store appends, syncs and re-opens that failed",
    "Closed bars the history store missed and will write when it recovers",
    "History store state: 0 none configured, 1 ok, 2 failing, 3 unavailable",
    "errno of the newest history store failure (0 none)",
    "Store records with a bad checksum found on open (the damaged file is kept aside)",
};
static_assert(std::size(kStatHelp) == std::size(kStatNames));

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
std::string number(std::uint64_t v) { return std::to_string(v); }

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

std::uint64_t stat_of(const SegmentHeader& h, Stat s) { return load_field(h.stats[static_cast<std::size_t>(s)]); }

class Exposition {
 public:
  // Each family is announced once, before its samples, as the format requires.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, const std::string& value) {
    out_ += name;
    out_ += '{';
    out_ += labels;
    out_ += "} ";
    out_ += value;
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

struct SeriesView {
  const SegmentHeader* h;
  std::string id;
  std::string labels;  // series="...",symbol="...",interval="..."
};

std::string interval_label(std::uint32_t s) {
  const auto n = interval_name(s);
  return n.empty() ? std::to_string(s) + "s" : std::string(n);
}

void render_stats(Exposition& x, const std::vector<SeriesView>& series) {
  for (std::size_t i = 0; i < std::size(kStatNames); ++i) {
    const auto s = static_cast<Stat>(i);
    // The histogram below carries latency_count and latency_sum_ns as its _count and _sum.
    if (s == Stat::latency_count || s == Stat::latency_sum_ns) continue;
    std::string name = "mdshm_" + std::string(kStatNames[i]);
    std::string_view type = "counter";
    if (s == Stat::rest_weight_used || s == Stat::store_pending_bars || s == Stat::store_state ||
        s == Stat::store_last_errno) {
      type = "gauge";
    } else if (s == Stat::exchange_offset_ms) {
      type = "gauge";  // signed: rendered below from the two's complement
    } else if (s == Stat::latency_max_ns) {
      name = "mdshm_event_publish_latency_max_seconds";
      type = "gauge";
    } else {
      name += "_total";
    }
    x.family(name, type, kStatHelp[i]);
    for (const auto& v : series) {
      const auto raw = stat_of(*v.h, s);
      if (s == Stat::latency_max_ns) x.sample(name, v.labels, number(seconds(raw)));
      else if (s == Stat::exchange_offset_ms) x.sample(name, v.labels, std::to_string(static_cast<std::int64_t>(raw)));
      else x.sample(name, v.labels, number(raw));
    }
  }
}

void render_ring(Exposition& x, const std::vector<SeriesView>& series, std::uint64_t now) {
  x.family("mdshm_series_head", "gauge", "Newest bar index + 1 (bars ever written to the ring)");
  for (const auto& v : series) x.sample("mdshm_series_head", v.labels, number(load_field(v.h->head)));
  x.family("mdshm_series_capacity_bars", "gauge", "Ring capacity in bars");
  for (const auto& v : series) x.sample("mdshm_series_capacity_bars", v.labels, number(load_field(v.h->capacity)));
  x.family("mdshm_series_bars_held", "gauge", "Bars currently readable in the ring");
  for (const auto& v : series)
    x.sample("mdshm_series_bars_held", v.labels, number(std::min(load_field(v.h->head), load_field(v.h->capacity))));
  x.family("mdshm_series_updates_total", "counter", "Publishes into the segment");
  for (const auto& v : series) x.sample("mdshm_series_updates_total", v.labels, number(load_field(v.h->updates)));
  x.family("mdshm_series_amends_total", "counter", "Closed bars rewritten (reconciliation)");
  for (const auto& v : series) x.sample("mdshm_series_amends_total", v.labels, number(load_field(v.h->amends)));
  x.family("mdshm_series_generation", "gauge", "Writer generation, bumped at every (re)attach");
  for (const auto& v : series) x.sample("mdshm_series_generation", v.labels, number(load_field(v.h->generation)));

  // A series never updated (or a heartbeat never written) has no age: the sample is left out
  // rather than reported as "since boot".
  auto age = [now](std::uint64_t then) { return then == 0 ? -1.0 : now > then ? seconds(now - then) : 0.0; };
  x.family("mdshm_series_last_update_age_seconds", "gauge", "Seconds since the writer last published");
  for (const auto& v : series)
    if (const double a = age(load_field(v.h->last_update_mono_ns)); a >= 0)
      x.sample("mdshm_series_last_update_age_seconds", v.labels, number(a));
  x.family("mdshm_series_heartbeat_age_seconds", "gauge", "Seconds since the writer's last heartbeat");
  for (const auto& v : series)
    if (const double a = age(load_field(v.h->heartbeat_mono_ns)); a >= 0)
      x.sample("mdshm_series_heartbeat_age_seconds", v.labels, number(a));
}

// Bucket b of the segment's log2 histogram holds 2^b <= ns < 2^(b+1), so its upper bound is
// le = 2^(b+1) ns. The writer clamps everything larger into the last bucket, whose bound is
// therefore only +Inf.
void render_latency(Exposition& x, const std::vector<SeriesView>& series) {
  constexpr std::string_view name = "mdshm_event_publish_latency_seconds";
  x.family(name, "histogram", "Latency from the event's arrival to its publication in shared memory");
  const std::string bucket = std::string(name) + "_bucket";
  for (const auto& v : series) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b + 1 < kLatencyBuckets; ++b) {
      cumulative += load_field(v.h->latency_hist[b]);
      const double le = std::ldexp(1.0, static_cast<int>(b) + 1) / 1e9;
      x.sample(bucket, v.labels + ",le=\"" + number(le) + "\"", number(cumulative));
    }
    cumulative += load_field(v.h->latency_hist[kLatencyBuckets - 1]);
    x.sample(bucket, v.labels + ",le=\"+Inf\"", number(cumulative));
    x.sample(std::string(name) + "_sum", v.labels, number(seconds(stat_of(*v.h, Stat::latency_sum_ns))));
    x.sample(std::string(name) + "_count", v.labels, number(cumulative));
  }
}

void render_consumers(Exposition& x, const std::vector<SeriesView>& series, const std::vector<ConsumerInfo>& consumers) {
  struct Row {
    std::string labels;
    const ConsumerInfo* c;
    const SegmentHeader* h;  // null: the consumer reads a series this instance does not publish
  };
  std::vector<Row> rows;
  std::set<std::string> seen;  // two registrations with equal labels would be a duplicate sample
  for (const auto& c : consumers) {
    std::string labels = "consumer=\"" + escape_label_value(c.name) + "\",pid=\"" + std::to_string(c.pid) +
                         "\",series=\"" + escape_label_value(c.series_id) + "\"";
    if (!seen.insert(labels).second) continue;
    const SegmentHeader* h = nullptr;
    for (const auto& v : series)
      if (v.id == c.series_id) h = v.h;
    rows.push_back({std::move(labels), &c, h});
  }
  x.family("mdshm_consumer_lag_bars", "gauge", "Bars published that the consumer has not read yet");
  for (const auto& r : rows) {
    if (!r.h) continue;
    const auto head = load_field(r.h->head);
    x.sample("mdshm_consumer_lag_bars", r.labels, number(head > r.c->cursor ? head - r.c->cursor : 0));
  }
  x.family("mdshm_consumer_reads_total", "counter", "Polls by the consumer");
  for (const auto& r : rows) x.sample("mdshm_consumer_reads_total", r.labels, number(r.c->reads));
  x.family("mdshm_consumer_lapped_total", "counter", "Times the writer overwrote bars before the consumer read them");
  for (const auto& r : rows) x.sample("mdshm_consumer_lapped_total", r.labels, number(r.c->lapped));
  x.family("mdshm_consumer_alive", "gauge", "1 while the consumer's process is alive");
  for (const auto& r : rows) x.sample("mdshm_consumer_alive", r.labels, number(std::uint64_t{r.c->alive ? 1u : 0u}));
}

}  // namespace

// Control bytes and bytes >= 0x80 become '?': names come from the consumer registry, which any
// group member may write, and the exposition must stay valid UTF-8 on one line.
std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else if (c < 0x20 || c >= 0x7f) out += '?';
    else out += ch;
  }
  return out;
}

std::string render_metrics(const std::vector<const SegmentHeader*>& segments,
                           const std::vector<ConsumerInfo>& consumers, std::uint64_t now_mono_ns) {
  if (now_mono_ns == 0) now_mono_ns = platform::mono_ns();
  std::vector<SeriesView> series;
  for (const SegmentHeader* h : segments) {
    if (!h) continue;
    SeriesView v{h, std::string(field_string(h->series_id, kSeriesIdLen)), {}};
    v.labels = "series=\"" + escape_label_value(v.id) + "\",symbol=\"" +
               escape_label_value(field_string(h->symbol, kSymbolLen)) + "\",interval=\"" +
               interval_label(load_field(h->interval_s)) + "\"";
    series.push_back(std::move(v));
  }
  Exposition x;
  render_stats(x, series);
  render_ring(x, series, now_mono_ns);
  render_latency(x, series);
  render_consumers(x, series, consumers);
  return x.take();
}

std::string render_metrics(publish::Publisher& pub, const OpenOptions& registry_location) {
  std::vector<const SegmentHeader*> headers;
  for (std::size_t i = 0; i < pub.size(); ++i) headers.push_back(pub.at(i).header());
  std::vector<ConsumerInfo> consumers;
  list_consumers(registry_location, consumers);  // no registry yet: no consumers to show
  return render_metrics(headers, consumers);
}

}  // namespace mdshm::metrics
