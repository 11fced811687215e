// mdshm check — for monitoring: exit 0 healthy, 1 stale, 2 writer dead / segment missing or
// incompatible; one line per problem. The rule itself is judge() in inspect.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "commands.hpp"
#include "json_writer.hpp"

namespace mdshm::inspect {

int run_check(const Options& o, double max_age_s, const std::vector<std::string>& wanted) {
  // Which series: those named on the command line; otherwise every segment file of the instance
  // plus every series the writer registered (so a deleted segment is reported missing).
  std::set<std::string> names(wanted.begin(), wanted.end());
  if (names.empty()) {
    for (auto& s : registered_series(o.open)) names.insert(s);
    for (auto& seg : scan(o.open)) names.insert(seg.series);
  }
  std::vector<Problem> problems;
  if (names.empty())
    problems.push_back({Health::failed, "-", fmt::format("no segments of instance '{}' in {}", o.open.instance,
                                                          o.open.shm_dir)});
  const std::int64_t now = now_ms();
  for (const auto& name : names) {
    Segment seg = open_segment(o.open, name);
    if (seg.handle) {
      const Status st = status_of(*seg.handle);
      judge(seg, &st, max_age_s, now, problems);
    } else {
      judge(seg, nullptr, max_age_s, now, problems);
    }
  }
  const Health h = worst(problems);
  if (o.json) {
    JsonWriter j;
    j.begin_object().field("instance", o.open.instance).field("status", std::string(to_string(h)));
    j.field("exit_code", static_cast<int>(h)).field("max_age_s", max_age_s).key("series").begin_array();
    for (const auto& n : names) j.value(n);
    j.end_array().key("problems").begin_array();
    for (const auto& p : problems)
      j.begin_object().field("series", p.series).field("severity", std::string(to_string(p.severity)))
          .field("reason", p.reason).end_object();
    j.end_array().end_object();
    fmt::print("{}\n", j.str());
  } else if (problems.empty()) {
    fmt::print("OK instance {}: {} series healthy\n", o.open.instance, names.size());
  } else {
    for (const auto& p : problems)
      fmt::print("{} {}: {}\n", p.severity == Health::failed ? "FAIL" : "STALE", p.series, p.reason);
  }
  return static_cast<int>(h);
}

}  // namespace mdshm::inspect
