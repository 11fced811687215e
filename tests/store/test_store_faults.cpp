// A store on a disk that fills up or is read-only: the failure is visible (health, counters) and
// heals: every bar appended meanwhile is on disk once the disk takes writes again. Real faults on a
// small tmpfs this test mounts (root only; skipped with a message where mounting is not allowed).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "store_test_util.hpp"

using namespace mdshm;
using namespace mdshm::store;
using namespace store_test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t M = 60'000;

// A size-limited tmpfs mounted on a scratch directory for the test's lifetime.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& options) {
    mounted_ = ::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0;
    if (!mounted_) why_ = std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return dir_.path(); }
  bool remount(const std::string& options) {
    return ::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
  }

 private:
  ScratchDir dir_;
  bool mounted_ = false;
  std::string why_;
};

// Fills the filesystem with one file until ENOSPC; returns its path.
std::string fill_disk(const std::string& dir) {
  const std::string path = dir + "/filler";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const std::string block(4096, 'f');
  while (::write(fd, block.data(), block.size()) > 0) {
  }
  const int err = errno;
  // Byte-sized writes take whatever is left of the last page.
  while (::write(fd, "f", 1) > 0) {
  }
  ::close(fd);
  CHECK(err == ENOSPC);
  return path;
}

StoreOptions fast_retry(StoreOptions o) {
  o.retry_interval = 0ms;
  return o;
}

}  // namespace

TEST_CASE("a full disk: appends fail visibly, the bars wait in memory and are written after space returns",
          "[store][faults]") {
  SmallDisk disk("size=256k,mode=0700");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (" << disk.why() << "): the ENOSPC test needs root");
    return;
  }
  {
    auto s = HistoryStore::open(fast_retry(options(disk.path())));
    std::vector<StoreHealth> seen;
    s.observe([&](const StoreHealth& h) { seen.push_back(h); });
    append_range(s, 0, 10);
    const std::string filler = fill_disk(disk.path());

    // The file's last page has room for a few records; beyond that every append fails.
    int first_failure = -1;
    for (int i = 10; i < 200; ++i) {
      const auto st = s.append(make_bar(kBase + i * M));
      if (!st.ok() && first_failure < 0) {
        first_failure = i;
        CHECK(st.sys_errno == ENOSPC);
        CHECK_THAT(st.message, Catch::Contains("ENOSPC"));
      }
  }
  REQUIRE(first_failure > 0);
  CHECK(s.health().state == StoreState::failing);
  CHECK(s.health().pending == static_cast<std::uint64_t>(200 - first_failure));
  CHECK(s.health().errors >= 1);
  CHECK(s.health().last_errno == ENOSPC);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().state == StoreState::failing);
  CHECK_FALSE(s.contains(kBase + 199 * M));

  // Space returns: the next attempt writes the backlog, in order, and the store is healthy again.
  fs::remove(filler);
  REQUIRE(s.maybe_sync(std::chrono::steady_clock::now()).ok());
  CHECK(s.health().state == StoreState::ok);
  CHECK(s.health().pending == 0);
  CHECK(seen.back().state == StoreState::ok);
  CHECK(s.missing(kBase, kBase + 200 * M).empty());
  REQUIRE(s.append(make_bar(kBase + 200 * M)).ok());
  REQUIRE(s.flush().ok());
  }

  // The truth: every bar appended, each exactly as given.
  auto again = HistoryStore::open(options(disk.path()));
  REQUIRE(again.loaded().size() == 201);
  for (int i = 0; i <= 200; ++i) REQUIRE(same_bar(again.loaded()[static_cast<std::size_t>(i)], make_bar(kBase + i * M)));
  CHECK(again.stats().corrupt_skipped == 0);
  CHECK(again.stats().torn_tail_bytes_cut == 0);
}

TEST_CASE("a read-only store directory: the store is unavailable, not silently absent, and recovers",
          "[store][faults]") {
  SmallDisk disk("size=256k,mode=0700");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (" << disk.why() << "): the EROFS test needs root");
    return;
  }
  REQUIRE(disk.remount("ro,size=256k"));
  CHECK_THROWS_AS(HistoryStore::open(options(disk.path())), StoreError);  // what the daemon used to hit

  {
    auto s = HistoryStore::open_or_defer(fast_retry(options(disk.path())));
    CHECK(s.health().state == StoreState::unavailable);
    CHECK(s.health().last_errno == EROFS);
    REQUIRE_FALSE(s.notes().empty());
    CHECK_THAT(s.notes().front(), Catch::Contains("Read-only file system") && Catch::Contains("retrying"));
    for (int i = 0; i < 20; ++i) {
      const auto st = s.append(make_bar(kBase + i * M));
      CHECK_FALSE(st.ok());
  }
  CHECK(s.health().state == StoreState::unavailable);
  CHECK(s.health().pending == 20);
  CHECK(s.health().errors >= 20);  // every retry is counted

  REQUIRE(disk.remount("rw,size=256k"));
  REQUIRE(s.append(make_bar(kBase + 20 * M)).ok());
  CHECK(s.health().state == StoreState::ok);
  CHECK(s.health().pending == 0);
  REQUIRE(s.flush().ok());
  }

  auto again = HistoryStore::open(options(disk.path()));
  REQUIRE(again.loaded().size() == 21);
  for (int i = 0; i <= 20; ++i) CHECK(same_bar(again.loaded()[static_cast<std::size_t>(i)], make_bar(kBase + i * M)));
}

TEST_CASE("a failing store retries at most once per retry interval", "[store][faults]") {
  SmallDisk disk("ro,size=64k,mode=0700");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (" << disk.why() << ")");
    return;
  }
  auto o = options(disk.path());
  o.retry_interval = 1h;
  auto s = HistoryStore::open_or_defer(o);
  const auto errors = s.health().errors;
  for (int i = 0; i < 50; ++i) CHECK_FALSE(s.append(make_bar(kBase + i * M)).ok());
  CHECK(s.health().errors == errors);  // no attempt before the interval passed
  CHECK(s.health().pending == 50);
}

TEST_CASE("the backlog is bounded: beyond kMaxPendingBars the oldest are dropped and counted", "[store][faults]") {
  SmallDisk disk("ro,size=64k,mode=0700");
  if (!disk.mounted()) {
    WARN("cannot mount a tmpfs here (" << disk.why() << ")");
    return;
  }
  auto o = options(disk.path(), 1000, 1, "eth_ticks");
  o.retry_interval = 1h;
  auto s = HistoryStore::open_or_defer(o);
  std::vector<Bar> bars;
  for (std::size_t i = 0; i < kMaxPendingBars + 10; ++i) bars.push_back(make_bar(kBase + static_cast<std::int64_t>(i) * 1000));
  CHECK_FALSE(s.append(bars).ok());
  CHECK(s.health().pending == kMaxPendingBars);
  CHECK(s.health().lost == 10);
}
