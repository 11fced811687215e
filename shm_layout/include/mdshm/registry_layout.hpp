// The consumer registry: one small file per registered consumer, in the directory
// paths::consumers_dir(shm_dir, instance). It is for operators only (who reads, how far behind,
// alive or not); nothing on the publish path reads it, and no wake-up depends on it.
//
// Why files and not one shared table: a table that every consumer maps read-write lets any one
// of them truncate it (SIGBUS in everyone who maps it), fill it (nobody else can register) or
// write absurd values into the daemon's view. Here every record has exactly one writer, its
// owner, and the kernel enforces that:
//
//   - The daemon creates the directory, owned by its own user, group = the segments' group, mode
//     drwxrws--T (sticky + setgid, group-writable; see kConsumersDirMode). Group members create
//     files in it; the sticky bit means only a file's owner or the directory's owner (the daemon)
//     may unlink or rename it, exactly like /tmp.
//   - A consumer creates its record with O_CREAT|O_EXCL|O_NOFOLLOW under a random name
//     (kRecordPrefix + pid + random hex), mode 0644, writes the whole record with one pwrite and
//     only then maps it read-write. No other user can write, truncate or delete that file.
//   - The daemon and the inspector never map anyone's record: they fstatat it (regular files only),
//     open it O_NOFOLLOW|O_NONBLOCK, pread kConsumerRecordSize bytes into a local copy and check
//     every field with validate_consumer_record() before using any. A short, long, garbage or
//     half-written file is just an invalid record. They look at no more than kMaxConsumerFiles
//     directory entries per pass.
//   - Names are bytes chosen by whoever wrote the file: printable_name() escapes everything but
//     printable ASCII before a name reaches a terminal.
//
// Reclaim (the daemon, every second): a record is kept while its process is alive, i.e.
//   pid exists and is not a zombie, its /proc start time equals start_ticks, boot_id equals the
//   running kernel's, and the file's owner uid is the real or effective uid of that process.
// The last rule unmasks forged entries: a file claiming "pid 1" made by an ordinary user is owned
// by that user, not by root, so it is removed. Also removed: invalid records older than
// kInvalidRecordGraceSec (by ctime, which no user can set back), entries that are not regular files,
// and records beyond kMaxRecordsPerProcess claiming one process. /proc hidden (hidepid): kept.
// A consumer removes its own record when it closes; kill -9 leaves it for the daemon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mdshm/layout.hpp"

namespace mdshm {

inline constexpr std::uint64_t kConsumerMagic = 0x4E4F434D4853444DULL;  // "MDSHMCON" on little-endian
inline constexpr std::uint16_t kConsumerMajor = 2;  // 1 was the shared @registry table
inline constexpr std::uint16_t kConsumerMinor = 0;
inline constexpr std::size_t kConsumerNameLen = 32;  // NUL-padded, printable ASCII when written by our client

// File naming and the directory's shape.
inline constexpr std::string_view kRecordPrefix = "c.";        // c.<pid>.<16 hex digits>
inline constexpr std::string_view kSeriesManifestName = ".series";  // daemon-owned: its series ids, one a line
inline constexpr unsigned kConsumersDirBaseMode = 01000 | 02000 | 0700;  // sticky, setgid, owner rwx
// ... plus rwx for the group when the segments are group-readable, r-x for others when they are.
inline constexpr unsigned kRecordMode = 0644;
// Bounds that keep every pass over the directory cheap, whatever others put in it.
inline constexpr std::size_t kMaxConsumerFiles = 4096;       // entries looked at per pass
inline constexpr std::size_t kMaxRecordsPerProcess = 64;     // records one live process may hold
inline constexpr std::int64_t kInvalidRecordGraceSec = 2;    // a record being written is briefly invalid
inline constexpr std::size_t kSeriesManifestMax = 1024 * kSeriesIdLen;  // bytes read of .series (32 KiB)
// The most series one instance may publish: every id (at most 31 bytes and a newline) fits the
// manifest readers read. mdshmd --check-config and start-up refuse more.
inline constexpr std::size_t kMaxSeriesPerInstance = kSeriesManifestMax / kSeriesIdLen;

// ---------------------------------------------------------------------------------------------
// The record (192 bytes, little-endian, 8-byte fields 8-aligned). Offsets are named constants
// derived from the previous one and checked against the struct below.
inline constexpr std::size_t kConMagicOffset = 0;                                 // u64 kConsumerMagic
inline constexpr std::size_t kConMajorOffset = kConMagicOffset + 8;               // u16
inline constexpr std::size_t kConMinorOffset = kConMajorOffset + 2;               // u16
inline constexpr std::size_t kConRecordSizeOffset = kConMinorOffset + 2;          // u32 = kConsumerRecordSize
inline constexpr std::size_t kConLayoutHashOffset = kConRecordSizeOffset + 4;     // u64 kConsumerLayoutHash
inline constexpr std::size_t kConPidOffset = kConLayoutHashOffset + 8;            // u32 owner process
inline constexpr std::size_t kConBlockedOffset = kConPidOffset + 4;               // u32 1 while in wait()
inline constexpr std::size_t kConStartTicksOffset = kConBlockedOffset + 4;        // u64 /proc/<pid>/stat field 22
inline constexpr std::size_t kConBootIdOffset = kConStartTicksOffset + 8;         // 16 bytes
inline constexpr std::size_t kConRegisteredWallOffset = kConBootIdOffset + kBootIdLen;  // u64 ns
inline constexpr std::size_t kConLastReadWallOffset = kConRegisteredWallOffset + 8;     // u64 ns, 0 = never
inline constexpr std::size_t kConCursorOffset = kConLastReadWallOffset + 8;       // u64 next bar index
inline constexpr std::size_t kConReadsOffset = kConCursorOffset + 8;              // u64 poll() calls
inline constexpr std::size_t kConLappedOffset = kConReadsOffset + 8;              // u64 bars lost to lapping
inline constexpr std::size_t kConInstanceOffset = kConLappedOffset + 8;           // char[32]
inline constexpr std::size_t kConSeriesIdOffset = kConInstanceOffset + kInstanceLen;    // char[32]
inline constexpr std::size_t kConNameOffset = kConSeriesIdOffset + kSeriesIdLen;        // char[32]
inline constexpr std::size_t kConsumerRecordSize = kConNameOffset + kConsumerNameLen;    // 192

struct alignas(kCacheLine) ConsumerRecord {
  std::uint64_t magic;
  std::uint16_t major;
  std::uint16_t minor;
  std::uint32_t record_size;
  std::uint64_t layout_hash;
  std::uint32_t pid;
  std::uint32_t blocked;
  std::uint64_t start_ticks;
  std::uint8_t boot_id[kBootIdLen];
  std::uint64_t registered_wall_ns;
  std::uint64_t last_read_wall_ns;
  std::uint64_t cursor;
  std::uint64_t reads;
  std::uint64_t lapped;
  char instance[kInstanceLen];
  char series_id[kSeriesIdLen];
  char name[kConsumerNameLen];
};
static_assert(sizeof(ConsumerRecord) == kConsumerRecordSize);
static_assert(kConsumerRecordSize % kCacheLine == 0);
#define MDSHM_CHECK_CON_OFFSET(field, off) static_assert(offsetof(ConsumerRecord, field) == (off), #field)
MDSHM_CHECK_CON_OFFSET(magic, kConMagicOffset);
MDSHM_CHECK_CON_OFFSET(major, kConMajorOffset);
MDSHM_CHECK_CON_OFFSET(minor, kConMinorOffset);
MDSHM_CHECK_CON_OFFSET(record_size, kConRecordSizeOffset);
MDSHM_CHECK_CON_OFFSET(layout_hash, kConLayoutHashOffset);
MDSHM_CHECK_CON_OFFSET(pid, kConPidOffset);
MDSHM_CHECK_CON_OFFSET(blocked, kConBlockedOffset);
MDSHM_CHECK_CON_OFFSET(start_ticks, kConStartTicksOffset);
MDSHM_CHECK_CON_OFFSET(boot_id, kConBootIdOffset);
MDSHM_CHECK_CON_OFFSET(registered_wall_ns, kConRegisteredWallOffset);
MDSHM_CHECK_CON_OFFSET(last_read_wall_ns, kConLastReadWallOffset);
MDSHM_CHECK_CON_OFFSET(cursor, kConCursorOffset);
MDSHM_CHECK_CON_OFFSET(reads, kConReadsOffset);
MDSHM_CHECK_CON_OFFSET(lapped, kConLappedOffset);
MDSHM_CHECK_CON_OFFSET(instance, kConInstanceOffset);
MDSHM_CHECK_CON_OFFSET(series_id, kConSeriesIdOffset);
MDSHM_CHECK_CON_OFFSET(name, kConNameOffset);
#undef MDSHM_CHECK_CON_OFFSET

// FNV-1a over the version, the record size and every field's offset and size.
constexpr std::uint64_t compute_consumer_layout_hash() {
  std::uint64_t h = 0xCBF29CE484222325ULL;
  const std::uint64_t parts[] = {kConsumerMajor, kConsumerRecordSize,
                                 kConMagicOffset, 8, kConMajorOffset, 2, kConMinorOffset, 2,
                                 kConRecordSizeOffset, 4, kConLayoutHashOffset, 8, kConPidOffset, 4,
                                 kConBlockedOffset, 4, kConStartTicksOffset, 8, kConBootIdOffset, kBootIdLen,
                                 kConRegisteredWallOffset, 8, kConLastReadWallOffset, 8, kConCursorOffset, 8,
                                 kConReadsOffset, 8, kConLappedOffset, 8, kConInstanceOffset, kInstanceLen,
                                 kConSeriesIdOffset, kSeriesIdLen, kConNameOffset, kConsumerNameLen};
  for (auto p : parts) h = detail::fnv1a(h, p);
  return h;
}
inline constexpr std::uint64_t kConsumerLayoutHash = compute_consumer_layout_hash();

// ---------------------------------------------------------------------------------------------
// Validation of a local copy (never of mapped memory someone else controls).
enum class RecordProblem {
  none = 0,
  wrong_size,     // the file is not exactly one record long
  bad_magic,
  version_mismatch,
  hash_mismatch,
  bad_identity,   // pid 0 or beyond the kernel's limit, no start time
  bad_names,      // a name field without NUL, an invalid instance or series id, an empty name
};

inline std::string_view to_string(RecordProblem p) {
  switch (p) {
    case RecordProblem::none: return "ok";
    case RecordProblem::wrong_size: return "not one record long";
    case RecordProblem::bad_magic: return "bad magic";
    case RecordProblem::version_mismatch: return "record version differs";
    case RecordProblem::hash_mismatch: return "record layout hash differs";
    case RecordProblem::bad_identity: return "impossible pid or start time";
    case RecordProblem::bad_names: return "name fields invalid";
  }
  return "unknown";
}

inline bool nul_terminated(const char* field, std::size_t len) {
  for (std::size_t i = 0; i < len; ++i)
    if (field[i] == '\0') return true;
  return false;
}

// `file_size` is what fstat says; `r` is the copy read from the file.
inline RecordProblem validate_consumer_record(const ConsumerRecord& r, std::uint64_t file_size) {
  if (file_size != kConsumerRecordSize) return RecordProblem::wrong_size;
  if (r.magic != kConsumerMagic) return RecordProblem::bad_magic;
  if (r.major != kConsumerMajor) return RecordProblem::version_mismatch;
  if (r.layout_hash != kConsumerLayoutHash || r.record_size != kConsumerRecordSize) return RecordProblem::hash_mismatch;
  if (r.pid == 0 || r.pid > (1U << 22) || r.start_ticks == 0) return RecordProblem::bad_identity;  // PID_MAX_LIMIT
  if (!nul_terminated(r.instance, kInstanceLen) || !nul_terminated(r.series_id, kSeriesIdLen) ||
      !nul_terminated(r.name, kConsumerNameLen))
    return RecordProblem::bad_names;
  if (!valid_instance(field_string(r.instance, kInstanceLen)) ||
      !valid_series_id(field_string(r.series_id, kSeriesIdLen)) || r.name[0] == '\0')
    return RecordProblem::bad_names;
  return RecordProblem::none;
}

// What our client accepts as a consumer name: 1..31 bytes of printable ASCII.
constexpr bool valid_consumer_name(std::string_view s) {
  if (s.empty() || s.size() >= kConsumerNameLen) return false;
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

// A name as it may be shown on a terminal: printable ASCII stays (a backslash is doubled), every
// other byte becomes \xNN. Escape sequences and non-ASCII bytes from a forged record thus stay inert.
inline std::string printable_name(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

}  // namespace mdshm
