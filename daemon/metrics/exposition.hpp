// Prometheus text exposition (format 0.0.4) rendered from the shared-memory segments themselves:
// whatever the writer counts in a segment header is what operators scrape, so the metrics can
// never disagree with `mdshm show`. Pure function of its inputs: testable without a network.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mdshm/layout.hpp"
#include "mdshm/registry.hpp"

namespace mdshm::publish {
class Publisher;
}

namespace mdshm::metrics {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Per series (labels series, symbol, interval): every Stat as mdshm_<name>_total (or a gauge where
// the stat is a level), ring head/capacity/bars held, updates and amends, seconds since the last
// update and heartbeat, writer generation, and the event->publish latency histogram. Per consumer
// (labels consumer, pid, series): lag in bars, reads, times lapped, alive.
// `segments` must be valid, ready headers (a writer's own mappings, or validated reader maps);
// `now_mono_ns` is CLOCK_MONOTONIC on this host (0: read the clock).
std::string render_metrics(const std::vector<const SegmentHeader*>& segments,
                           const std::vector<ConsumerInfo>& consumers, std::uint64_t now_mono_ns = 0);

// The daemon's view: the publisher's segments and the instance's registry.
std::string render_metrics(publish::Publisher& pub, const OpenOptions& registry_location);

// Label value escaping per the exposition format: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);

}  // namespace mdshm::metrics
