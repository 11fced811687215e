// The attack suite's cast: a root writer process (the real Publisher, reclaim every second), an
// unprivileged victim whose consumers read blocked in wait(), and an unprivileged attacker in the
// same readers' group, run through setpriv. CI runs as root; without root the tests say so and skip.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/client.hpp"
#include "mdshm/paths.hpp"
#include "publish/publisher.hpp"
#include "../inspector/process.hpp"  // run(), InstanceCleanup

namespace mdshm::test {

using namespace std::chrono_literals;

inline constexpr const char* kGroup = "mdshm-t-readers";
inline constexpr const char* kAttacker = "mdshm-t-attacker";
inline constexpr const char* kVictim = "mdshm-t-victim";

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;  // the readers' group
};

// Creates the group and the two users if missing. False (and why) when not root.
inline bool ensure_users(std::string& why) {
  if (::geteuid() != 0) {
    why = "not root: the attack tests need to create users and run the attacker as one of them";
    return false;
  }
  const std::string cmd = std::string("getent group ") + kGroup + " >/dev/null || groupadd " + kGroup + "; " +
                          "for u in " + kAttacker + " " + kVictim + "; do id -u $u >/dev/null 2>&1 || useradd -M -N -g " +
                          kGroup + " -s /usr/sbin/nologin $u; done";
  if (std::system(cmd.c_str()) != 0) {
    why = "could not create the test users (" + cmd + ")";
    return false;
  }
  return true;
}

inline Identity identity(const char* user) {
  const passwd* pw = ::getpwnam(user);
  const group* gr = ::getgrnam(kGroup);
  if (!pw || !gr) throw std::runtime_error(std::string("no such user or group: ") + user);
  return {pw->pw_uid, gr->gr_gid};
}

// In a forked child: become `who` for good (no way back to root).
inline void become(const Identity& who) {
  const gid_t g = who.gid;
  if (::setgroups(1, &g) != 0 || ::setgid(g) != 0 || ::setuid(who.uid) != 0) ::_exit(126);
}

// utime + stime of a process in clock ticks.
inline std::uint64_t cpu_ticks(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (!f) return 0;
  char buf[1024] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  unsigned long long ut = 0, st = 0;
  // fields after the command: 3 state ... 14 utime 15 stime
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return 0;
  return ut + st;
}

// A child process that runs `body` and then _exits; killed and reaped on destruction.
class Child {
 public:
  template <class F>
  explicit Child(F&& body) {
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      body();
      ::_exit(0);
    }
  }
  ~Child() { kill(SIGKILL); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  // Still running (not exited, not killed by a signal such as SIGBUS)?
  bool running() {
    if (reaped_) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = st;
      return false;
    }
    return true;
  }
  std::string how_it_ended() const {
    if (!reaped_) return "running";
    if (WIFSIGNALED(status_)) return "killed by signal " + std::to_string(WTERMSIG(status_));
    return "exited " + std::to_string(WEXITSTATUS(status_));
  }
  void kill(int sig) {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, sig);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
    }
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// Counters shared with children through an anonymous shared mapping (ours, not the registry's).
struct Shared {
  std::atomic<long> progress[256];
  std::atomic<int> ready;
};
inline Shared* make_shared_counters() {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap");
  return new (p) Shared{};
}

// The writer: root, segments 0640 with the readers' group (so the registry is group-writable),
// eth_1m updated every 10 ms, a bar closed every 10 updates.
inline std::unique_ptr<Child> start_writer(const std::string& instance, gid_t group, Shared* s) {
  auto c = std::make_unique<Child>([&] {
    publish::PublisherOptions o;
    o.segments.instance = instance;
    o.segments.mode = 0640;
    o.segments.group = group;
    publish::Publisher pub(o, {publish::SeriesSpec{"eth_1m", "ETHUSDT", 60, 256}});
    s->ready.store(1);
    auto& w = pub.at(0);
    for (std::uint64_t k = 0;; ++k) {
      Bar b{};
      b.open_time_ms = static_cast<std::int64_t>(k / 10) * 60'000;
      b.open = b.high = b.low = b.close = 100.0 + static_cast<double>(k);
      b.flags = k % 10 == 9 ? flag::closed : flag::in_progress;
      w.publish(b);
      std::this_thread::sleep_for(10ms);
    }
  });
  for (int i = 0; i < 1000 && s->ready.load() == 0 && c->running(); ++i) std::this_thread::sleep_for(10ms);
  if (s->ready.load() == 0) throw std::runtime_error("writer did not start: " + c->how_it_ended());
  return c;
}

// A victim consumer (unprivileged): registers as `name`, then waits and polls for ever, counting
// polls that returned bars in s->progress[slot].
inline std::unique_ptr<Child> start_victim(const std::string& instance, const Identity& who, Shared* s, int slot,
                                           const std::string& name) {
  auto c = std::make_unique<Child>([&] {
    become(who);
    auto sub = Subscription::open(name, "eth_1m", OpenOptions{instance, "/dev/shm"});
    if (!sub) ::_exit(3);
    s->ready.fetch_add(1);
    std::vector<Bar> out(64);
    for (;;) {
      (void)sub->wait(200ms);
      std::size_t n = 0;
      if (sub->poll(out, n) == Errc::ok && n > 0) s->progress[slot].fetch_add(1);
    }
  });
  return c;
}

// The attacker: `args` for mdshm-registry-attacker, run as the attacker user via setpriv.
inline std::string attacker_command(const std::string& instance, const std::string& args) {
  return std::string("setpriv --reuid=") + kAttacker + " --regid=" + kGroup + " --init-groups " +
         MDSHM_ATTACKER_EXE + " --instance " + instance + " " + args;
}

inline long value_of(const std::string& out, const std::string& key) {
  const auto p = out.find(key + "=");
  return p == std::string::npos ? -1 : std::atol(out.c_str() + p + key.size() + 1);
}

}  // namespace mdshm::test
