// A real publisher on a unique instance, removed with everything it created on scope exit.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <filesystem>

#include <string>

#include "mdshm/client.hpp"
#include "publish/publisher.hpp"

namespace mdshm::test {

struct TestInstance {
  std::string name;
  explicit TestInstance(const char* tag) {
    static int n = 0;
    name = std::string("tm") + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
  }
  ~TestInstance() {
    std::error_code ec;
    std::filesystem::remove_all(paths::instance_dir("/dev/shm", name), ec);
  }
  publish::PublisherOptions publisher_options() const {
    publish::PublisherOptions o;
    o.segments.instance = name;
    return o;
  }
  OpenOptions open_options() const { return {name, "/dev/shm"}; }
};

inline Bar bar_at(std::int64_t open_ms, double price) {
  Bar b{};
  b.open_time_ms = open_ms;
  b.open = b.high = b.low = b.close = price;
  b.volume = 1;
  b.trade_count = 1;
  b.first_trade_id = b.last_trade_id = -1;
  b.flags = flag::in_progress;
  return b;
}

}  // namespace mdshm::test
