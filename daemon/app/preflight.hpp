// What start-up needs from the machine, checked before anything is touched, so that
// `mdshmd --check-config` refuses exactly what start-up would: the directories that must exist,
// the group, a listen address the exporter can bind, room for the segments.
#pragma once

#include <vector>

#include "config/config.hpp"

namespace mdshm::app {

// Every problem found, with the key it belongs to (line 0: these are not about the file's text).
std::vector<config::ConfigError> preflight(const config::Config& cfg);

}  // namespace mdshm::app
