// SIGHUP: re-read the configuration file and apply what can change without a restart (log level,
// REST weight budget). Everything else that changed is logged as needing a restart and left as
// it runs: segments, series, endpoints and stores are not swapped under readers' feet.
#pragma once

#include <functional>
#include <string>

#include "config/config.hpp"

namespace mdshm::app {

struct ReloadHooks {
  std::function<void(int)> set_rest_weight_budget;  // empty when the source has no REST client
};

// Returns false if the file no longer parses (every problem logged; nothing applied).
bool reload_config(const std::string& path, const std::string& instance_override, config::Config& running,
                   const ReloadHooks& hooks);

}  // namespace mdshm::app
