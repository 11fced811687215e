// kill -9 of a writer process in the middle of its updates: readers learn "writer dead" within a
// second and never hang; a new writer re-attaches with the history intact and a new generation.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;
using namespace std::chrono_literals;

namespace {

// Child: take the instance, continue from the newest bar, publish at full speed until killed.
[[noreturn]] void writer_child(const std::string& inst, bool slow) {
  try {
    publish::PublisherOptions o;
    o.segments = seg_opts(inst);
    publish::Publisher pub(o, {spec("eth_ticks", 512, 1)});
    auto& w = pub.at(0);
    std::uint64_t v = w.newest() ? w.newest()->trade_count + 1 : 1;
    std::int64_t t = w.newest() ? w.newest()->open_time_ms + 1000 : 1000;
    for (;;) {
      for (int i = 0; i < 31; ++i) w.publish(make_bar(t, v++, flag::in_progress));
      w.publish(make_bar(t, v++, flag::closed));
      t += 1000;
      if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (...) {
    ::_exit(3);
  }
}

// Owns a forked writer: SIGKILL and reap on scope exit, so a failed assertion leaves no orphan.
struct Child {
  pid_t pid = -1;
  explicit Child(const std::string& inst, bool slow = false) {
    pid = ::fork();
    if (pid == 0) writer_child(inst, slow);
  }
  int kill_and_reap() {
    int status = 0;
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    pid = -1;
    return status;
  }
  ~Child() { kill_and_reap(); }
};

bool wait_for_head(const std::string& inst, std::uint64_t at_least, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
    if (s && s->head() >= at_least && s->writer_state() == WriterState::alive) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

}  // namespace

TEST_CASE("kill -9 of the writer: dead within 1 s, history intact after re-attach") {
  const auto inst = unique_instance("kill");
  ShmCleanup clean{inst};
  std::mt19937 rng(7);
  std::uint64_t last_generation = 0;
  for (int round = 0; round < 8; ++round) {
    INFO("round " << round);
    Child child(inst);
    REQUIRE(child.pid > 0);
    REQUIRE(wait_for_head(inst, 600, 20s));  // more than a lap of the 512-slot ring
    auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
    REQUIRE(s.ok());
    CHECK(s->generation() > last_generation);
    last_generation = s->generation();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));
    REQUIRE(::kill(child.pid, SIGKILL) == 0);  // mid-update, almost surely: it publishes non-stop

    // A blocked reader comes back with writer_dead well within a second, never hangs. (The
    // first waits may see the last updates the writer made before the signal landed.)
    const auto t0 = std::chrono::steady_clock::now();
    WaitResult r = WaitResult::updated;
    while (r == WaitResult::updated && std::chrono::steady_clock::now() - t0 < 5s) r = s->wait(s->updates(), 5s);
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(r == WaitResult::writer_dead);
    CHECK(waited < 1s);
    CHECK(s->writer_state() == WriterState::dead);
    CHECK_FALSE(s->is_fresh(10s));
    const int status = child.kill_and_reap();
    CHECK(WIFSIGNALED(status));

    // ...and everything it reads is consistent. At most one slot (the one being written when the
    // signal landed) is unreadable until a writer re-attaches, and the reader is told why.
    const std::uint64_t head = s->head();
    std::size_t unreadable = 0;
    std::int64_t prev_open = -1;
    for (std::uint64_t i = head - 512; i < head; ++i) {
      Bar b{};
      const Errc e = s->read(i, b);
      // The oldest bar may already be overwritten by a new bar whose head update the kill cut
      // off: that is lapping, correctly reported.
      if (e == Errc::lapped && i == head - 512) continue;
      if (e != Errc::ok) {
        CHECK(e == Errc::writer_dead);
        ++unreadable;
        prev_open = -1;
        continue;
      }
      // A slot torn by an earlier kill was repaired from the latch or flagged on re-attach.
      if (!(b.flags & flag::not_repaired)) CHECK(consistent(b));
      if (prev_open >= 0) CHECK(b.open_time_ms == prev_open + 1000);
      prev_open = b.open_time_ms;
    }
    CHECK(unreadable <= 1);
  }
  // A final writer re-attaches: same bars, next generation, and it carries on from them.
  auto before = Series::open("eth_ticks", {inst, "/dev/shm"});
  REQUIRE(before.ok());
  const auto head_before = before->head();
  Bar closed_before{};
  REQUIRE(before->read(head_before - 2, closed_before) == Errc::ok);
  Child last(inst, /*slow=*/true);  // 100 bars/s: the bars we compare are not lapped meanwhile
  REQUIRE(wait_for_head(inst, head_before + 10, 20s));
  CHECK(before->generation() == last_generation + 1);
  CHECK(before->restarted());
  Bar closed_after{};
  REQUIRE(before->read(head_before - 2, closed_after) == Errc::ok);
  CHECK(closed_after.trade_count == closed_before.trade_count);
  CHECK(closed_after.open_time_ms == closed_before.open_time_ms);
}
