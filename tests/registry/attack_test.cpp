// The consumer registry under attack by an unprivileged member of the readers' group (issue 9,
// defects 2 and 3; issue 10, waiter accounting across SIGKILL). Every attack is performed for
// real: a root writer (the Publisher, reclaiming every second), consumers of another user
// blocked in wait(), and the attacker run with setpriv as a third user.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <random>
#include <set>

#include "attack_support.hpp"

using namespace mdshm;
using namespace mdshm::test;

namespace {

#define SKIP_UNLESS_ROOT()                 \
  std::string why_;                        \
  if (!ensure_users(why_)) {               \
    WARN("skipped: " << why_);             \
    return;                                \
  }

// Polls `cond` every 100 ms for up to `limit`.
template <class F>
bool eventually(F&& cond, std::chrono::milliseconds limit = 8000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

std::vector<ConsumerInfo> consumers(const std::string& inst) {
  std::vector<ConsumerInfo> cs;
  (void)list_consumers(OpenOptions{inst, "/dev/shm"}, cs);
  return cs;
}

// Entries of the consumers directory other than the daemon's manifest.
std::size_t dir_entries(const std::string& inst, uid_t* only_owner = nullptr) {
  const std::string dir = paths::consumers_dir("/dev/shm", inst);
  std::size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == ".." || name == ".series") continue;
      struct stat st {};
      if (only_owner && (::lstat((dir + "/" + name).c_str(), &st) != 0 || st.st_uid != *only_owner)) continue;
      ++n;
    }
    ::closedir(d);
  }
  return n;
}

// The writer's CPU over `window`, as a fraction of one core.
double cpu_share(pid_t pid, std::chrono::milliseconds window) {
  const auto t0 = cpu_ticks(pid);
  std::this_thread::sleep_for(window);
  const auto t1 = cpu_ticks(pid);
  return static_cast<double>(t1 - t0) / static_cast<double>(::sysconf(_SC_CLK_TCK)) /
         std::chrono::duration<double>(window).count();
}

struct Scene {
  std::string inst;
  InstanceCleanup clean;
  Identity victim, attacker;
  Shared* ws = make_shared_counters();
  Shared* vs = make_shared_counters();
  std::unique_ptr<Child> writer;
  explicit Scene(const char* tag)
      : inst(unique_instance(tag)), clean{inst}, victim(identity(kVictim)), attacker(identity(kAttacker)) {
    writer = start_writer(inst, victim.gid, ws);
  }
  ~Scene() {
    writer.reset();
    ::munmap(ws, sizeof(Shared));
    ::munmap(vs, sizeof(Shared));
  }
  bool victims_ready(int n) {
    return eventually([&] { return vs->ready.load() >= n; });
  }
};

}  // namespace

TEST_CASE("truncating, growing and filling registry files crashes and stalls nobody", "[attack]") {
  SKIP_UNLESS_ROOT();
  Scene s("regtrunc");
  auto v0 = start_victim(s.inst, s.victim, s.vs, 0, "victim0");
  auto v1 = start_victim(s.inst, s.victim, s.vs, 1, "victim1");
  REQUIRE(s.victims_ready(2));

  const auto r = run(attacker_command(s.inst, "abuse 3"));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(value_of(r.out, "others_modified") == 0);  // nothing but its own files gave way
  CHECK(value_of(r.out, "others_denied") > 0);      // and it did try the victims' files

  std::this_thread::sleep_for(1500ms);  // reclaim passes over the debris
  const bool up[] = {s.writer->running(), v0->running(), v1->running()};
  INFO("writer: " << s.writer->how_it_ended() << ", victims: " << v0->how_it_ended() << ", " << v1->how_it_ended());
  REQUIRE(up[0]);
  REQUIRE(up[1]);
  REQUIRE(up[2]);
  // The victims still receive bars...
  const long p0 = s.vs->progress[0].load(), p1 = s.vs->progress[1].load();
  CHECK(eventually([&] { return s.vs->progress[0].load() > p0 + 2 && s.vs->progress[1].load() > p1 + 2; }));
  // ... are still listed, alive ...
  std::set<std::string> names;
  for (const auto& c : consumers(s.inst))
    if (c.alive) names.insert(c.name);
  CHECK(names.count("victim0") == 1);
  CHECK(names.count("victim1") == 1);
  // ... the attacker's debris (truncated records, fifo, symlink, directory) is gone ...
  CHECK(eventually([&] { return dir_entries(s.inst, &s.attacker.uid) == 0; }));
  // ... and the writer idles (no absurd waiter count keeps it polling).
  const double share = cpu_share(s.writer->pid(), 3000ms);
  INFO("writer CPU " << share * 100 << " % of a core");
  CHECK(share < 0.10);
  CHECK(s.writer->running());
}

TEST_CASE("consumer names with escape sequences are printed escaped", "[attack]") {
  SKIP_UNLESS_ROOT();
  Scene s("regansi");
  const std::string cmd = attacker_command(s.inst, "ansi 20") + " >/dev/null 2>&1 & echo $!";
  const auto bg = run(cmd);
  const pid_t attacker_pid = static_cast<pid_t>(std::atol(bg.out.c_str()));
  REQUIRE(attacker_pid > 0);
  const bool listed = eventually([&] {
    for (const auto& c : consumers(s.inst))
      if (c.name.find("EVIL") != std::string::npos) return true;
    return false;
  });
  REQUIRE(listed);
  for (const std::string flags : {"", "--json "}) {
    const auto show = run(std::string(MDSHM_INSPECTOR_EXE) + " --instance " + s.inst + " " + flags + "show eth_1m");
    INFO(show.out);
    CHECK(show.exit_code == 0);
    CHECK(show.out.find('\x1b') == std::string::npos);
    CHECK(show.out.find('\x07') == std::string::npos);
    CHECK(show.out.find("\\x1b[31mEVIL") != std::string::npos);
  }
  ::kill(attacker_pid, SIGKILL);
}

TEST_CASE("300 forged pid-1 entries lock nobody out and are reclaimed", "[attack]") {
  SKIP_UNLESS_ROOT();
  Scene s("regpid1");
  const auto r = run(attacker_command(s.inst, "fake-pid1 300"));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(value_of(r.out, "forged") >= 256);
  // Real subscribers register at once, root and the victim user alike.
  auto mine = Subscription::open("real_root", "eth_1m", OpenOptions{s.inst, "/dev/shm"});
  INFO((mine ? std::string("ok") : mine.error().message));
  REQUIRE(mine.ok());
  auto v = start_victim(s.inst, s.victim, s.vs, 0, "real_victim");
  REQUIRE(s.victims_ready(1));
  // The fakes go within a few reclaim passes; the real ones stay.
  CHECK(eventually([&] {
    for (const auto& c : consumers(s.inst))
      if (c.pid == 1) return false;
    return true;
  }));
  std::set<std::string> names;
  for (const auto& c : consumers(s.inst)) names.insert(c.name);
  CHECK(names == std::set<std::string>{"real_root", "real_victim"});
  CHECK(s.writer->running());
}

// Issue 10: "waiter accounting survives SIGKILL of a reader at any instruction". There is no
// waiter count any more; what must hold is that 1,000 readers of both kinds killed at random
// moments leave no entry, the writer idles, and the survivors are listed exactly.
TEST_CASE("SIGKILL of 1000 blocked readers leaves no registry entry and an idle writer", "[attack]") {
  SKIP_UNLESS_ROOT();
  Scene s("regkill");
  auto plain_reader = [&](int slot) {
    Shared* vs = s.vs;
    const std::string inst = s.inst;
    const Identity who = s.victim;
    return std::make_unique<Child>([vs, inst, who, slot] {
      become(who);
      auto ser = Series::open("eth_1m", OpenOptions{inst, "/dev/shm"});
      if (!ser) ::_exit(3);
      vs->ready.fetch_add(1);
      for (std::uint64_t seen = ser->updates();; seen = ser->updates())
        if (ser->wait(seen, 500ms) == WaitResult::updated) vs->progress[slot].fetch_add(1);
    });
  };
  // Survivors of both kinds, blocked throughout.
  std::vector<std::unique_ptr<Child>> survivors;
  survivors.push_back(start_victim(s.inst, s.victim, s.vs, 250, "survivor_a"));
  survivors.push_back(start_victim(s.inst, s.victim, s.vs, 251, "survivor_b"));
  survivors.push_back(plain_reader(252));
  survivors.push_back(plain_reader(253));
  int expected_ready = 4;
  REQUIRE(eventually([&] { return s.vs->ready.load() == expected_ready; }, 30000ms));

  constexpr int kRounds = 10, kPerRound = 100;
  std::mt19937 rng(42);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::unique_ptr<Child>> readers;
    for (int i = 0; i < kPerRound; ++i)
      readers.push_back(i % 2 == 0 ? start_victim(s.inst, s.victim, s.vs, i, "blocked" + std::to_string(i))
                                   : plain_reader(i));
    expected_ready += kPerRound;
    REQUIRE(eventually([&] { return s.vs->ready.load() == expected_ready; }, 30000ms));
    for (auto& r : readers) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));  // at random moments of their waits
      r->kill(SIGKILL);
    }
    INFO("round " << round);
    REQUIRE(s.writer->running());
  }
  // Only the two registered survivors remain, alive; the writer idles; the survivors still read.
  CHECK(eventually([&] { return consumers(s.inst).size() == 2 && dir_entries(s.inst) == 2; }, 10000ms));
  std::set<std::string> names;
  for (const auto& c : consumers(s.inst))
    if (c.alive) names.insert(c.name);
  CHECK(names == std::set<std::string>{"survivor_a", "survivor_b"});
  const double share = cpu_share(s.writer->pid(), 3000ms);
  INFO("writer CPU " << share * 100 << " % of a core after 1,000 readers died");
  CHECK(share < 0.10);
  long before[4];
  for (int k = 0; k < 4; ++k) before[k] = s.vs->progress[250 + k].load();
  CHECK(eventually([&] {
    for (int k = 0; k < 4; ++k)
      if (s.vs->progress[250 + k].load() <= before[k]) return false;
    return true;
  }));
  for (auto& c : survivors) CHECK(c->running());
  REQUIRE(s.writer->running());
}

// The same attacks against the real daemon binary (synthetic source): it keeps publishing.
TEST_CASE("mdshmd itself survives the registry attacks and keeps publishing", "[attack]") {
  SKIP_UNLESS_ROOT();
  const std::string exe = std::string(MDSHM_BIN_DIR) + "/mdshmd";
  if (::access(exe.c_str(), X_OK) != 0) {
    WARN("skipped: " << exe << " not built");
    return;
  }
  const std::string inst = unique_instance("regmdshmd");
  InstanceCleanup clean{inst};
  const Identity victim = identity(kVictim);
  const std::string cfg = "/tmp/" + inst + ".toml";
  {
    std::FILE* f = std::fopen(cfg.c_str(), "w");
    REQUIRE(f);
    std::fprintf(f,
                 "[daemon]\ninstance = \"%s\"\nlog_level = \"info\"\n[shm]\nmode = \"0640\"\ngroup = \"%s\"\n"
                 "[source]\nkind = \"synthetic\"\n[source.synthetic]\nrate = 200\nseed = 5\n"
                 "start_prices = { ETHUSDT = 1900.0 }\n[binance]\nbackfill = false\n[metrics]\nlisten = \"\"\n"
                 "[[series]]\nid = \"eth_1m\"\nsymbol = \"ETHUSDT\"\ninterval = \"1m\"\ncapacity = 256\nbackfill = false\n",
                 inst.c_str(), kGroup);
    std::fclose(f);
  }
  Child daemon([&] {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execl(exe.c_str(), exe.c_str(), "--config", cfg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  });
  const OpenOptions oo{inst, "/dev/shm"};
  REQUIRE(eventually([&] { return Series::open("eth_1m", oo).ok() && dir_entries(inst) == 0; }, 20000ms));
  Shared* vs = make_shared_counters();
  auto v = start_victim(inst, victim, vs, 0, "victim");
  REQUIRE(eventually([&] { return vs->ready.load() == 1; }));
  auto updates = [&] {
    auto s = Series::open("eth_1m", oo);
    return s ? s->updates() : 0;
  };
  for (const char* attack : {"abuse 2", "fake-pid1 300", "ansi 1"}) {
    const auto r = run(attacker_command(inst, attack));
    INFO(attack << ": " << r.out);
    CHECK(value_of(r.out, "others_modified") <= 0);
  }
  const auto u0 = updates();
  const bool up[] = {daemon.running(), v->running()};
  INFO("mdshmd: " << daemon.how_it_ended() << ", victim: " << v->how_it_ended());
  REQUIRE(up[0]);
  REQUIRE(up[1]);
  CHECK(eventually([&] { return updates() > u0 + 5; }));  // still publishing
  CHECK(eventually([&] {
    const auto cs = consumers(inst);
    return cs.size() == 1 && cs[0].name == "victim";  // fakes and debris reclaimed, the victim kept
  }));
  const long p = vs->progress[0].load();
  CHECK(eventually([&] { return vs->progress[0].load() > p; }));
  daemon.kill(SIGTERM);
  ::munmap(vs, sizeof(Shared));
  ::unlink(cfg.c_str());
}
