// On-disk format of the history store: one file per series, <dir>/<instance>/<series>.bars.
//
//   0                128              256              384
//   +-- FileHeader --+--- Record 0 ---+--- Record 1 ---+ ...   (append-only)
//
// Records are fixed-size (128 bytes) on purpose: a corrupt length or a flipped bit can never shift
// the framing of the records after it, so one bad record costs exactly one bar, and a torn tail is
// simply "file size minus header is not a multiple of 128" (plus trailing records that fail their
// checksum). Everything is native-endian; the header records the endianness and refuses a foreign one.
//
// CRC-32C (Castagnoli) through Boost.CRC: it detects all burst errors up to 32 bits and is the
// checksum ext4, iSCSI and most storage formats use for small records.
#pragma once

#include <boost/crc.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "mdshm/layout.hpp"
#include "model/market.hpp"

namespace mdshm::store {

inline constexpr std::uint64_t kStoreMagic = 0x524142534844444DULL;  // "MDDHSBAR" bytes on little-endian
// Version 1: 128-byte FileHeader, 128-byte Record holding a 112-byte mdshm::Bar.
inline constexpr std::uint32_t kStoreFormatVersion = 1;

using Crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

inline std::uint32_t crc32c(const void* data, std::size_t len) {
  Crc32c crc;
  crc.process_bytes(data, len);
  return crc.checksum();
}

// FNV-1a over the Bar's field offsets: a build whose Bar differs refuses files of the other, even if
// someone forgot to bump kStoreFormatVersion. (The segment's kLayoutHash covers the whole segment
// header too, which the store does not depend on.)
constexpr std::uint64_t bar_layout_hash() {
  std::uint64_t h = 0xCBF29CE484222325ULL;
  const std::uint64_t parts[] = {sizeof(Bar),
                                 offsetof(Bar, open_time_ms),    offsetof(Bar, open),
                                 offsetof(Bar, high),            offsetof(Bar, low),
                                 offsetof(Bar, close),           offsetof(Bar, volume),
                                 offsetof(Bar, quote_volume),    offsetof(Bar, taker_buy_volume),
                                 offsetof(Bar, taker_buy_quote_volume), offsetof(Bar, trade_count),
                                 offsetof(Bar, first_trade_id),  offsetof(Bar, last_trade_id),
                                 offsetof(Bar, update_wall_ns),  offsetof(Bar, flags)};
  for (auto p : parts) h = mdshm::detail::fnv1a(h, p);
  return h;
}

struct FileHeader {
  std::uint64_t magic;
  std::uint32_t format_version;
  std::uint32_t header_size;
  std::uint32_t record_size;
  std::uint32_t interval_s;
  std::uint32_t endian_tag;
  std::uint32_t reserved0;
  std::uint64_t bar_layout_hash;
  char symbol[kSymbolLen];        // NUL-padded
  char series_id[kSeriesIdLen];   // NUL-padded
  std::int64_t created_wall_ns;
  std::uint8_t reserved1[28];
  std::uint32_t header_crc;       // CRC-32C of every byte before it
};
static_assert(sizeof(FileHeader) == 128 && std::is_trivially_copyable_v<FileHeader>);
static_assert(offsetof(FileHeader, header_crc) == 124);

struct Record {
  std::uint32_t crc;       // CRC-32C of bytes [4, 128): length, sequence and bar
  std::uint32_t length;    // sizeof(Bar); anything else is corrupt
  std::uint64_t sequence;  // per file, strictly increasing in append order: the highest wins
  Bar bar;
};
static_assert(sizeof(Record) == 128 && std::is_trivially_copyable_v<Record>);
static_assert(offsetof(Record, bar) == 16);

inline constexpr std::size_t kFileHeaderSize = sizeof(FileHeader);
inline constexpr std::size_t kStoreRecordSize = sizeof(Record);

struct SeriesIdentity {
  std::string series_id;
  std::string symbol;
  std::uint32_t interval_s = 0;
};

inline std::uint32_t record_crc(const Record& r) {
  return crc32c(reinterpret_cast<const std::byte*>(&r) + 4, sizeof(Record) - 4);
}

inline Record make_record(const Bar& bar, std::uint64_t sequence) {
  Record r{};
  r.length = sizeof(Bar);
  r.sequence = sequence;
  r.bar = bar;
  r.crc = record_crc(r);
  return r;
}

inline FileHeader make_header(const SeriesIdentity& id, std::int64_t created_wall_ns) {
  FileHeader h{};
  h.magic = kStoreMagic;
  h.format_version = kStoreFormatVersion;
  h.header_size = kFileHeaderSize;
  h.record_size = kStoreRecordSize;
  h.interval_s = id.interval_s;
  h.endian_tag = kEndianTag;
  h.bar_layout_hash = bar_layout_hash();
  std::memcpy(h.symbol, id.symbol.data(), std::min(id.symbol.size(), kSymbolLen - 1));
  std::memcpy(h.series_id, id.series_id.data(), std::min(id.series_id.size(), kSeriesIdLen - 1));
  h.created_wall_ns = created_wall_ns;
  h.header_crc = crc32c(&h, offsetof(FileHeader, header_crc));
  return h;
}

// Empty string when the header belongs to `id` and this build; otherwise why not.
inline std::string header_problem(const FileHeader& h, const SeriesIdentity& id) {
  if (h.magic != kStoreMagic) return "bad magic: not an mdshm history store file";
  if (h.header_crc != crc32c(&h, offsetof(FileHeader, header_crc))) return "header checksum mismatch";
  if (h.endian_tag != kEndianTag) return "written on a machine of other endianness";
  if (h.format_version != kStoreFormatVersion)
    return "format version " + std::to_string(h.format_version) + ", this build reads " +
           std::to_string(kStoreFormatVersion);
  if (h.header_size != kFileHeaderSize || h.record_size != kStoreRecordSize ||
      h.bar_layout_hash != bar_layout_hash())
    return "record layout differs from this build";
  const auto sid = field_string(h.series_id, kSeriesIdLen);
  const auto sym = field_string(h.symbol, kSymbolLen);
  if (sid != id.series_id || sym != id.symbol || h.interval_s != id.interval_s)
    return "file holds series '" + std::string(sid) + "' " + std::string(sym) + " " +
           std::to_string(h.interval_s) + "s, expected '" + id.series_id + "' " + id.symbol + " " +
           std::to_string(id.interval_s) + "s";
  return {};
}

// A record is usable only if its checksum holds AND the bar is plausible for the series: a
// checksum collision or a record written by a buggy build must still never yield a bad bar.
inline bool record_valid(const Record& r, std::uint32_t interval_s) {
  if (r.crc != record_crc(r) || r.length != sizeof(Bar)) return false;
  const Bar& b = r.bar;
  if (bar_open_ms(b.open_time_ms, interval_s) != b.open_time_ms) return false;
  const double values[] = {b.open, b.high, b.low, b.close, b.volume, b.quote_volume,
                           b.taker_buy_volume, b.taker_buy_quote_volume};
  for (double v : values)
    if (!std::isfinite(v) || v < 0) return false;
  return b.low <= b.high;
}

}  // namespace mdshm::store
