// The inspector's commands. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

#include "inspect.hpp"

namespace mdshm::inspect {

int run_list(const Options& o);
int run_show(const Options& o, const std::string& series);
int run_tail(const Options& o, const std::string& series, std::size_t n);
// count = 0: until q, Ctrl-C or a signal; otherwise stop after that many refreshes.
int run_watch(const Options& o, unsigned count);
int run_check(const Options& o, double max_age_s, const std::vector<std::string>& series);

// Writes a JSON field block describing a segment that could not be opened.
class JsonWriter;
void json_segment_error(JsonWriter& j, const Segment& seg);
// The fields of one bar (tail rows, show's newest bar).
void json_bar(JsonWriter& j, const Bar& b, std::uint64_t index);
// Prints why a segment could not be opened; returns exit code 2.
int report_unopened(const Options& o, const Segment& seg);

}  // namespace mdshm::inspect
