// What open() does with files damaged by crashes, bit rot or a change of configuration.
#include <catch2/catch.hpp>

#include <filesystem>

#include "store/store_file_io.hpp"
#include "store_test_util.hpp"

using namespace mdshm::store;
using namespace store_test;
namespace fs = std::filesystem;

namespace {
constexpr std::size_t H = kFileHeaderSize;
constexpr std::size_t R = kStoreRecordSize;
constexpr std::int64_t M = 60'000;
}  // namespace

TEST_CASE("a torn tail at every byte offset of the last record is cut and the rest kept", "[store][recovery]") {
  ScratchDir dir;
  const std::string good = make_store_bytes(dir.path(), 5);
  REQUIRE(good.size() == H + 5 * R);
  const std::string path = store_path(dir.path(), "test", "eth_1m");

  for (std::size_t k = 0; k < R; ++k) {
    INFO("partial last record of " << k << " bytes");
    write_file(path, good.substr(0, H + 4 * R + k));
    {
      auto s = HistoryStore::open(options(dir.path()));
      REQUIRE(s.loaded().size() == 4);
      for (int i = 0; i < 4; ++i) REQUIRE(same_bar(s.loaded()[i], make_bar(kBase + i * M)));
      REQUIRE(s.stats().torn_tail_bytes_cut == k);
      REQUIRE(s.stats().corrupt_skipped == 0);
      REQUIRE(fs::file_size(path) == H + 4 * R);
      // Appending after the cut keeps the framing: the next open sees 5 good bars.
      REQUIRE(s.append(make_bar(kBase + 4 * M)).ok());
    }
    auto s = HistoryStore::open(options(dir.path()));
    REQUIRE(s.loaded().size() == 5);
    REQUIRE(s.stats().torn_tail_bytes_cut == 0);
  }
}

TEST_CASE("a last record with garbage from any byte on is cut, never returned", "[store][recovery]") {
  ScratchDir dir;
  const std::string good = make_store_bytes(dir.path(), 5);
  const std::string path = store_path(dir.path(), "test", "eth_1m");
  for (std::size_t k = 0; k < R; ++k) {
    INFO("last record garbled from byte " << k);
    std::string bytes = good;
    for (std::size_t i = H + 4 * R + k; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ i);
    write_file(path, bytes);
    auto s = HistoryStore::open(options(dir.path()));
    REQUIRE(s.loaded().size() == 4);
    REQUIRE(s.stats().torn_tail_bytes_cut == R);
    REQUIRE(fs::file_size(path) == H + 4 * R);
  }
}

TEST_CASE("a corrupt record in the middle is skipped and counted", "[store][recovery]") {
  ScratchDir dir;
  const std::string good = make_store_bytes(dir.path(), 10);
  const std::string path = store_path(dir.path(), "test", "eth_1m");

  auto check_skips = [&](const std::string& bytes, int skipped_index) {
    write_file(path, bytes);
    auto s = HistoryStore::open(options(dir.path()));
    REQUIRE(s.loaded().size() == 9);
    CHECK(s.stats().corrupt_skipped == 1);
    CHECK(s.stats().torn_tail_bytes_cut == 0);
    CHECK_FALSE(s.contains(kBase + skipped_index * M));
    for (const auto& b : s.loaded()) CHECK(same_bar(b, make_bar(b.open_time_ms)));
    CHECK_THAT(s.notes().at(0), Catch::Contains("skipped 1 corrupt"));
    // REST will be asked for exactly the lost bar.
    CHECK(s.missing(kBase, kBase + 10 * M) ==
          std::vector<TimeRange>{{kBase + skipped_index * M, kBase + (skipped_index + 1) * M}});
  };
  SECTION("a flipped bit in a price") {
    std::string bytes = good;
    bytes[H + 4 * R + 16 + 8] ^= 0x10;
    check_skips(bytes, 4);
  }
  SECTION("a zeroed record") {
    std::string bytes = good;
    std::fill_n(bytes.begin() + H + 2 * R, R, '\0');
    check_skips(bytes, 2);
  }
  SECTION("a damaged length field does not shift the framing") {
    std::string bytes = good;
    bytes[H + 7 * R + 4] = 0x7F;
    check_skips(bytes, 7);
  }
  SECTION("a record with a good checksum but an unaligned open time") {
    std::string bytes = good;
    const Record forged = make_record(make_bar(kBase + 5 * M + 1), 5);
    bytes.replace(H + 5 * R, R, reinterpret_cast<const char*>(&forged), R);
    check_skips(bytes, 5);
  }
}

TEST_CASE("a file of another series, interval or version is refused or moved aside", "[store][recovery]") {
  ScratchDir dir;
  make_store_bytes(dir.path(), 3);
  const std::string path = store_path(dir.path(), "test", "eth_1m");

  auto hourly = options(dir.path(), 1000, 3600);
  try {
    (void)HistoryStore::open(hourly);
    FAIL("open of a 1m file as 1h succeeded");
  } catch (const StoreError& e) {
    CHECK(e.kind == StoreError::Kind::header_mismatch);
    CHECK_THAT(e.what(), Catch::Contains(path) && Catch::Contains("expected 'eth_1m' ETHUSDT 3600s"));
  }
  auto btc = options(dir.path(), 1000, 60, "eth_1m", "BTCUSDT");
  CHECK_THROWS_WITH(HistoryStore::open(btc), Catch::Contains("BTCUSDT"));
  CHECK(fs::file_size(path) == H + 3 * R);  // refusing touches nothing

  SECTION("moved aside on request, and a fresh file started") {
    hourly.on_mismatch = MismatchPolicy::move_aside;
    auto s = HistoryStore::open(hourly);
    CHECK(s.loaded().empty());
    REQUIRE(s.notes().size() >= 1);
    CHECK_THAT(s.notes().at(0), Catch::Contains("moved") && Catch::Contains(".bad-"));
    int bad_files = 0;
    for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
      if (e.path().filename().string().starts_with("eth_1m.bars.bad-")) {
        ++bad_files;
        CHECK(fs::file_size(e.path()) == H + 3 * R);
      }
    CHECK(bad_files == 1);
    append_range(s, 0, 2, 3600);
  }
  SECTION("another format version") {
    std::string bytes = read_file(path);
    FileHeader h;
    std::memcpy(&h, bytes.data(), H);
    h.format_version = 99;
    h.header_crc = crc32c(&h, offsetof(FileHeader, header_crc));
    bytes.replace(0, H, reinterpret_cast<const char*>(&h), H);
    write_file(path, bytes);
    CHECK_THROWS_WITH(HistoryStore::open(options(dir.path())), Catch::Contains("format version 99"));
  }
  SECTION("not a store file at all, or shorter than a header") {
    write_file(path, std::string(300, 'x'));
    CHECK_THROWS_WITH(HistoryStore::open(options(dir.path())), Catch::Contains("magic"));
    write_file(path, "short");
    CHECK_THROWS_WITH(HistoryStore::open(options(dir.path())), Catch::Contains("shorter than a store header"));
  }
}

TEST_CASE("compaction keeps the newest capacity bars and their amendments", "[store][compaction]") {
  ScratchDir dir;
  auto opt = options(dir.path(), 50);  // compact beyond 100 records
  {
    auto s = HistoryStore::open(opt);
    append_range(s, 0, 140);
    CHECK(s.stats().compactions == 1);
    CHECK(s.stats().records_on_disk <= 100);
    CHECK(s.distinct_bars() == s.stats().records_on_disk);
    CHECK_FALSE(s.contains(kBase));  // dropped by compaction: missing() now reports it
    REQUIRE(s.append(make_bar(kBase + 130 * M, 3)).ok());
    CHECK(fs::file_size(s.path()) == H + s.stats().records_on_disk * R);
  }
  auto s = HistoryStore::open(opt);
  REQUIRE(s.loaded().size() == 50);
  for (int i = 0; i < 50; ++i) {
    const std::int64_t t = kBase + (90 + i) * M;
    CHECK(same_bar(s.loaded()[i], make_bar(t, t == kBase + 130 * M ? 3 : 0)));
  }
  CHECK(s.stats().corrupt_skipped == 0);
  CHECK_FALSE(fs::exists(temp_path_for(s.path())));
}

TEST_CASE("a crash between writing the compacted temp file and the rename loses nothing", "[store][compaction]") {
  ScratchDir uncompacted, compacted;
  auto big = options(uncompacted.path(), 50);
  big.compact_factor = 0;
  { auto s = HistoryStore::open(big); append_range(s, 0, 120); }
  const std::string path = store_path(uncompacted.path(), "test", "eth_1m");
  const std::string original = read_file(path);

  // The temp file exactly as a compaction writes it: compact a copy of the store.
  fs::create_directories(fs::path(store_path(compacted.path(), "test", "eth_1m")).parent_path());
  write_file(store_path(compacted.path(), "test", "eth_1m"), original);
  { auto s = HistoryStore::open(options(compacted.path(), 50)); CHECK(s.stats().compactions == 1); }
  const std::string compacted_bytes = read_file(store_path(compacted.path(), "test", "eth_1m"));
  REQUIRE(compacted_bytes.size() == H + 50 * R);

  SECTION("complete temp file left behind") { write_file(temp_path_for(path), compacted_bytes); }
  SECTION("half-written temp file left behind") {
    write_file(temp_path_for(path), compacted_bytes.substr(0, H + 20 * R + 77));
  }
  auto s = HistoryStore::open(big);
  CHECK(read_file(path) == original);  // the old file was used, unchanged
  REQUIRE(s.loaded().size() == 50);
  CHECK(s.loaded().back().open_time_ms == kBase + 119 * M);
  CHECK(s.distinct_bars() == 120);
  CHECK_FALSE(fs::exists(temp_path_for(path)));
  CHECK_THAT(s.notes().at(0), Catch::Contains("interrupted compaction"));
}
