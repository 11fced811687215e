// `mdshmd --check-config` refuses exactly what start-up refuses: for each config below, both the
// check and a real start exit 2 and name the key. Each case runs the daemon binary; none of them
// may get as far as creating a segment.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "../inspector/process.hpp"

namespace fs = std::filesystem;

namespace {

using Run = mdshm::test::RunResult;

const std::string kDaemon = std::string(MDSHM_BIN_DIR) + "/mdshmd";

// Runs through /bin/sh with stderr merged: what an operator sees.
Run run(const std::string& cmd) { return mdshm::test::run(cmd, true); }

struct Scratch {
  std::string instance = "cfgchk_" + std::to_string(::getpid());
  fs::path dir = fs::temp_directory_path() / ("mdshm-check-config-" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
    for (const auto& e : fs::directory_iterator("/dev/shm", ec))
      if (e.path().filename().string().find(instance) != std::string::npos) fs::remove_all(e.path(), ec);  // the instance directory
  }
  std::string write(const std::string& name, const std::string& body) const {
    const auto p = (dir / name).string();
    std::ofstream(p) << "[daemon]\ninstance = \"" << instance << "\"\n[source]\nkind = \"synthetic\"\n" << body;
    return p;
  }
};

std::string series(std::size_t n, std::uint64_t capacity) {
  std::string t;
  for (std::size_t i = 0; i < n; ++i)
    t += "[[series]]\nid = \"s" + std::to_string(i) + "\"\nsymbol = \"ETHUSDT\"\ninterval = \"1m\"\ncapacity = " +
         std::to_string(capacity) + "\n";
  return t;
}

}  // namespace

TEST_CASE("--check-config rejects what start-up rejects, naming the key") {
  Scratch s;
  struct Case {
    const char* name;
    std::string body;
    std::string key;
  };
  const Case cases[] = {
      {"missing shm dir", "[shm]\ndir = \"/nonexistent-mdshm-dir\"\n", "shm.dir: directory /nonexistent-mdshm-dir does not exist"},
      {"shm dir is a file", "[shm]\ndir = \"/etc/hostname\"\n", "shm.dir: /etc/hostname is not a directory"},
      {"unknown group", "[shm]\ngroup = \"no_such_group_mdshm\"\n", "shm.group: no such group 'no_such_group_mdshm'"},
      {"lock file in a missing dir", "[shm]\nlock_file = \"/nonexistent-mdshm-dir/lock\"\n", "shm.lock_file: directory"},
      {"1025 series", series(1025, 16), "series: 1025 series configured; at most 1024"},
      {"5000 series", series(5000, 16), "series: 5000 series configured; at most 1024"},
      {"segments larger than the filesystem", series(64, 1 << 24), "series: the segments need"},
      {"metrics host not an address", "[metrics]\nlisten = \"example.com:9464\"\n", "metrics.listen: host of"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    const auto path = s.write("bad.toml", c.body);
    const auto check = run(kDaemon + " --check-config --config " + path);
    INFO("check: " << check.out);
    CHECK(check.exit_code == 2);
    CHECK(check.out.find(c.key) != std::string::npos);
    // A real start with the same file stops at the same place (timeout: it must not run).
    const auto start = run("timeout 20 " + kDaemon + " --config " + path);
    INFO("start: " << start.out);
    CHECK(start.exit_code == 2);
    CHECK(start.out.find(c.key) != std::string::npos);
  }
  const auto good = s.write("good.toml", series(3, 16));
  const auto ok = run(kDaemon + " --check-config --config " + good);
  INFO(ok.out);
  CHECK(ok.exit_code == 0);
}

TEST_CASE("--config /dev/zero ends at once with the size limit named") {
  const auto r = run("timeout 20 " + kDaemon + " --check-config --config /dev/zero");
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK(r.out.find("larger than the limit") != std::string::npos);
}
