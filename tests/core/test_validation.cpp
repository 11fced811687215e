// Segment validation: whatever bytes a reader finds at a segment path, it gets a typed error,
// never a crash or an out-of-bounds read.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <vector>

#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;

namespace {
std::vector<std::uint8_t> read_file(const std::string& p) {
  std::vector<std::uint8_t> v;
  FILE* f = std::fopen(p.c_str(), "rb");
  REQUIRE(f);
  std::uint8_t buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
  std::fclose(f);
  return v;
}
void write_file(const std::string& p, const std::uint8_t* data, std::size_t n) {
  const std::string tmp = p + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  REQUIRE(f);
  if (n) REQUIRE(std::fwrite(data, 1, n, f) == n);
  std::fclose(f);
  REQUIRE(::rename(tmp.c_str(), p.c_str()) == 0);
}
template <class T>
void poke(std::vector<std::uint8_t>& img, std::size_t off, T v) {
  std::memcpy(img.data() + off, &v, sizeof v);
}
}  // namespace

TEST_CASE("each header problem gets its own error") {
  const auto inst = unique_instance("val");
  ShmCleanup clean{inst};
  std::string path;
  {
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1m", 16, 60));
    for (int i = 0; i < 3; ++i) w.publish(make_bar(60'000 * (i + 1), static_cast<std::uint64_t>(i), flag::closed));
    path = w.path();
  }
  const auto good = read_file(path);
  const OpenOptions oo{inst, "/dev/shm"};
  REQUIRE(Series::open("eth_1m", oo).ok());

  struct Case {
    const char* what;
    std::function<void(std::vector<std::uint8_t>&)> mutate;
    Errc expect;
  };
  const std::vector<Case> cases = {
      {"magic", [](auto& i) { poke<std::uint64_t>(i, kMagicOffset, 0x1234); }, Errc::bad_magic},
      {"major", [](auto& i) { poke<std::uint16_t>(i, kLayoutMajorOffset, kLayoutMajor + 1); }, Errc::version_mismatch},
      {"hash", [](auto& i) { poke<std::uint64_t>(i, kLayoutHashOffset, kLayoutHash ^ 1); }, Errc::hash_mismatch},
      {"state", [](auto& i) { poke<std::uint32_t>(i, kStateOffset, 0); }, Errc::not_ready},
      {"endian", [](auto& i) { poke<std::uint32_t>(i, kEndianOffset, 0x04030201); }, Errc::arch_mismatch},
      {"record size", [](auto& i) { poke<std::uint32_t>(i, kRecordSizeOffset, 64); }, Errc::bad_geometry},
      {"capacity huge", [](auto& i) { poke<std::uint64_t>(i, kCapacityOffset, 1ULL << 60); }, Errc::bad_geometry},
      {"capacity zero", [](auto& i) { poke<std::uint64_t>(i, kCapacityOffset, 0); }, Errc::bad_geometry},
      {"capacity beyond file", [](auto& i) { poke<std::uint64_t>(i, kCapacityOffset, 17); }, Errc::truncated},
      {"truncated", [](auto& i) { i.resize(i.size() - 1); }, Errc::truncated},
      {"tiny", [](auto& i) { i.resize(100); }, Errc::too_small},
      {"empty", [](auto& i) { i.clear(); }, Errc::too_small},
      {"series id unterminated", [](auto& i) { std::memset(i.data() + kSeriesIdOffset, 'a', kSeriesIdLen); }, Errc::bad_names},
      {"series id bad chars", [](auto& i) { i[kSeriesIdOffset] = '/'; }, Errc::bad_names},
      {"state unknown", [](auto& i) { poke<std::uint32_t>(i, kStateOffset, 7); }, Errc::bad_state},
      {"state garbage", [](auto& i) { poke<std::uint32_t>(i, kStateOffset, 0xFFFFFFFF); }, Errc::bad_state},
      {"series id of another series", [](auto& i) { std::memcpy(i.data() + kSeriesIdOffset, "eth_1h", 7); },
       Errc::name_mismatch},
      {"instance of another instance", [](auto& i) { std::memcpy(i.data() + kInstanceOffset, "other", 6); },
       Errc::name_mismatch},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto img = good;
    c.mutate(img);
    write_file(path, img.data(), img.size());
    auto s = Series::open("eth_1m", oo);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == c.expect);
    CHECK_THAT(s.error().message, Catch::Contains(path));
  }
}

TEST_CASE("garbage headers in a loop never crash a reader") {
  const auto inst = unique_instance("fuzz");
  ShmCleanup clean{inst};
  std::string path;
  {
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks", 8, 1));
    for (int i = 0; i < 20; ++i) w.publish(make_bar(1000 * (i + 1), static_cast<std::uint64_t>(i), flag::closed));
    path = w.path();
  }
  const auto good = read_file(path);
  const OpenOptions oo{inst, "/dev/shm"};
  std::mt19937_64 rng(42);
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto img = good;
    const int kind = iter % 4;
    if (kind == 0) {  // random bytes in the header
      for (int k = 0; k < 8; ++k) img[rng() % kHeaderSize] = static_cast<std::uint8_t>(rng());
    } else if (kind == 1) {  // random 64-bit values at field offsets
      const std::size_t offs[] = {kCapacityOffset, kHeadOffset, kRingOffsetOffset, kLatchSeqOffset, kUpdatesOffset,
                                  kHeaderSizeOffset, kIntervalOffset, kGenerationOffset};
      poke<std::uint64_t>(img, offs[rng() % std::size(offs)], rng() >> (rng() % 64));
    } else if (kind == 2) {  // truncation anywhere
      img.resize(rng() % img.size());
    } else {  // garbage ring: slot indices and sequences
      for (int k = 0; k < 16; ++k) img[kHeaderSize + rng() % (img.size() - kHeaderSize)] = static_cast<std::uint8_t>(rng());
    }
    write_file(path, img.data(), img.size());
    auto s = Series::open("eth_ticks", oo);
    if (!s) {
      ++refused;
      continue;
    }
    ++opened;
    // Whatever it says, every read must stay in bounds and return a value.
    Bar b{};
    (void)s->latest(b);
    std::vector<Bar> out(16);
    std::size_t n = 0;
    (void)s->last_n(out, n);
    CHECK(n <= s->capacity());
    Cursor c;
    (void)s->read_since(c, out, n);
    ClosedView v;
    if (s->closed_view(8, v) == Errc::ok)
      for (std::size_t i = 0; i < v.size(); ++i) (void)v.close(i);
  }
  CHECK(opened > 0);
  CHECK(refused > 0);
}

TEST_CASE("wrong permissions and missing segments are clear errors") {
  const auto inst = unique_instance("perm");
  ShmCleanup clean{inst};
  auto missing = Series::open("nothing_here", {inst, "/dev/shm"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(Series::open("../etc", {inst, "/dev/shm"}).error().code == Errc::invalid_argument);

  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1m", 8, 60));
  if (::geteuid() == 0) {
    // root bypasses file modes; check the mode the writer set instead.
    struct stat st {};
    REQUIRE(::stat(w.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0002) == 0);
  } else {
    REQUIRE(::chmod(w.path().c_str(), 0) == 0);
    auto s = Series::open("eth_1m", {inst, "/dev/shm"});
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == Errc::permission_denied);
  }
}

TEST_CASE("a segment renamed to another series' name is refused") {
  const auto inst = unique_instance("ren");
  ShmCleanup clean{inst};
  std::string path;
  {
    auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1m", 16, 60));
    w.publish(make_bar(60'000, 1, flag::closed));
    path = w.path();
  }
  const std::string planted = paths::segment("/dev/shm", inst, "btc_1m");
  const auto img = read_file(path);
  write_file(planted, img.data(), img.size());
  auto s = Series::open("btc_1m", {inst, "/dev/shm"});
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code == Errc::name_mismatch);
  auto by_path = Series::open_path(planted, {inst, "/dev/shm"});
  REQUIRE_FALSE(by_path.ok());
  CHECK(by_path.error().code == Errc::name_mismatch);
  CHECK(Series::open_path(path, {inst, "/dev/shm"}).ok());
}

TEST_CASE("slots that disagree with the head are corruption, not lapping or contention") {
  const auto inst = unique_instance("slot");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_1m", 16, 60));
  for (int i = 0; i < 5; ++i) w.publish(make_bar(60'000 * (i + 1), static_cast<std::uint64_t>(i), flag::closed));
  auto s = Series::open("eth_1m", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  BarSlot* ring = ring_of(w.header());
  Bar b{};
  REQUIRE(s->read(2, b) == Errc::ok);
  std::atomic_ref<std::uint64_t>(ring[2].bar_index).store(100);  // beyond the head (5)
  CHECK(s->read(2, b) == Errc::corrupt);
  std::atomic_ref<std::uint64_t>(ring[2].bar_index).store(kEmptySlot);  // held bar gone
  CHECK(s->read(2, b) == Errc::corrupt);
  std::atomic_ref<std::uint64_t>(ring[2].bar_index).store(1);  // an older bar where 2 must be
  CHECK(s->read(2, b) == Errc::corrupt);
  std::atomic_ref<std::uint64_t>(ring[2].bar_index).store(2);
  CHECK(s->read(2, b) == Errc::ok);
  CHECK(s->read(5, b) == Errc::not_held);  // not written yet: the ordinary answer
}

TEST_CASE("the layout hash covers types, not only offsets") {
  static_assert(mdshm::detail::type_code<std::uint64_t>() != mdshm::detail::type_code<double>());
  static_assert(mdshm::detail::type_code<std::int64_t>() != mdshm::detail::type_code<std::uint64_t>());
  static_assert(mdshm::detail::type_code<char[16]>() != mdshm::detail::type_code<char[32]>());
  CHECK(kLayoutHash == compute_layout_hash());
}
