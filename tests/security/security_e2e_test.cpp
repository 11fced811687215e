// The file-trust attacks of issue 9, performed for real: an unprivileged account (created here if
// missing) squats an instance's names, plants lock files and symlinks, and the root daemon and the
// readers must trust none of it. Needs root (to create the accounts and switch to them); skipped
// with a message otherwise. Uses only mdshm::paths:: for names, so it runs against any scheme.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/client.hpp"
#include "mdshm/paths.hpp"

extern char** environ;

namespace fs = std::filesystem;
namespace paths = mdshm::paths;
using namespace std::chrono_literals;

namespace {

// MDSHM_SECURITY_BIN_DIR runs the attacks against other binaries (e.g. a build of main).
std::string bin(const char* name) {
  const char* dir = std::getenv("MDSHM_SECURITY_BIN_DIR");
  return std::string(dir ? dir : MDSHM_BIN_DIR) + "/" + name;
}

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
};

// An unprivileged account without home or shell, created once per machine.
Account account(const std::string& name) {
  if (!::getpwnam(name.c_str())) {
    const std::string cmd = "useradd -M -s /usr/sbin/nologin " + name + " >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  const passwd* pw = ::getpwnam(name.c_str());
  REQUIRE(pw != nullptr);
  return {pw->pw_uid, pw->pw_gid, name};
}

bool skip_unless_root() {
  if (::geteuid() == 0) return false;
  WARN("not root: the attacks need an unprivileged account to switch to; skipped");
  return true;
}

// Runs `attack` in a child process that has become `who` (all groups dropped, no way back).
// Returns the child's exit code: 0 means every step of the attack the child asserted worked.
int as_user(const Account& who, const std::function<int()>& attack) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(who.gid, who.gid, who.gid) != 0 ||
        ::setresuid(who.uid, who.uid, who.uid) != 0)
      ::_exit(100);
    ::_exit(attack());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(25ms);
  }
  return cond();
}

// A world-readable scratch directory (the attacker reads its config from here).
struct Scratch {
  std::string instance;
  fs::path dir;
  std::string shm = "/dev/shm";
  explicit Scratch(const std::string& tag) {
    instance = "sec_" + tag + "_" + std::to_string(::getpid());
    dir = fs::temp_directory_path() / ("mdshm_" + instance);
    fs::create_directories(dir);
    ::chmod(dir.c_str(), 0755);
  }
  ~Scratch() { clean(); std::error_code ec; fs::remove_all(dir, ec); }
  // Everything of the instance in the shm dir, under any scheme, including squatters' leftovers.
  void clean() const {
    std::error_code ec;
    const std::string stem = paths::instance_dir(shm, instance);
    for (const auto& e : fs::directory_iterator(shm, ec)) {
      const std::string p = e.path().string();
      if (p.rfind(stem, 0) == 0 && (p.size() == stem.size() || p[stem.size()] == '.' || p[stem.size()] == '@'))
        fs::remove_all(e.path(), ec);
    }
    for (const std::string& p : {paths::segment(shm, instance, "eth_1m"), paths::lock(shm, instance),
                                 paths::legacy_registry(shm, instance)})
      fs::remove(p, ec);
  }
  std::string config(const std::string& extra = "", std::uint64_t capacity = 600, const std::string& file = "c.toml") const {
    const auto p = (dir / file).string();
    std::ofstream(p) << "[daemon]\ninstance = \"" << instance << "\"\n[shm]\ndir = \"" << shm
                     << "\"\n[source]\nkind = \"synthetic\"\n[source.synthetic]\nrate = 2000\nseed = 5\n"
                        "start_prices = { ETHUSDT = 1900.0 }\n"
                     << extra << "[[series]]\nid = \"eth_1m\"\nsymbol = \"ETHUSDT\"\ninterval = \"1s\"\ncapacity = "
                     << capacity << "\n";
    ::chmod(p.c_str(), 0644);
    return p;
  }
  std::string segment() const { return paths::segment(shm, instance, "eth_1m"); }
  mdshm::OpenOptions open_options() const { return {instance, shm}; }
};

struct Daemon {
  pid_t pid = -1;
  std::string log;
  Daemon(const Scratch& s, const std::string& config, const std::string& tag, const Account* as = nullptr) {
    log = (s.dir / (tag + ".log")).string();
    std::vector<std::string> args;
    if (as) args = {"/usr/bin/setpriv", "--reuid=" + std::to_string(as->uid), "--regid=" + std::to_string(as->gid),
                    "--clear-groups", "--"};
    args.push_back(bin("mdshmd"));
    args.push_back("--config");
    args.push_back(config);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  // Exit code, or -1 if still running after `timeout` (then it is killed).
  int wait_exit(std::chrono::milliseconds timeout = 10s) {
    if (pid < 0) return -1;
    int st = 0;
    const bool done = wait_for([&] { return ::waitpid(pid, &st, WNOHANG) == pid; }, timeout);
    if (!done) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      pid = -1;
      return -1;
    }
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  int stop() {
    if (pid > 0) ::kill(pid, SIGTERM);
    return wait_exit();
  }
  bool running() {
    if (pid <= 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == 0) return true;
    pid = -1;  // reaped here: exited
    return false;
  }
  std::string text() const { return slurp(log); }
  ~Daemon() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

bool has_closed_bars(const Scratch& s, std::size_t n) {
  auto r = mdshm::Series::open("eth_1m", s.open_options());
  return r && r->stat(mdshm::Stat::bars_closed) >= n;
}

// Every bar a reader gets, through the public API.
std::vector<mdshm::Bar> bars_of(const Scratch& s) {
  auto r = mdshm::Series::open("eth_1m", s.open_options());
  if (!r) return {};
  std::vector<mdshm::Bar> out(r->capacity());
  std::size_t n = 0;
  if (r->last_n(out, n) != mdshm::Errc::ok) return {};
  out.resize(n);
  return out;
}

bool injected(const std::vector<mdshm::Bar>& bars) {
  for (const auto& b : bars)
    if (b.open == 99999 || b.high == 99999 || b.low == 99999 || b.close == 99999) return true;
  return false;
}

// What the attacker does to a segment it can write: every held bar becomes o/h/l/c = 99999.
int inject_99999(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) return 10;
  struct stat st {};
  ::fstat(fd, &st);
  void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return 11;
  auto* h = static_cast<mdshm::SegmentHeader*>(p);
  auto* ring = reinterpret_cast<mdshm::BarSlot*>(static_cast<char*>(p) + mdshm::kHeaderSize);
  for (std::uint64_t i = 0; i < h->capacity; ++i)
    ring[i].bar.open = ring[i].bar.high = ring[i].bar.low = ring[i].bar.close = 99999;
  h->latch[0].bar.close = h->latch[1].bar.close = 99999;
  ::munmap(p, static_cast<std::size_t>(st.st_size));
  return 0;
}

// The attacker's own mdshmd run on the instance: the names now exist and belong to the attacker.
void squat_by_running_mdshmd(const Scratch& s, const Account& mallory) {
  Daemon squat(s, s.config(), "squatter", &mallory);
  const bool up = wait_for([&] { return has_closed_bars(s, 2); }, 15s);
  INFO(squat.text());
  REQUIRE(up);
  REQUIRE(squat.stop() == 0);
  struct stat st {};
  REQUIRE(::stat(s.segment().c_str(), &st) == 0);
  REQUIRE(st.st_uid == mallory.uid);
  REQUIRE(as_user(mallory, [&] { return inject_99999(s.segment()); }) == 0);
  REQUIRE(injected(bars_of(s)));  // a reader of the squatted files sees the forgery
}

}  // namespace

TEST_CASE("defect 1: names squatted by a user's own mdshmd never reach a reader of the root daemon", "[e2e]") {
  if (skip_unless_root()) return;
  const Account mallory = account("mdshm_attacker");
  Scratch s("squat");
  squat_by_running_mdshmd(s, mallory);

  Daemon root(s, s.config(), "root");
  const bool clean = wait_for([&] { return has_closed_bars(s, 2) && !injected(bars_of(s)); }, 15s);
  INFO(root.text());
  REQUIRE(clean);
  // What readers map is the root daemon's, and the attacker can no longer write it.
  struct stat st {};
  REQUIRE(::stat(s.segment().c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
  CHECK(as_user(mallory, [&] { return ::open(s.segment().c_str(), O_RDWR) >= 0 ? 1 : 0; }) == 0);
  // An injection attempt now changes nothing a reader gets.
  (void)as_user(mallory, [&] { return inject_99999(s.segment()); });
  CHECK_FALSE(injected(bars_of(s)));
  // The operator is told whose files were refused.
  CHECK(root.text().find("mdshm_attacker") != std::string::npos);
  CHECK(root.text().find("re-attached") == std::string::npos);
  CHECK(root.stop() == 0);
}

TEST_CASE("defect 4: a lock file planted, made 0666, written '1' and flock'ed does not stop a root daemon", "[e2e]") {
  if (skip_unless_root()) return;
  const Account mallory = account("mdshm_attacker");
  Scratch s("lock");
  // The attacker creates whatever the lock path needs and holds an flock on it until killed.
  const std::string lock = paths::lock(s.shm, s.instance);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    ::close(ready[0]);
    if (::setgroups(0, nullptr) != 0 || ::setresgid(mallory.gid, mallory.gid, mallory.gid) != 0 ||
        ::setresuid(mallory.uid, mallory.uid, mallory.uid) != 0)
      ::_exit(100);
    ::umask(0);
    std::error_code ec;
    fs::create_directories(fs::path(lock).parent_path(), ec);
    ::chmod(fs::path(lock).parent_path().c_str(), 0777);  // no-op on /dev/shm itself (not ours)
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT, 0666);
    if (fd < 0 || ::write(fd, "1\n", 2) != 2 || ::flock(fd, LOCK_EX) != 0) ::_exit(101);
    (void)::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);

  Daemon root(s, s.config(), "root");
  const bool publishing = wait_for([&] { return has_closed_bars(s, 1); }, 15s);
  const std::string log = root.text();
  INFO(log);
  CHECK(publishing);
  CHECK(root.running());
  CHECK(log.find("pid 1 ") == std::string::npos);
  CHECK(log.find("mdshm_attacker") != std::string::npos);  // whose planted files were replaced
  CHECK(root.stop() == 0);
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
}

TEST_CASE("defect 4: a daemon that cannot replace squatted names says whose they are", "[e2e]") {
  if (skip_unless_root()) return;
  const Account mallory = account("mdshm_attacker");
  const Account service = account("mdshm_sec_daemon");
  Scratch s("deny");
  // The attacker plants the instance's names before the (unprivileged) service account's daemon.
  REQUIRE(as_user(mallory, [&] {
    std::error_code ec;
    fs::create_directories(fs::path(paths::lock(s.shm, s.instance)).parent_path(), ec);
    const int fd = ::open(paths::lock(s.shm, s.instance).c_str(), O_RDWR | O_CREAT, 0600);
    return fd >= 0 ? 0 : 1;
  }) == 0);
  Daemon d(s, s.config(), "service", &service);
  const int rc = d.wait_exit(15s);
  const std::string log = d.text();
  INFO(log);
  CHECK(rc == 1);
  CHECK(log.find("mdshm_attacker") != std::string::npos);
}

TEST_CASE("defect 4/5: a symlink at a segment path stops neither the daemon nor fools a reader", "[e2e]") {
  if (skip_unless_root()) return;
  const Account mallory = account("mdshm_attacker");
  Scratch s("link");
  // A forged segment the attacker owns: a real one from its own mdshmd run, with 99999 injected,
  // moved to the attacker's scratch file; the series' path becomes a symlink to it.
  squat_by_running_mdshmd(s, mallory);
  const std::string fake = (s.dir / "fake.seg").string();
  fs::copy_file(s.segment(), fake);
  REQUIRE(::chown(fake.c_str(), mallory.uid, mallory.gid) == 0);
  REQUIRE(as_user(mallory, [&] {
    ::unlink(s.segment().c_str());
    return ::symlink(fake.c_str(), s.segment().c_str()) == 0 ? 0 : 1;
  }) == 0);
  // The reader: refuses the link instead of printing the fake bars.
  {
    auto r = mdshm::Series::open("eth_1m", s.open_options());
    CHECK_FALSE(r.ok());
    if (!r) CHECK(r.error().message.find("symbolic link") != std::string::npos);
    const std::string out = (s.dir / "tail.out").string();
    const std::string cmd = bin("mdshm") + " --instance " + s.instance + " tail eth_1m -n 5 >" + out + " 2>&1";
    (void)std::system(cmd.c_str());
    CHECK(slurp(out).find("99999") == std::string::npos);
  }
  // The daemon: starts, publishes its own segment, names who planted the link.
  Daemon root(s, s.config(), "root");
  const bool clean = wait_for([&] { return has_closed_bars(s, 1) && !injected(bars_of(s)); }, 15s);
  INFO(root.text());
  CHECK(clean);
  CHECK(root.running());
  struct stat lst {};
  REQUIRE(::lstat(s.segment().c_str(), &lst) == 0);
  CHECK(S_ISREG(lst.st_mode));
  CHECK(root.text().find("mdshm_attacker") != std::string::npos);
  CHECK(root.stop() == 0);
}

TEST_CASE("defect 6: a capacity change on a full shm dir leaves the old segment readable", "[e2e]") {
  if (skip_unless_root()) return;
  Scratch s("full");
  const fs::path mnt = s.dir / "shm";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m,mode=1777") != 0) {
    WARN("cannot mount a tmpfs here (" << std::strerror(errno) << "): skipped");
    return;
  }
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt.string()};
  s.shm = mnt.string();
  {
    Daemon d(s, s.config("", 600), "small");
    const bool up = wait_for([&] { return has_closed_bars(s, 2); }, 15s);
    INFO(d.text());
    REQUIRE(up);
    REQUIRE(d.stop() == 0);
  }
  const auto before = bars_of(s);
  REQUIRE(before.size() >= 2);
  // Fill the file system: nothing is left for a bigger segment (600 -> 12000 bars needs 1.5 MB).
  {
    const int fd = ::open((mnt / "filler").c_str(), O_RDWR | O_CREAT, 0600);
    REQUIRE(fd >= 0);
    off_t size = 4 << 20;
    while (size > 4096 && ::posix_fallocate(fd, 0, size) != 0) size -= 4096;
    ::close(fd);
  }
  Daemon bigger(s, s.config("", 12000, "big.toml"), "big");
  const int rc = bigger.wait_exit(15s);
  INFO(bigger.text());
  CHECK(rc != 0);  // it cannot serve the new capacity...
  // ...but readers keep the old data: not retired, same bars.
  auto r = mdshm::Series::open("eth_1m", s.open_options());
  REQUIRE(r.ok());
  CHECK(r->capacity() == 600);
  const auto after = bars_of(s);
  CHECK(after.size() == before.size());
  mdshm::Bar b{};
  CHECK(r->latest(b) == mdshm::Errc::ok);
}

TEST_CASE("issue 8 defect 5: after the synthetic source, the Binance config keeps no made-up bar", "[e2e]") {
  Scratch s("source");
  const fs::path shm = s.dir / "shm";
  fs::create_directories(shm);
  s.shm = shm.string();
  {
    Daemon synthetic(s, s.config(), "synthetic");  // what scripts/demo.sh --synthetic runs
    const bool up = wait_for([&] { return has_closed_bars(s, 3); }, 15s);
    INFO(synthetic.text());
    REQUIRE(up);
    REQUIRE(synthetic.stop() == 0);
  }
  REQUIRE(bars_of(s).size() >= 3);
  // The live source (an endpoint that does not answer: the segments are opened before the feed).
  const auto live = (s.dir / "live.toml").string();
  std::ofstream(live) << "[daemon]\ninstance = \"" << s.instance << "\"\n[shm]\ndir = \"" << s.shm
                      << "\"\n[source]\nkind = \"binance\"\n[binance]\nws_url = \"wss://127.0.0.1:1\"\n"
                         "rest_url = \"https://127.0.0.1:1\"\n[[series]]\nid = \"eth_1m\"\nsymbol = \"ETHUSDT\"\n"
                         "interval = \"1s\"\ncapacity = 600\n";
  Daemon binance(s, live, "binance");
  const bool attached = wait_for([&] {
    const auto t = binance.text();
    return t.find("series eth_1m:") != std::string::npos;
  }, 15s);
  const std::string log = binance.text();
  INFO(log);
  REQUIRE(attached);
  CHECK(log.find("re-attached") == std::string::npos);
  CHECK(log.find("source synthetic") != std::string::npos);  // the reason names the old source
  CHECK(bars_of(s).empty());                                 // none of the random-walk bars is left
}
