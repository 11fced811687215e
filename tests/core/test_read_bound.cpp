// Reads are bounded by time, not by a spin count: a writer stopped in the middle of a slot write
// (SIGSTOP inside the write section) for less than the read bound never yields `contended`; one
// stopped for longer yields it once the bound has passed, not before.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "mdshm/seqlock.hpp"
#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;
using namespace std::chrono_literals;

namespace {

// Child: owns the segment; bar 0 is published, then bar 0 is rewritten with trade_count 2 and
// the child stops itself inside that write, sequence odd. It finishes when continued.
[[noreturn]] void stopped_writer(const std::string& inst, int ready_fd) {
  try {
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks"));
    w.publish(make_bar(1000, 1));
    const char c = 'r';
    (void)!::write(ready_fd, &c, 1);
    seqlock::write_slot(ring_of(w.header())[0], 0, make_bar(1000, 2), [] { ::raise(SIGSTOP); });
    for (;;) ::pause();  // keep the segment until killed
  } catch (...) {
    ::_exit(3);
  }
}

struct StoppedWriter {
  ChildGuard child;
  pid_t pid = -1;
  explicit StoppedWriter(const std::string& inst) {
    int p[2];
    REQUIRE(::pipe(p) == 0);
    pid = ::fork();
    if (pid == 0) stopped_writer(inst, p[1]);
    child.pid = pid;
    char c = 0;
    REQUIRE(::read(p[0], &c, 1) == 1);  // segment exists, bar 0 published
    ::close(p[0]);
    ::close(p[1]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, WUNTRACED) == pid);  // now stopped inside the write
    REQUIRE(WIFSTOPPED(status));
  }
};

}  // namespace

TEST_CASE("a writer stopped mid-write for less than the read bound: the read waits, never contended") {
  const auto inst = unique_instance("stop");
  ShmCleanup clean{inst};
  StoppedWriter child(inst);
  OpenOptions oo{inst, "/dev/shm"};
  oo.read_bound = 2s;  // generous, so a loaded CI host cannot make the 50 ms stop look longer
  auto s = Series::open("eth_ticks", oo);
  REQUIRE(s.ok());
  Errc got = Errc::timeout;
  Bar bar{};
  const auto t0 = std::chrono::steady_clock::now();
  std::thread reader([&] { got = s->read(0, bar); });
  std::this_thread::sleep_for(50ms);  // the old spin bound (4,096 pauses) gave up after ~10 µs
  ::kill(child.pid, SIGCONT);
  reader.join();
  CHECK(got == Errc::ok);
  CHECK(bar.trade_count == 2);  // the write the reader waited for
  CHECK(consistent(bar));
  CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
}

TEST_CASE("a writer stopped mid-write for longer than the bound: contended, after the bound") {
  const auto inst = unique_instance("stop2");
  ShmCleanup clean{inst};
  StoppedWriter child(inst);
  OpenOptions oo{inst, "/dev/shm"};
  oo.read_bound = 30ms;
  auto s = Series::open("eth_ticks", oo);
  REQUIRE(s.ok());
  Bar bar{};
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s->read(0, bar) == Errc::contended);  // alive, stopped: not writer_dead
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 30ms);
  CHECK(took < 1s);
  // The newest bar stays readable meanwhile: the latch never waits for the writer.
  CHECK(s->latest(bar) == Errc::ok);
  CHECK(bar.trade_count == 1);
}
