// The simulator's network side: one TLS port serving the combined-stream WebSocket and REST, a
// plain-text control port for fault scripts, and the certificate generated for the run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "market.hpp"
#include "stream.hpp"

namespace mdshm::sim {

struct ServerOptions {
  std::uint16_t port = 0;          // 0: the kernel picks; the "listening" line says which
  int control_port = -1;           // -1: no control port; 0: pick
  std::string ca_out;              // where to write the CA certificate (PEM); "" = nowhere
  double speed = 1.0;              // replay clock rate; 0 = as fast as the client reads
  std::int64_t start_ms = 0;       // replay clock at startup
  double ping_interval_s = 20;
  double pong_timeout_s = 60;
  double max_conn_lifetime_s = 86400;
  std::string faults_file;         // "<seconds> <command>" lines, see faults.hpp
  std::string request_log;         // one line per REST request
  std::string send_log;            // one line per aggTrade frame sent: "<a> <CLOCK_REALTIME ns>"
  int weight_limit = 6000;         // per minute; above it, 429 as on Binance
};

// Runs until SIGINT/SIGTERM. Returns the process exit code; startup errors go to stderr.
int run_server(const ServerOptions& options, Market& market, const std::vector<ReplayFrame>& replay);

}  // namespace mdshm::sim
