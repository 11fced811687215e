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
    DIR* d = ::opendir("/dev/shm");
    if (!d) return;
    const std::string a = "mdshm." + name + ".", b = "mdshm." + name + "@";
    while (dirent* e = ::readdir(d)) {
      const std::string f = e->d_name;
      if (f.rfind(a, 0) == 0 || f.rfind(b, 0) == 0) {
        std::error_code ec;  // @consumers is a directory
        std::filesystem::remove_all("/dev/shm/" + f, ec);
      }
    }
    ::closedir(d);
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
