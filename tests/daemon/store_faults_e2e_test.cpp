// mdshmd with its history store on a disk that is read-only at start, then full: the fault shows in
// the segment's statistics and in `mdshm check` (exit 2), and once the disk works again every
// closed bar of the segment is in the store file, equal to the segment's (the truth). The disk is a
// small tmpfs this test mounts (root only; skipped with a message otherwise).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/client.hpp"
#include "store/history_store.hpp"

#include "../inspector/process.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace mdshm;

namespace {

using Run = mdshm::test::RunResult;

const std::string kBin = MDSHM_BIN_DIR;

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

// Runs through /bin/sh with stderr merged: what an operator sees.
Run run(const std::string& cmd) { return mdshm::test::run(cmd, true); }

struct Setup {
  std::string instance = "e2e_storefault_" + std::to_string(::getpid());
  fs::path dir = fs::temp_directory_path() / ("mdshm-" + instance);
  fs::path store = dir / "store";
  bool mounted = false;
  std::string why;
  pid_t pid = -1;

  Setup() {
    fs::create_directories(store);
    mounted = ::mount("tmpfs", store.c_str(), "tmpfs", 0, "ro,size=256k,mode=0755") == 0;
    if (!mounted) why = std::strerror(errno);
  }
  ~Setup() {
    stop();
    if (mounted) ::umount2(store.c_str(), MNT_DETACH);
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/dev/shm", ec))
      if (e.path().filename().string().find(instance) != std::string::npos) fs::remove_all(e.path(), ec);  // the instance directory
    fs::remove_all(dir, ec);
  }
  bool remount(const char* opts) { return ::mount("tmpfs", store.c_str(), "tmpfs", MS_REMOUNT, opts) == 0; }
  void start() {
    const auto cfg = (dir / "mdshmd.toml").string();
    std::ofstream(cfg) << "[daemon]\ninstance = \"" << instance << "\"\n[source]\nkind = \"synthetic\"\n"
                       << "[source.synthetic]\nrate = 500\nseed = 9\n[store]\ndir = \"" << store.string() << "\"\n"
                       << "fsync = \"never\"\n[[series]]\nid = \"eth_ticks\"\nsymbol = \"ETHUSDT\"\ninterval = \"1s\"\n"
                       << "capacity = 4096\n";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const auto err = (dir / "stderr").string();
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const std::string exe = kBin + "/mdshmd";
    std::vector<std::string> args = {exe, "--config", cfg};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  int stop() {
    if (pid <= 0) return -1;
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  std::string log() const {
    std::ifstream in(dir / "stderr");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  Run check() const { return run(kBin + "/mdshm --instance " + instance + " check"); }
};

std::uint64_t stat_of(Series& s, Stat which) {
  return load_field(s.header().stats[static_cast<std::size_t>(which)]);
}

// Fills the filesystem until ENOSPC; returns the file's path.
std::string fill(const fs::path& dir) {
  const auto path = (dir / "filler").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const std::string block(4096, 'f');
  while (::write(fd, block.data(), block.size()) > 0) {
  }
  while (::write(fd, "f", 1) > 0) {
  }
  ::close(fd);
  return path;
}

}  // namespace

TEST_CASE("a read-only, then full store disk: check fails while bars wait, and they all reach the disk") {
  Setup s;
  if (!s.mounted) {
    WARN("cannot mount a tmpfs here (" << s.why << "): the store fault test needs root");
    return;
  }
  s.start();
  INFO(s.log());
  Result<Series> opened = Series::open("eth_ticks", OpenOptions{s.instance, "/dev/shm"});
  REQUIRE(wait_for([&] { return bool(opened = Series::open("eth_ticks", OpenOptions{s.instance, "/dev/shm"})); }, 10s));
  Series& seg = opened.value();

  // Read-only at start: the store is unavailable (not silently absent), check says so.
  REQUIRE(wait_for([&] { return stat_of(seg, Stat::store_pending_bars) >= 2; }, 10s));
  CHECK(stat_of(seg, Stat::store_state) == static_cast<std::uint64_t>(StoreState::unavailable));
  CHECK(stat_of(seg, Stat::store_last_errno) == EROFS);
  auto c = s.check();
  INFO(c.out);
  CHECK(c.exit_code == 2);
  CHECK(c.out.find("history store unavailable (last error EROFS") != std::string::npos);

  // Writable again: the backlog is written within a retry or two, check is happy.
  REQUIRE(s.remount("rw,size=256k"));
  REQUIRE(wait_for([&] {
    return stat_of(seg, Stat::store_state) == static_cast<std::uint64_t>(StoreState::ok) &&
           stat_of(seg, Stat::store_pending_bars) == 0;
  }, 10s));
  CHECK(wait_for([&] { return s.check().exit_code == 0; }, 5s));

  // Full: the page of the file fills, then every append fails with ENOSPC.
  const auto filler = fill(s.store);
  REQUIRE(wait_for([&] { return stat_of(seg, Stat::store_state) == static_cast<std::uint64_t>(StoreState::failing); }, 60s));
  REQUIRE(wait_for([&] { return stat_of(seg, Stat::store_pending_bars) >= 2; }, 10s));
  CHECK(stat_of(seg, Stat::store_last_errno) == ENOSPC);
  c = s.check();
  CHECK(c.exit_code == 2);
  CHECK(c.out.find("history store failing (last error ENOSPC") != std::string::npos);

  fs::remove(filler);
  REQUIRE(wait_for([&] {
    return stat_of(seg, Stat::store_state) == static_cast<std::uint64_t>(StoreState::ok) &&
           stat_of(seg, Stat::store_pending_bars) == 0;
  }, 10s));
  CHECK(s.log().find("history store works again") != std::string::npos);

  // The truth: every closed bar the segment holds is in the store file, equal.
  REQUIRE(s.stop() == 0);
  std::vector<Bar> bars(seg.size());
  std::size_t n = 0;
  REQUIRE(seg.last_n(bars, n) == Errc::ok);
  store::StoreOptions o;
  o.dir = s.store.string();
  o.instance = s.instance;
  o.series = {"eth_ticks", "ETHUSDT", 1};
  o.capacity = 4096;
  auto stored = store::HistoryStore::open(o);
  std::size_t closed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Bar& b = bars[i];
    if (!(b.flags & flag::closed)) continue;
    ++closed;
    const auto it = std::find_if(stored.loaded().begin(), stored.loaded().end(),
                                 [&](const Bar& x) { return x.open_time_ms == b.open_time_ms; });
    INFO("bar at " << b.open_time_ms);
    REQUIRE(it != stored.loaded().end());
    CHECK(it->close == b.close);
    CHECK(it->volume == b.volume);
    CHECK(it->trade_count == b.trade_count);
  }
  CHECK(closed >= 4);
}
