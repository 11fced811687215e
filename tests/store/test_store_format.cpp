#include <catch2/catch.hpp>

#include <cmath>

#include "store/store_format.hpp"

using namespace mdshm::store;

TEST_CASE("crc32c matches the Castagnoli check value", "[store][format]") {
  const char check[] = "123456789";
  CHECK(crc32c(check, 9) == 0xE3069283u);
}

TEST_CASE("a record is valid only with its checksum, length and a sane bar", "[store][format]") {
  mdshm::Bar b{};
  b.open_time_ms = 1660435260000;
  b.open = b.high = b.low = b.close = 1600.5;
  Record r = make_record(b, 7);
  CHECK(record_valid(r, 60));
  CHECK_FALSE(record_valid(r, 3600));  // not aligned to an hour

  Record flipped = r;
  reinterpret_cast<unsigned char*>(&flipped)[40] ^= 0x01;
  CHECK_FALSE(record_valid(flipped, 60));

  mdshm::Bar nan_bar = b;
  nan_bar.close = std::nan("");
  CHECK_FALSE(record_valid(make_record(nan_bar, 8), 60));  // checksum fine, values impossible

  Record bad_len = r;
  bad_len.length = 111;
  bad_len.crc = record_crc(bad_len);
  CHECK_FALSE(record_valid(bad_len, 60));
}

TEST_CASE("the header names its series and refuses another", "[store][format]") {
  const SeriesIdentity id{"eth_1m", "ETHUSDT", 60};
  const FileHeader h = make_header(id, 1);
  CHECK(header_problem(h, id).empty());
  CHECK_THAT(header_problem(h, {"eth_1m", "ETHUSDT", 3600}), Catch::Contains("expected 'eth_1m' ETHUSDT 3600s"));
  CHECK_THAT(header_problem(h, {"eth_1m", "BTCUSDT", 60}), Catch::Contains("BTCUSDT"));

  FileHeader v2 = h;
  v2.format_version = 2;
  v2.header_crc = crc32c(&v2, offsetof(FileHeader, header_crc));
  CHECK_THAT(header_problem(v2, id), Catch::Contains("format version 2"));

  FileHeader damaged = h;
  damaged.interval_s = 61;  // crc not updated
  CHECK_THAT(header_problem(damaged, id), Catch::Contains("checksum"));

  FileHeader garbage{};
  CHECK_THAT(header_problem(garbage, id), Catch::Contains("magic"));
}
