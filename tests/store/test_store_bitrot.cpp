// Bit rot: flipped bits anywhere in a store file never cost more than the records they hit. Good
// records are salvaged, damage is kept aside (never cut or deleted) and counted; a torn last append
// is still cut as before.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>
#include <set>

#include "store/store_file_io.hpp"
#include "store_test_util.hpp"

using namespace mdshm::store;
using namespace store_test;
namespace fs = std::filesystem;

namespace {
constexpr std::size_t H = kFileHeaderSize;
constexpr std::size_t R = kStoreRecordSize;
constexpr std::int64_t M = 60'000;

void flip(std::string& bytes, std::size_t bit) { bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8))); }

std::vector<fs::path> damaged_copies(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "test"))
    if (e.path().filename().string().find(".damaged-") != std::string::npos) out.push_back(e.path());
  return out;
}

}  // namespace

TEST_CASE("one flipped bit in every record: nothing is cut or deleted, the file is kept aside", "[store][bitrot]") {
  ScratchDir dir;
  constexpr int kBars = 729;  // 93,440 bytes with the header, the size of the reported file
  const std::string good = make_store_bytes(dir.path(), kBars);
  REQUIRE(good.size() == 93'440);
  const std::string path = store_path(dir.path(), "test", "eth_1m");
  std::string rotten = good;
  std::mt19937 rng(7);
  for (int i = 0; i < kBars; ++i) flip(rotten, (H + i * R) * 8 + rng() % (R * 8));
  write_file(path, rotten);

  auto s = HistoryStore::open(options(dir.path()));
  CHECK(s.loaded().empty());  // no record survived its checksum
  CHECK(s.stats().torn_tail_bytes_cut == 0);
  CHECK(s.stats().corrupt_skipped == kBars);
  CHECK(s.health().corrupt_records == kBars);
  REQUIRE_FALSE(s.notes().empty());
  CHECK_THAT(s.notes().back(), Catch::Contains("kept the damaged one as"));
  const auto aside = damaged_copies(dir.path());
  REQUIRE(aside.size() == 1);
  CHECK(read_file(aside[0].string()) == rotten);  // byte for byte what was found
  // The store works on: appends go to a fresh file.
  REQUIRE(s.append(make_bar(kBase + kBars * M)).ok());
}

TEST_CASE("a flipped bit at any of many positions costs at most the record it hits", "[store][bitrot]") {
  ScratchDir dir;
  constexpr int kBars = 24;
  const std::string good = make_store_bytes(dir.path(), kBars);
  const std::string path = store_path(dir.path(), "test", "eth_1m");
  std::mt19937 rng(11);
  // Every bit of one record in the middle, and random bits across records, pairs included.
  std::vector<std::vector<std::size_t>> cases;
  for (std::size_t b = 0; b < R * 8; ++b) cases.push_back({(H + 5 * R) * 8 + b});
  for (int k = 0; k < 300; ++k) {
    std::vector<std::size_t> bits;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int j = 0; j < n; ++j) bits.push_back(H * 8 + rng() % (kBars * R * 8));
    cases.push_back(bits);
  }
  for (const auto& bits : cases) {
    std::string bytes = good;
    std::set<std::size_t> hit;
    for (auto b : bits) {
      flip(bytes, b);
      hit.insert((b / 8 - H) / R);
    }
    // A flip can cancel another in the same byte: what counts is which records differ now.
    std::set<std::size_t> damaged;
    for (auto r : hit)
      if (bytes.compare(H + r * R, R, good, H + r * R, R) != 0) damaged.insert(r);
    fs::remove_all(fs::path(dir.path()) / "test");
    fs::create_directories(fs::path(dir.path()) / "test");
    write_file(path, bytes);
    INFO("flipped bits " << Catch::Detail::stringify(bits));

    {
      auto s = HistoryStore::open(options(dir.path()));
      // Every undamaged record is back, exactly; no damaged one is.
      REQUIRE(s.loaded().size() == kBars - damaged.size());
      for (const auto& b : s.loaded()) {
        const auto index = static_cast<std::size_t>((b.open_time_ms - kBase) / M);
        REQUIRE_FALSE(damaged.count(index));
        REQUIRE(same_bar(b, make_bar(b.open_time_ms)));
    }
    const bool only_last = damaged.size() == 1 && *damaged.begin() == kBars - 1;
    if (damaged.empty()) {
      CHECK(damaged_copies(dir.path()).empty());
    } else if (only_last) {
      // Indistinguishable from a torn last append: cut, as before.
      CHECK(s.stats().torn_tail_bytes_cut == R);
    } else {
      CHECK(s.stats().torn_tail_bytes_cut == 0);
      CHECK(s.stats().corrupt_skipped == damaged.size());
      REQUIRE(damaged_copies(dir.path()).size() == 1);
      CHECK(read_file(damaged_copies(dir.path())[0].string()) == bytes);
    }
    }
    // Reopening the salvaged file finds nothing more to do.
    auto again = HistoryStore::open(options(dir.path()));
    CHECK(again.loaded().size() == kBars - damaged.size());
    CHECK(again.stats().corrupt_skipped == 0);
    CHECK(again.stats().torn_tail_bytes_cut == 0);
  }
}

TEST_CASE("zeros after the last record (space a crash left unwritten) are cut, not kept as damage", "[store][bitrot]") {
  ScratchDir dir;
  const std::string good = make_store_bytes(dir.path(), 8);
  const std::string path = store_path(dir.path(), "test", "eth_1m");
  write_file(path, good + std::string(5 * R + 17, '\0'));
  auto s = HistoryStore::open(options(dir.path()));
  CHECK(s.loaded().size() == 8);
  CHECK(s.stats().torn_tail_bytes_cut == 5 * R + 17);
  CHECK(damaged_copies(dir.path()).empty());
  CHECK(fs::file_size(path) == good.size());
}

TEST_CASE("damage found twice in the same second keeps both damaged copies", "[store][bitrot]") {
  ScratchDir dir;
  const std::string good = make_store_bytes(dir.path(), 8);
  const std::string path = store_path(dir.path(), "test", "eth_1m");
  for (int round = 0; round < 2; ++round) {
    std::string bytes = good;
    flip(bytes, (H + 2 * R) * 8 + 100 + static_cast<std::size_t>(round));
    write_file(path, bytes);
    auto s = HistoryStore::open(options(dir.path()));
    CHECK(s.loaded().size() == 7);
  }
  CHECK(damaged_copies(dir.path()).size() == 2);
}
