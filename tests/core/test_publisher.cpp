// The Publisher: single-writer lock, consumer registry, heartbeat, and wake-ups once per batch.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;
using namespace std::chrono_literals;

TEST_CASE("a second writer on the same instance is refused, naming the holder") {
  const auto inst = unique_instance("lock");
  ShmCleanup clean{inst};
  publish::Publisher first(pub_opts(inst), {spec("eth_1m", 16, 60)});
  try {
    publish::Publisher second(pub_opts(inst), {spec("eth_1m", 16, 60)});
    FAIL("second writer was not refused");
  } catch (const publish::WriterLockHeld& e) {
    CHECK(e.holder_pid == ::getpid());
    CHECK_THAT(std::string(e.what()), Catch::Contains("pid " + std::to_string(::getpid())));
  }
  // Another instance is independent.
  const auto other = unique_instance("lock2");
  ShmCleanup clean2{other};
  CHECK_NOTHROW(publish::Publisher(pub_opts(other), {spec("eth_1m", 16, 60)}));
}

TEST_CASE("heartbeat keeps an idle writer alive; freshness follows updates") {
  const auto inst = unique_instance("hb");
  ShmCleanup clean{inst};
  publish::Publisher pub(pub_opts(inst), {spec("eth_1d", 16, 86400)});
  auto s = Series::open("eth_1d", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  pub.at(0).publish(make_bar(0, 1));
  std::this_thread::sleep_for(300ms);
  CHECK(s->heartbeat_age() < 200ms);
  CHECK(s->writer_state() == WriterState::alive);
  CHECK(s->update_age() >= 300ms);
  CHECK(s->is_fresh(1s));
  CHECK_FALSE(s->is_fresh(100ms));
}

TEST_CASE("blocked readers are woken once per batch; timeouts time out") {
  const auto inst = unique_instance("wake");
  ShmCleanup clean{inst};
  publish::Publisher pub(pub_opts(inst), {spec("eth_ticks", 64, 1)});
  auto& w = pub.at(0);
  auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  const auto seen = s->updates();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s->wait(seen, 50ms) == WaitResult::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);

  std::atomic<int> woken{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i)
    readers.emplace_back([&] {
      auto r = Series::open("eth_ticks", {inst, "/dev/shm"});
      if (r && r->wait(seen, 5s) == WaitResult::updated) ++woken;
    });
  std::this_thread::sleep_for(100ms);  // let them block
  const auto t1 = std::chrono::steady_clock::now();
  w.publish(make_bar(1000, 1));
  CHECK(pub.wake_readers() == 1);  // one segment touched: one FUTEX_WAKE
  CHECK(pub.wake_readers() == 0);  // nothing new: no syscall
  for (auto& t : readers) t.join();
  CHECK(woken == 4);
  // Woken by the futex, not by the 250 ms safety slice.
  CHECK(std::chrono::steady_clock::now() - t1 < 200ms);
}

TEST_CASE("consumers register, show their cursor, and dead ones are reclaimed") {
  const auto inst = unique_instance("reg");
  ShmCleanup clean{inst};
  publish::Publisher pub(pub_opts(inst), {spec("eth_1m", 64, 60)});
  auto& w = pub.at(0);
  for (int i = 0; i < 5; ++i) w.publish(make_bar(60'000 * i, static_cast<std::uint64_t>(i), flag::closed));
  const OpenOptions oo{inst, "/dev/shm"};
  {
    auto sub = Subscription::open("model_a", "eth_1m", oo);
    REQUIRE(sub.ok());
    sub->seek(0);
    std::vector<Bar> out(16);
    std::size_t n = 0;
    REQUIRE(sub->poll(out, n) == Errc::ok);
    CHECK(n == 5);
    std::vector<ConsumerInfo> cs;
    REQUIRE(list_consumers(oo, cs) == Errc::ok);
    REQUIRE(cs.size() == 1);
    CHECK(cs[0].name == "model_a");
    CHECK(cs[0].series_id == "eth_1m");
    CHECK(cs[0].cursor == 5);
    CHECK(cs[0].reads == 1);
    CHECK(cs[0].alive);
  }
  std::vector<ConsumerInfo> cs;
  REQUIRE(list_consumers(oo, cs) == Errc::ok);
  CHECK(cs.empty());  // destructor freed the slot

  // A consumer that dies without cleaning up (as with kill -9) is reclaimed.
  const pid_t child = ::fork();
  if (child == 0) {
    auto sub = Subscription::open("doomed", "eth_1m", oo);
    ::_exit(sub.ok() ? 0 : 1);  // _exit: no destructor runs, the slot stays claimed
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(list_consumers(oo, cs) == Errc::ok);
  REQUIRE(cs.size() == 1);
  CHECK_FALSE(cs[0].alive);
  CHECK(pub.reclaim_dead_consumers() == 1);
  REQUIRE(list_consumers(oo, cs) == Errc::ok);
  CHECK(cs.empty());
}

TEST_CASE("universal snapshot: five series, rows and metadata") {
  const auto inst = unique_instance("uni");
  ShmCleanup clean{inst};
  publish::Publisher pub(pub_opts(inst), {spec("eth_ticks", 600, 1), spec("eth_1m", 600, 60),
                                          spec("eth_1h", 600, 3600), spec("eth_1d", 600, 86400),
                                          spec("btc_ticks", 600, 1, "BTCUSDT")});
  for (std::size_t s = 0; s < 5; ++s) {
    const std::int64_t step = std::int64_t{pub.at(s).spec().interval_s} * 1000;
    const int bars = s == 3 ? 10 : 400;  // eth_1d has fewer bars than the window
    for (int i = 0; i < bars; ++i)
      pub.at(s).publish(make_bar(step * i, static_cast<std::uint64_t>(i), i + 1 < bars ? flag::closed : flag::in_progress));
  }
  auto u = Universal::open({inst, "/dev/shm"});
  UniversalSnapshot snap;
  REQUIRE(u.snapshot(snap, 300) == Errc::ok);
  CHECK(snap.eth_ticks.size() == 300);
  CHECK(snap.eth_ticks.meta.complete);
  CHECK(snap.eth_ticks.row(299)[0] == 399 * 1000.0);
  CHECK(snap.eth_ticks.row(299)[4] == 1000 + 399 + 1);
  CHECK(snap.btc_ticks.meta.fresh);
  CHECK(snap.eth_1d.size() == 10);
  CHECK_FALSE(snap.eth_1d.meta.complete);
  CHECK_FALSE(snap.all_complete);
  CHECK(snap.all_fresh);
  CHECK(snap.timestamp_ns > 0);
}
