// mdshm show SERIES — the header, every statistic, the latency histogram summary, the consumers.
#include <fmt/format.h>

#include "commands.hpp"
#include "json_writer.hpp"

namespace mdshm::inspect {

namespace {

std::string_view arch_name(std::uint32_t a) {
  switch (static_cast<Arch>(a)) {
    case Arch::x86_64: return "x86_64";
    case Arch::aarch64: return "aarch64";
    default: return "unknown";
  }
}

std::string latency_text(std::optional<std::uint64_t> ns) {
  return ns ? fmt::format("<= {:.1f} us", static_cast<double>(*ns) / 1000.0) : "-";
}

// Consumer names are whatever bytes a record's owner wrote: only printable_name() reaches the
// terminal or the JSON.
std::string_view alive_text(Liveness l) {
  switch (l) {
    case Liveness::alive: return "yes";
    case Liveness::unknown: return "?";
    case Liveness::dead: return "no";
    case Liveness::forged: return "forged";
  }
  return "?";
}

void print_text(const Segment& seg, Series& s, const Status& st, const std::vector<ConsumerRow>& consumers,
                Errc registry, const ConsumerListing& listing) {
  const SegmentHeader& h = s.header();
  fmt::print("series       {} ({}, {})\n", seg.series, st.symbol, interval_name(st.interval_s));
  fmt::print("file         {}\n", seg.path);
  fmt::print("instance     {}\n", s.instance());
  fmt::print("layout       {}.{}  hash {:#018x}  arch {}\n", st.layout_major, st.layout_minor, load_field(h.layout_hash),
             arch_name(load_field(h.arch)));
  fmt::print("created      {}\n", iso_time_ns(load_field(h.created_wall_ns)));
  fmt::print("ring         {} of {} bars held, head {}, updates {}, amends {}\n", st.bars, st.capacity, st.head,
             st.updates, st.amends);
  fmt::print("writer       pid {} {}, generation {}, started {}\n", st.writer_pid, to_string(st.writer), st.generation,
             iso_time_ns(load_field(h.writer_start_wall_ns)));
  fmt::print("heartbeat    {} ago\n", age_text(st.heartbeat_age_s));
  if (st.updates > 0)
    fmt::print("last update  {} ago ({})\n", age_text(st.update_age_s), iso_time_ns(load_field(h.last_update_wall_ns)));
  else
    fmt::print("last update  never\n");
  if (st.has_latest) {
    const Bar& b = st.latest;
    fmt::print("newest bar   #{} {} O {} H {} L {} C {} V {} trades {} [{}]\n", st.latest_index,
               iso_time_ms(b.open_time_ms), b.open, b.high, b.low, b.close, b.volume, b.trade_count,
               flag_names(b.flags));
  }
  fmt::print("statistics\n");
  for (std::size_t i = 0; i < std::size(kStatNames); ++i) {
    const auto id = static_cast<Stat>(i);
    if (stat_is_signed(id)) fmt::print("  {:<20} {}\n", kStatNames[i], static_cast<std::int64_t>(s.stat(id)));
    else fmt::print("  {:<20} {}\n", kStatNames[i], s.stat(id));
  }
  const auto samples = s.stat(Stat::latency_count);
  fmt::print("latency      {} samples, p50 {}, p99 {}, max {:.1f} us\n", samples,
             latency_text(latency_percentile_ns(h, 0.50)), latency_text(latency_percentile_ns(h, 0.99)),
             static_cast<double>(s.stat(Stat::latency_max_ns)) / 1000.0);
  if (registry != Errc::ok) {
    fmt::print("consumers    registry unavailable: {}\n", to_string(registry));
    return;
  }
  fmt::print("consumers    {}", consumers.size());
  if (listing.invalid) fmt::print(" ({} invalid entries in the registry ignored)", listing.invalid);
  if (!listing.complete) fmt::print(" (registry holds more than {} entries: not all looked at)", kMaxConsumerFiles);
  fmt::print("\n");
  if (consumers.empty()) return;
  fmt::print("  {:<24} {:>8} {:>6} {:<6} {:>10} {:>8} {:>10} {:>8} {:<7} {}\n", "NAME", "PID", "UID", "ALIVE", "CURSOR",
             "LAG", "READS", "LAPPED", "WAITING", "LAST READ");
  for (const auto& c : consumers)
    fmt::print("  {:<24} {:>8} {:>6} {:<6} {:>10} {:>8} {:>10} {:>8} {:<7} {}\n", printable_name(c.info.name),
               c.info.pid, c.info.owner, alive_text(c.info.liveness), c.info.cursor, c.lag, c.info.reads,
               c.info.lapped, c.info.waiting ? "yes" : "no",
               c.info.last_read_wall_ns ? iso_time_ns(c.info.last_read_wall_ns) : std::string("never"));
}

void print_json(const Segment& seg, Series& s, const Status& st, const std::vector<ConsumerRow>& consumers,
                Errc registry, const ConsumerListing& listing) {
  const SegmentHeader& h = s.header();
  JsonWriter j;
  j.begin_object().field("series", seg.series).field("file", seg.path).field("compatible", true);
  j.field("instance", std::string(s.instance())).field("symbol", st.symbol);
  j.field("interval", interval_name(st.interval_s)).field("interval_s", st.interval_s);
  j.field("layout_version", fmt::format("{}.{}", st.layout_major, st.layout_minor));
  j.field("layout_hash", fmt::format("{:#018x}", load_field(h.layout_hash)));
  j.field("arch", arch_name(load_field(h.arch))).field("created_wall_ns", load_field(h.created_wall_ns));
  j.field("capacity", st.capacity).field("bars", st.bars).field("head", st.head).field("updates", st.updates);
  j.field("amends", st.amends).field("generation", st.generation);
  j.key("writer").begin_object().field("pid", st.writer_pid).field("state", std::string(to_string(st.writer)));
  j.field("alive", st.writer != WriterState::dead).field("start_wall_ns", load_field(h.writer_start_wall_ns));
  j.field("start_ticks", load_field(h.writer_start_ticks)).end_object();
  j.field("heartbeat_age_s", st.heartbeat_age_s).key("update_age_s");
  if (st.updates > 0) j.value(st.update_age_s);
  else j.null();
  j.field("last_update_wall_ns", load_field(h.last_update_wall_ns)).key("newest_bar");
  if (st.has_latest) {
    j.begin_object();
    json_bar(j, st.latest, st.latest_index);
    j.end_object();
  } else {
    j.null();
  }
  j.key("stats").begin_object();
  for (std::size_t i = 0; i < std::size(kStatNames); ++i) {
    const auto id = static_cast<Stat>(i);
    if (stat_is_signed(id)) j.field(kStatNames[i], static_cast<std::int64_t>(s.stat(id)));
    else j.field(kStatNames[i], s.stat(id));
  }
  j.end_object();
  j.key("latency").begin_object().field("samples", s.stat(Stat::latency_count));
  for (auto [name, q] : {std::pair{"p50_ns", 0.50}, std::pair{"p99_ns", 0.99}}) {
    j.key(name);
    if (auto v = latency_percentile_ns(h, q)) j.value(*v);
    else j.null();
  }
  j.field("max_ns", s.stat(Stat::latency_max_ns)).key("buckets").begin_array();
  for (std::size_t b = 0; b < kLatencyBuckets; ++b) j.value(load_field(h.latency_hist[b]));
  j.end_array().end_object();
  j.field("registry", registry == Errc::ok ? std::string("ok") : std::string(to_string(registry)));
  j.field("registry_invalid_entries", listing.invalid).field("registry_complete", listing.complete);
  j.key("consumers").begin_array();
  for (const auto& c : consumers) {
    j.begin_object().field("name", printable_name(c.info.name)).field("pid", static_cast<std::int64_t>(c.info.pid));
    j.field("uid", static_cast<std::int64_t>(c.info.owner)).field("liveness", std::string(to_string(c.info.liveness)));
    j.field("alive", c.info.alive).field("cursor", c.info.cursor).field("lag", c.lag).field("reads", c.info.reads);
    j.field("lapped", c.info.lapped).field("waiting", c.info.waiting);
    j.field("last_read_wall_ns", c.info.last_read_wall_ns).end_object();
  }
  j.end_array().end_object();
  fmt::print("{}\n", j.str());
}

}  // namespace

int run_show(const Options& o, const std::string& series) {
  Segment seg = open_segment(o.open, series);
  if (!seg.handle) return report_unopened(o, seg);
  const Status st = status_of(*seg.handle);
  Errc registry = Errc::ok;
  ConsumerListing listing;
  const auto consumers = consumers_of(o.open, seg.series, st.head, &registry, &listing);
  if (o.json) print_json(seg, *seg.handle, st, consumers, registry, listing);
  else print_text(seg, *seg.handle, st, consumers, registry, listing);
  return 0;
}

}  // namespace mdshm::inspect
