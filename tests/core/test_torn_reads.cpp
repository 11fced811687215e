// Torn-read stress: a writer at full speed, readers in threads and in processes, every bar checked
// against cross-field invariants. Zero torn reads is the only acceptable result.
// MDSHM_STRESS_SCALE scales the read counts (the TSan build runs 1%).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <thread>

#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;

namespace {

double scale() {
  const char* s = std::getenv("MDSHM_STRESS_SCALE");
  return s ? std::atof(s) : 1.0;
}

// Publishes as fast as it can: 63 in-place updates of the bar in progress, then it closes and a new
// bar starts. The small ring (256) is lapped constantly.
void run_writer(publish::SegmentWriter& w, const std::atomic<bool>& stop) {
  std::uint64_t v = 1;
  std::int64_t t = 1000;
  while (!stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 63; ++i) w.publish(make_bar(t, v++, flag::in_progress));
    w.publish(make_bar(t, v++, flag::closed));
    t += 1000;
  }
}

struct Tally {
  std::uint64_t reads = 0, ok = 0, torn = 0, window_errors = 0, contended = 0;
};

// One reader's loop; mixes latest(), last_n() and read_since().
Tally read_loop(const std::string& inst, std::uint64_t reads) {
  Tally t;
  auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
  if (!s) {
    t.torn = ~0ULL;
    return t;
  }
  Bar b{};
  Bar window[8]{};
  Cursor cur;
  while (t.reads < reads) {
    const auto kind = t.reads % 64;
    if (kind == 0) {
      std::size_t n = 0;
      const Errc e = s->last_n(window, n);
      t.reads += n;
      if (e == Errc::contended) ++t.contended;
      if (e != Errc::ok) { ++t.reads; continue; }
      for (std::size_t i = 0; i < n; ++i) {
        if (!consistent(window[i])) ++t.torn;
        if (i > 0 && window[i].open_time_ms != window[i - 1].open_time_ms + 1000) ++t.window_errors;
      }
      t.ok += n;
    } else if (kind == 1) {
      std::size_t n = 0;
      const Errc e = s->read_since(cur, window, n);
      t.reads += n + 1;
      if (e == Errc::ok) {
        t.ok += n;
        for (std::size_t i = 0; i < n; ++i)
          if (!consistent(window[i])) ++t.torn;
      }
    } else {
      ++t.reads;
      const Errc e = s->latest(b);
      if (e == Errc::ok) {
        ++t.ok;
        if (!consistent(b)) ++t.torn;
      } else if (e == Errc::contended) {
        ++t.contended;
      }
    }
  }
  return t;
}

}  // namespace

TEST_CASE("torn reads: 8 reader threads against a full-speed writer") {
  const auto inst = unique_instance("tornt");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks", 256, 1));
  w.publish(make_bar(0, 0, flag::closed));
  std::atomic<bool> stop{false};
  std::thread writer([&] { run_writer(w, stop); });
  const auto per_reader = static_cast<std::uint64_t>(6e7 * scale() / 8);
  std::vector<Tally> tallies(8);
  std::vector<std::thread> readers;
  for (int i = 0; i < 8; ++i) readers.emplace_back([&, i] { tallies[i] = read_loop(inst, per_reader); });
  for (auto& r : readers) r.join();
  stop = true;
  writer.join();
  Tally all;
  for (const auto& t : tallies) {
    all.reads += t.reads;
    all.ok += t.ok;
    all.torn += t.torn;
    all.window_errors += t.window_errors;
    all.contended += t.contended;
    CHECK(t.ok > 0);  // every reader made progress
  }
  INFO("reads " << all.reads << " ok " << all.ok << " contended " << all.contended << " writer updates "
                << w.header()->updates);
  CHECK(all.reads >= static_cast<std::uint64_t>(6e7 * scale()));
  CHECK(all.torn == 0);
  CHECK(all.window_errors == 0);
  CHECK(all.ok > all.reads / 2);
  WARN("threads: " << all.reads << " reads, " << all.ok << " consistent copies, " << all.torn << " torn, "
                   << all.contended << " contended; writer published " << w.header()->updates);
}

TEST_CASE("torn reads: 4 reader processes against a full-speed writer") {
  const auto inst = unique_instance("tornp");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks", 256, 1));
  w.publish(make_bar(0, 0, flag::closed));
  const auto per_reader = static_cast<std::uint64_t>(4e7 * scale() / 4);
  // Fork the readers before the writer thread exists (fork copies only the calling thread).
  std::vector<std::pair<pid_t, int>> kids;
  for (int i = 0; i < 4; ++i) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      const Tally t = read_loop(inst, per_reader);
      (void)!::write(fds[1], &t, sizeof t);
      ::_exit(0);
    }
    ::close(fds[1]);
    kids.emplace_back(pid, fds[0]);
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] { run_writer(w, stop); });
  Tally all;
  for (auto [pid, fd] : kids) {
    Tally t;
    REQUIRE(::read(fd, &t, sizeof t) == static_cast<ssize_t>(sizeof t));
    ::close(fd);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(t.ok > 0);
    all.reads += t.reads;
    all.ok += t.ok;
    all.torn += t.torn;
    all.window_errors += t.window_errors;
    all.contended += t.contended;
  }
  stop = true;
  writer.join();
  CHECK(all.reads >= static_cast<std::uint64_t>(4e7 * scale()));
  CHECK(all.torn == 0);
  CHECK(all.window_errors == 0);
  WARN("processes: " << all.reads << " reads, " << all.ok << " consistent copies, " << all.torn << " torn, "
                     << all.contended << " contended; writer published " << w.header()->updates);
}
