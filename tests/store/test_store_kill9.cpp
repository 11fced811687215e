// A real crash test: a child appends bars (new ones and amendments) with fsync "always" and reports
// each synced (open time, version) through a pipe; the parent kills it with SIGKILL at random
// moments, reopens the store and checks that every reported bar is there, intact, at its reported
// version or later, and that nothing corrupt comes back. Capacity is small, so the kills also land
// during compactions (temp write, rename) and during opens.
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>

#include "store_test_util.hpp"

using namespace mdshm::store;
using namespace store_test;

namespace {

constexpr std::int64_t M = 60'000;
constexpr std::uint64_t kCapacity = 8;  // compacts every ~9 appends: many kills land in one

struct Report {
  std::int64_t open_ms;
  std::int64_t version;
};

StoreOptions kill_options(const std::string& dir) {
  auto o = options(dir, kCapacity);
  o.fsync = FsyncPolicy::always;
  return o;
}

// The child: never returns. Exit codes other than death by SIGKILL mean a failure.
[[noreturn]] void writer_child(const std::string& dir, int report_fd, unsigned seed) {
  try {
    auto s = HistoryStore::open(kill_options(dir));
    std::map<std::int64_t, std::int64_t> version;
    for (const auto& b : s.loaded()) version[b.open_time_ms] = b.last_trade_id;
    std::int64_t next = version.empty() ? kBase : version.rbegin()->first + M;
    std::mt19937 rng(seed);
    for (;;) {
      Report r{};
      if (!version.empty() && rng() % 4 == 0) {  // amend one of the last few bars
        auto it = version.rbegin();
        std::advance(it, static_cast<long>(rng() % std::min<std::size_t>(version.size(), 5)));
        r = {it->first, ++it->second};
      } else {
        r = {next, 0};
        version[next] = 0;
        next += M;
      }
      if (!s.append(make_bar(r.open_ms, r.version)).ok()) ::_exit(3);
      if (::write(report_fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) ::_exit(4);
    }
  } catch (...) {
    ::_exit(2);
  }
}

void drain(int fd, std::map<std::int64_t, std::int64_t>& reported, int timeout_ms) {
  Report r{};
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, timeout_ms) > 0) {
    const ssize_t n = ::read(fd, &r, sizeof r);
    if (n <= 0) return;  // EOF: the child is gone
    REQUIRE(n == static_cast<ssize_t>(sizeof r));  // writes of <= PIPE_BUF bytes are atomic
    auto& v = reported[r.open_ms];
    v = std::max(v, r.version);
  }
}

}  // namespace

TEST_CASE("kill -9 of a writer never loses a synced bar nor yields a corrupt one", "[store][stress]") {
  ScratchDir dir;
  std::mt19937 rng(20240611);
  std::map<std::int64_t, std::int64_t> reported;  // open time -> highest synced version
  std::uint64_t torn_total = 0;
  // At least 12 kills, more on a slow disk until the writer got far enough to compact many times.
  for (int round = 0; round < 60 && (round < 12 || reported.size() <= 10 * kCapacity); ++round) {
    INFO("round " << round);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const unsigned child_seed = rng();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      writer_child(dir.path(), fds[1], child_seed);
    }
    ::close(fds[1]);
    const auto run_for = std::chrono::milliseconds(5 + rng() % 120);
    const auto deadline = std::chrono::steady_clock::now() + run_for;
    while (std::chrono::steady_clock::now() < deadline) drain(fds[0], reported, 1);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    drain(fds[0], reported, 0);  // what the child reported before it died
    ::close(fds[0]);
    INFO("child status " << status);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);

    auto s = HistoryStore::open(kill_options(dir.path()));
    torn_total += s.stats().torn_tail_bytes_cut;
    CHECK(s.stats().corrupt_skipped == 0);
    const auto& bars = s.loaded();
    if (reported.empty()) continue;
    REQUIRE_FALSE(bars.empty());
    // Every bar returned is intact and the series is contiguous (the child never skips a minute).
    for (std::size_t i = 0; i < bars.size(); ++i) {
      REQUIRE(same_bar(bars[i], make_bar(bars[i].open_time_ms, bars[i].last_trade_id)));
      if (i > 0) REQUIRE(bars[i].open_time_ms == bars[i - 1].open_time_ms + M);
    }
    // Every reported bar that still fits in the capacity window is there, at least as new.
    const std::int64_t newest = bars.back().open_time_ms;
    REQUIRE(newest >= reported.rbegin()->first);
    for (const auto& [t, v] : reported) {
      if (t <= newest - static_cast<std::int64_t>(kCapacity) * M) continue;
      const auto it = std::lower_bound(bars.begin(), bars.end(), t,
                                       [](const mdshm::Bar& b, std::int64_t x) { return b.open_time_ms < x; });
      INFO("reported bar " << t << " version " << v);
      REQUIRE(it != bars.end());
      REQUIRE(it->open_time_ms == t);
      REQUIRE(it->last_trade_id >= v);
    }
  }
  INFO("bars reported " << reported.size() << ", torn tail bytes cut " << torn_total);
  CHECK(reported.size() > 10 * kCapacity);  // long enough for many compactions
}
