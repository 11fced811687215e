#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace boost::asio {
class io_context;
}

namespace mdshm::net {

struct TlsOptions {
  // Empty: the system CA store. A PEM file: trust exactly these (tests, the simulator's own CA).
  std::string ca_file;
  bool verify_peer = true;
};

inline std::int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace mdshm::net
