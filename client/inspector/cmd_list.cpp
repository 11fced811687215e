// mdshm list — one row per segment of the instance, incompatible files included with the reason.
#include <fmt/format.h>

#include "commands.hpp"
#include "json_writer.hpp"

namespace mdshm::inspect {

void json_segment_error(JsonWriter& j, const Segment& seg) {
  j.field("series", seg.series).field("file", seg.path).field("compatible", false);
  j.field("error", std::string(to_string(seg.error))).field("error_code", static_cast<int>(seg.error));
  j.key("layout_version");
  if (seg.layout_major) j.value(fmt::format("{}.{}", *seg.layout_major, *seg.layout_minor));
  else j.null();
}

namespace {

void json_row(JsonWriter& j, const Segment& seg, const Status& st) {
  j.field("series", seg.series).field("file", seg.path).field("compatible", true);
  j.field("symbol", st.symbol).field("interval", interval_name(st.interval_s)).field("interval_s", st.interval_s);
  j.field("bars", st.bars).field("capacity", st.capacity).field("head", st.head).field("updates", st.updates);
  j.field("writer_pid", st.writer_pid).field("writer_state", std::string(to_string(st.writer)));
  j.field("writer_alive", st.writer != WriterState::dead).field("generation", st.generation);
  j.key("update_age_s");
  if (st.updates > 0) j.value(st.update_age_s);
  else j.null();
  j.field("heartbeat_age_s", st.heartbeat_age_s);
  j.field("layout_version", fmt::format("{}.{}", st.layout_major, st.layout_minor));
}

}  // namespace

int run_list(const Options& o) {
  auto segs = scan(o.open);
  const auto others = other_instances(o.open);
  if (o.json) {
    JsonWriter j;
    j.begin_object().field("instance", o.open.instance).field("shm_dir", o.open.shm_dir).key("segments").begin_array();
    for (auto& seg : segs) {
      j.begin_object();
      if (seg.handle) json_row(j, seg, status_of(*seg.handle));
      else json_segment_error(j, seg);
      j.end_object();
    }
    j.end_array().key("other_instances").begin_array();
    for (const auto& i : others) j.value(i);
    j.end_array().end_object();
    fmt::print("{}\n", j.str());
    return 0;
  }
  if (segs.empty()) {
    fmt::print("no segments of instance '{}' in {}\n", o.open.instance, o.open.shm_dir);
    if (!others.empty())
      fmt::print("other instances there: {} (mdshm --instance NAME list)\n", fmt::join(others, ", "));
    return 0;
  }
  fmt::print("{:<12} {:<9} {:>4} {:>17} {:>8} {:<7} {:>4} {:>8} {:>8} {:>6}  {}\n", "SERIES", "SYMBOL", "INT",
             "BARS/CAPACITY", "PID", "WRITER", "GEN", "UPDATED", "HBEAT", "LAYOUT", "COMPATIBLE");
  for (auto& seg : segs) {
    if (!seg.handle) {
      const auto ver = seg.layout_major ? fmt::format("{}.{}", *seg.layout_major, *seg.layout_minor) : "?";
      fmt::print("{:<12} {:<9} {:>4} {:>17} {:>8} {:<7} {:>4} {:>8} {:>8} {:>6}  no: {}\n", seg.series, "-", "-", "-",
                 "-", "-", "-", "-", "-", ver, seg.error_text);
      continue;
    }
    const Status st = status_of(*seg.handle);
    fmt::print("{:<12} {:<9} {:>4} {:>17} {:>8} {:<7} {:>4} {:>8} {:>8} {:>6}  yes\n", seg.series, st.symbol,
               interval_name(st.interval_s), fmt::format("{}/{}", st.bars, st.capacity), st.writer_pid,
               to_string(st.writer), st.generation, st.updates > 0 ? age_text(st.update_age_s) : "never",
               age_text(st.heartbeat_age_s), fmt::format("{}.{}", st.layout_major, st.layout_minor));
  }
  return 0;
}

}  // namespace mdshm::inspect
