#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>

#include "store_test_util.hpp"

using namespace mdshm::store;
using namespace store_test;

TEST_CASE("bars appended come back after reopening, sorted and intact", "[store]") {
  ScratchDir dir;
  {
    auto s = HistoryStore::open(options(dir.path()));
    CHECK(s.loaded().empty());
    CHECK_THAT(s.notes().at(0), Catch::Contains("created"));
    append_range(s, 0, 100);
    CHECK(s.stats().appended == 100);
    REQUIRE(s.flush().ok());
  }
  CHECK(std::filesystem::file_size(store_path(dir.path(), "test", "eth_1m")) == 128 + 100 * 128);

  auto s = HistoryStore::open(options(dir.path()));
  REQUIRE(s.loaded().size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(same_bar(s.loaded()[i], make_bar(kBase + i * 60'000)));
  CHECK(s.stats().loaded == 100);
  CHECK(s.stats().torn_tail_bytes_cut == 0);
  CHECK(s.stats().corrupt_skipped == 0);
  CHECK(s.notes().empty());
}

TEST_CASE("an amended bar is appended again and the last record wins on load", "[store]") {
  ScratchDir dir;
  {
    auto s = HistoryStore::open(options(dir.path()));
    append_range(s, 0, 10);
    REQUIRE(s.append(make_bar(kBase + 3 * 60'000, 1)).ok());
    REQUIRE(s.append(make_bar(kBase + 3 * 60'000, 2)).ok());
    REQUIRE(s.append(make_bar(kBase + 9 * 60'000, 1)).ok());
  }
  {
    auto s = HistoryStore::open(options(dir.path()));
    REQUIRE(s.loaded().size() == 10);
    CHECK(s.stats().records_read == 13);
    CHECK(same_bar(s.loaded()[3], make_bar(kBase + 3 * 60'000, 2)));
    CHECK(same_bar(s.loaded()[9], make_bar(kBase + 9 * 60'000, 1)));
    CHECK(same_bar(s.loaded()[4], make_bar(kBase + 4 * 60'000, 0)));
    // An amendment in a later session beats the earlier one (sequence continues across opens).
    REQUIRE(s.append(make_bar(kBase + 3 * 60'000, 5)).ok());
  }
  auto s = HistoryStore::open(options(dir.path()));
  CHECK(same_bar(s.loaded()[3], make_bar(kBase + 3 * 60'000, 5)));
}

TEST_CASE("open returns only the newest capacity bars", "[store]") {
  ScratchDir dir;
  auto opt = options(dir.path(), 10);
  opt.compact_factor = 0;
  { auto s = HistoryStore::open(opt); append_range(s, 0, 15); }
  auto s = HistoryStore::open(opt);
  REQUIRE(s.loaded().size() == 10);
  CHECK(s.loaded().front().open_time_ms == kBase + 5 * 60'000);
  CHECK(s.distinct_bars() == 15);  // the rest stays on disk until compaction
}

TEST_CASE("fsync policies", "[store]") {
  ScratchDir dir;
  SECTION("always syncs every append") {
    auto opt = options(dir.path());
    opt.fsync = FsyncPolicy::always;
    auto s = HistoryStore::open(opt);
    append_range(s, 0, 3);
    CHECK(s.stats().syncs == 3);
    CHECK(s.flush().ok());
    CHECK(s.stats().syncs == 3);  // nothing dirty
  }
  SECTION("never syncs unless flushed") {
    auto s = HistoryStore::open(options(dir.path()));
    append_range(s, 0, 3);
    CHECK(s.stats().syncs == 0);
    CHECK(s.maybe_sync(std::chrono::steady_clock::now() + std::chrono::hours(1)).ok());
    CHECK(s.stats().syncs == 0);
    REQUIRE(s.flush().ok());
    CHECK(s.stats().syncs == 1);
  }
  SECTION("interval syncs once the interval has passed") {
    auto opt = options(dir.path());
    opt.fsync = FsyncPolicy::interval;
    opt.fsync_interval = std::chrono::hours(1);
    auto s = HistoryStore::open(opt);
    append_range(s, 0, 3);
    CHECK(s.stats().syncs == 0);
    const auto later = std::chrono::steady_clock::now() + std::chrono::hours(2);
    REQUIRE(s.maybe_sync(later).ok());
    CHECK(s.stats().syncs == 1);
    REQUIRE(s.maybe_sync(later).ok());
    CHECK(s.stats().syncs == 1);  // not dirty any more
  }
  SECTION("interval 0 syncs on every append") {
    auto opt = options(dir.path());
    opt.fsync = FsyncPolicy::interval;
    opt.fsync_interval = std::chrono::milliseconds(0);
    auto s = HistoryStore::open(opt);
    append_range(s, 0, 2);
    CHECK(s.stats().syncs == 2);
  }
}

TEST_CASE("a second writer on the same series is refused", "[store]") {
  ScratchDir dir;
  auto first = HistoryStore::open(options(dir.path()));
  try {
    (void)HistoryStore::open(options(dir.path()));
    FAIL("second open succeeded");
  } catch (const StoreError& e) {
    CHECK(e.kind == StoreError::Kind::locked);
    CHECK_THAT(e.what(), Catch::Contains("eth_1m.bars") && Catch::Contains("locked"));
  }
}

TEST_CASE("bad bars are refused before they reach the disk", "[store]") {
  ScratchDir dir;
  auto s = HistoryStore::open(options(dir.path()));
  auto unaligned = make_bar(kBase + 1);
  auto st = s.append(unaligned);
  CHECK_FALSE(st.ok());
  CHECK(st.sys_errno == EINVAL);
  auto negative = make_bar(kBase);
  negative.volume = -1;
  CHECK_FALSE(s.append(negative).ok());
  CHECK(s.stats().appended == 0);
  CHECK(s.stats().append_errors == 2);
}

TEST_CASE("a failed write names the path and the cause and leaves the file whole", "[store]") {
  ScratchDir dir;
  auto opt = options(dir.path());
  opt.retry_interval = std::chrono::milliseconds(0);  // retry at the next append
  {
    auto s = HistoryStore::open(opt);
    append_range(s, 0, 2);
    // File size limit 100 bytes past the end: the next record is written partly, then EFBIG (the
    // same path as ENOSPC). The partial record must be cut off again.
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit tight = old;
    tight.rlim_cur = 128 + 2 * 128 + 100;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &tight) == 0);
    auto st = s.append(make_bar(kBase + 2 * 60'000));
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    CHECK_FALSE(st.ok());
    CHECK(st.sys_errno == EFBIG);
    CHECK_THAT(st.message, Catch::Contains(s.path()) && Catch::Contains("EFBIG"));
    CHECK(std::filesystem::file_size(s.path()) == 128 + 2 * 128);
    // And the store keeps working once space is back.
    REQUIRE(s.append(make_bar(kBase + 2 * 60'000)).ok());
  }
  auto s = HistoryStore::open(opt);
  CHECK(s.loaded().size() == 3);
  CHECK(s.stats().torn_tail_bytes_cut == 0);
}

TEST_CASE("an unusable directory is an error naming the path and the cause", "[store]") {
  ScratchDir dir;
  write_file(dir.path() + "/file", "x");
  auto opt = options(dir.path() + "/file");
  try {
    (void)HistoryStore::open(opt);
    FAIL("open succeeded");
  } catch (const StoreError& e) {
    CHECK(e.kind == StoreError::Kind::io);
    CHECK(e.sys_errno == ENOTDIR);
    CHECK_THAT(e.what(), Catch::Contains(dir.path() + "/file") && Catch::Contains("ENOTDIR"));
  }
  auto bad = options(dir.path());
  bad.series.series_id = "Bad Name";
  CHECK_THROWS_AS(HistoryStore::open(bad), StoreError);
}

TEST_CASE("the store answers which ranges REST must fetch", "[store][missing]") {
  ScratchDir dir;
  {
    auto s = HistoryStore::open(options(dir.path()));
    append_range(s, 0, 5);
    append_range(s, 8, 10);
  }
  auto s = HistoryStore::open(options(dir.path()));
  constexpr std::int64_t M = 60'000;
  CHECK(s.missing(kBase - 2 * M, kBase + 12 * M) ==
        std::vector<TimeRange>{{kBase - 2 * M, kBase}, {kBase + 5 * M, kBase + 8 * M}, {kBase + 10 * M, kBase + 12 * M}});
  REQUIRE(s.append(make_bar(kBase + 6 * M)).ok());  // REST filled one bar of the gap (out of order)
  CHECK(s.contains(kBase + 6 * M));
  CHECK(s.missing(kBase, kBase + 10 * M) == std::vector<TimeRange>{{kBase + 5 * M, kBase + 6 * M}, {kBase + 7 * M, kBase + 8 * M}});
}
