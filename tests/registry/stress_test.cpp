// kill -9 across processes: consumers registering, polling and waiting are killed at random
// moments, some in the middle of creating their record. The writer must stay up, the registry
// must end up empty (dead records and half-written ones reclaimed), and new consumers must still
// register.
#include <catch2/catch.hpp>

#include <dirent.h>

#include <random>

#include "attack_support.hpp"

using namespace mdshm;
using namespace mdshm::test;

TEST_CASE("kill -9 of consumers at random moments: nothing left behind, registration keeps working", "[stress]") {
  std::string why;
  if (!ensure_users(why)) {
    WARN("skipped: " << why);
    return;
  }
  const std::string inst = unique_instance("regkill9");
  InstanceCleanup clean{inst};
  const Identity victim = identity(kVictim);
  Shared* ws = make_shared_counters();
  auto writer = start_writer(inst, victim.gid, ws);
  const OpenOptions oo{inst, "/dev/shm"};
  std::mt19937 rng(7);
  constexpr int kRounds = 6, kPerRound = 20;
  int registered_somewhere = 0;
  for (int round = 0; round < kRounds; ++round) {
    Shared* vs = make_shared_counters();
    std::vector<std::unique_ptr<Child>> kids;
    for (int i = 0; i < kPerRound; ++i) {
      const bool as_victim = i % 2 == 0;
      kids.push_back(std::make_unique<Child>([&, i] {
        if (as_victim) become(victim);
        auto sub = Subscription::open("k" + std::to_string(round) + "_" + std::to_string(i), "eth_1m", oo);
        if (!sub) ::_exit(3);
        vs->ready.fetch_add(1);
        std::vector<Bar> out(32);
        for (;;) {
          std::size_t n = 0;
          (void)sub->poll(out, n);
          if (i % 4 < 2) (void)sub->wait(std::chrono::milliseconds(1 + i % 5));
        }
      }));
    }
    for (auto& k : kids) {
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 8000));  // some still inside open()
      k->kill(SIGKILL);
    }
    registered_somewhere += vs->ready.load();
    ::munmap(vs, sizeof(Shared));
    INFO("round " << round << ": writer " << writer->how_it_ended());
    REQUIRE(writer->running());
  }
  INFO(registered_somewhere << " of " << kRounds * kPerRound << " registered before being killed");
  CHECK(registered_somewhere > 0);
  // Dead records go at the next pass, half-written ones after the grace period.
  const std::string dir = paths::consumers_dir("/dev/shm", inst);
  auto entries = [&] {
    std::size_t n = 0;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
      ::closedir(d);
    }
    return n;
  };
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (entries() != 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(100ms);
  CHECK(entries() == 0);
  std::vector<ConsumerInfo> cs;
  (void)list_consumers(oo, cs);
  CHECK(cs.empty());
  auto fresh = Subscription::open("after_the_storm", "eth_1m", oo);
  REQUIRE(fresh.ok());
  (void)list_consumers(oo, cs);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].name == "after_the_storm");
  CHECK(writer->running());
  writer.reset();
  ::munmap(ws, sizeof(Shared));
}
