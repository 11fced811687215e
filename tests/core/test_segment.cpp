// Writer and reader of one segment: create, publish, read, re-attach, replace, lapping.
#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;

TEST_CASE("create, publish, read back through the client") {
  const auto inst = unique_instance("seg");
  ShmCleanup clean{inst};
  publish::AttachInfo info;
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1m", 16, 60), &info);
  CHECK(info.outcome == publish::AttachOutcome::created);
  CHECK(info.generation == 1);

  auto s = Series::open("eth_1m", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  CHECK(s->symbol() == "ETHUSDT");
  CHECK(s->interval_s() == 60);
  CHECK(s->capacity() == 16);
  Bar b{};
  CHECK(s->latest(b) == Errc::empty);

  REQUIRE(w.publish(make_bar(60'000, 1)));
  REQUIRE(w.publish(make_bar(60'000, 2)));  // same bar, updated in place
  CHECK(w.head() == 1);
  std::uint64_t idx = 99;
  REQUIRE(s->latest(b, &idx) == Errc::ok);
  CHECK(idx == 0);
  CHECK(b.trade_count == 2);
  CHECK(consistent(b));

  REQUIRE(w.publish(make_bar(60'000, 3, flag::closed)));
  REQUIRE(w.publish(make_bar(120'000, 4)));
  CHECK(w.head() == 2);
  CHECK_FALSE(w.publish(make_bar(0, 5)));  // older than the newest bar: refused
  CHECK(s->updates() == 4);

  std::vector<Bar> out(10);
  std::size_t n = 0;
  REQUIRE(s->last_n(out, n) == Errc::ok);
  REQUIRE(n == 2);
  CHECK(out[0].trade_count == 3);
  CHECK(out[0].flags == flag::closed);
  CHECK(out[1].trade_count == 4);
  CHECK(s->read(5, b) == Errc::not_held);
}

TEST_CASE("lapping is detected and counted by read_since") {
  const auto inst = unique_instance("lap");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks", 8, 1));
  auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  Cursor c;
  std::vector<Bar> out(4);
  for (std::uint64_t i = 0; i < 3; ++i) w.publish(make_bar(1000 * static_cast<std::int64_t>(i + 1), i, flag::closed));
  std::size_t n = 0;
  REQUIRE(s->read_since(c, out, n) == Errc::ok);
  CHECK(n == 3);
  CHECK(c.next == 3);
  CHECK(c.lapped == 0);
  for (std::uint64_t i = 3; i < 20; ++i) w.publish(make_bar(1000 * static_cast<std::int64_t>(i + 1), i, flag::closed));
  // head = 20, capacity 8: bars 3..11 are gone.
  REQUIRE(s->read_since(c, out, n) == Errc::ok);
  CHECK(c.lapped == 9);
  REQUIRE(n == 4);
  CHECK(out[0].trade_count == 12);
  CHECK(c.next == 16);
  Bar b;
  CHECK(s->read(3, b) == Errc::lapped);
  // The bar in progress is returned again on the next call, updated.
  w.publish(make_bar(21'000, 20, flag::in_progress));
  REQUIRE(s->read_since(c, out, n) == Errc::ok);
  REQUIRE(n == 4);
  CHECK(c.next == 20);
  CHECK(out[3].trade_count == 19);
  REQUIRE(s->read_since(c, out, n) == Errc::ok);
  REQUIRE(n == 1);
  CHECK(out[0].trade_count == 20);
  CHECK(c.next == 20);
  w.publish(make_bar(21'000, 21, flag::in_progress));
  REQUIRE(s->read_since(c, out, n) == Errc::ok);
  REQUIRE(n == 1);
  CHECK(out[0].trade_count == 21);
}

TEST_CASE("zero-copy closed view is validated after use") {
  const auto inst = unique_instance("view");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1h", 8, 3600));
  auto s = Series::open("eth_1h", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  for (std::uint64_t i = 0; i < 5; ++i)
    w.publish(make_bar(3'600'000 * static_cast<std::int64_t>(i + 1), i, i < 4 ? flag::closed : flag::in_progress));
  ClosedView v;
  REQUIRE(s->closed_view(10, v) == Errc::ok);
  REQUIRE(v.size() == 4);
  CHECK(v.close(0) == 1001);
  CHECK(v.open_time_ms(3) == 4 * 3'600'000);
  CHECK(v.valid());
  // An amendment of a closed bar invalidates the view.
  REQUIRE(w.amend(1, make_bar(2 * 3'600'000, 1, flag::closed | flag::reconciled)));
  CHECK_FALSE(v.valid());
  REQUIRE(s->closed_view(3, v) == Errc::ok);
  CHECK(v.valid());
  // Lapping its first bar invalidates it too.
  for (std::uint64_t i = 5; i < 12; ++i) w.publish(make_bar(3'600'000 * static_cast<std::int64_t>(i + 1), i, flag::closed));
  CHECK_FALSE(v.valid());
}

TEST_CASE("re-attach keeps bars and bumps the generation; incompatible is replaced") {
  const auto inst = unique_instance("att");
  ShmCleanup clean{inst};
  {
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1d", 32, 86400));
    for (std::uint64_t i = 0; i < 5; ++i) w.publish(make_bar(86'400'000 * static_cast<std::int64_t>(i), i, flag::closed));
  }
  auto reader = Series::open("eth_1d", {inst, "/dev/shm"});
  REQUIRE(reader.ok());
  CHECK(reader->generation() == 1);
  publish::AttachInfo info;
  {
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1d", 32, 86400), &info);
    CHECK(info.outcome == publish::AttachOutcome::reattached);
    CHECK(info.generation == 2);
    CHECK(info.bars_kept == 5);
    CHECK(w.head() == 5);
    REQUIRE(w.newest());
    CHECK(w.newest()->trade_count == 4);
    CHECK(reader->restarted());
    CHECK(reader->head() == 5);
  }
  {
    // Another capacity: incompatible, so the old file is retired and replaced.
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1d", 64, 86400), &info);
    CHECK(info.outcome == publish::AttachOutcome::replaced);
    CHECK_THAT(info.reason, Catch::Contains("capacity 32"));
    CHECK(w.head() == 0);
    Bar b;
    // The old reader sees `retired`, re-opens by name and finds the new, empty segment.
    CHECK(reader->latest(b) == Errc::empty);
    CHECK(reader->capacity() == 64);
  }
}

TEST_CASE("world-writable mode is refused; mode and permissions applied") {
  const auto inst = unique_instance("mode");
  ShmCleanup clean{inst};
  auto o = seg_opts(inst);
  o.mode = 0666;
  CHECK_THROWS_WITH(publish::SegmentWriter::open(o, spec("x")), Catch::Contains("world-writable"));
  o.mode = 0640;
  auto w = publish::SegmentWriter::open(o, spec("x"));
  struct stat st {};
  REQUIRE(::stat(w.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
}
