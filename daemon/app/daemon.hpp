// mdshmd's wiring: configuration -> publisher -> one aggregator per symbol -> a trade source, and
// the main loop that keeps bars closing on time. main.cpp only calls run_main().
#pragma once

#include <atomic>
#include <string>

#include "config/config.hpp"

namespace mdshm::app {

// Process exit codes; scripts and the systemd unit rely on them.
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntime = 1,      // anything that went wrong after the configuration was accepted
  kExitConfig = 2,       // bad command line or configuration (every problem printed)
  kExitLockHeld = 3,     // another mdshmd holds this instance
};

// Runs the daemon until `stop` becomes true. Logs through spdlog's default logger.
int run_daemon(const config::Config& cfg, const std::atomic<bool>& stop);

// The whole program: command line, config, signals, run_daemon.
int run_main(int argc, char** argv);

}  // namespace mdshm::app
