// mdshm segment layout — the binary contract between mdshmd (the only writer) and every reader.
//
// One segment per series, a file named /dev/shm/mdshm.<instance>/<series> (paths.hpp).
// docs/LAYOUT.md is the prose version of this file; keep the two in step.
//
//   0                                                               4096
//   +--------------------------- SegmentHeader ----------------------+
//   | line 0  identity: magic, major/minor, state, hash, geometry    |  immutable after create
//   | line 1  symbol, series id                                      |  immutable after create
//   | line 2  instance, created time                                 |  immutable after create
//   | line 3  writer: generation, pid, start, boot id, heartbeat     |  rewritten on (re)attach
//   | line 4  head, updates, futex word, last update, amends         |  every publish
//   | line 5-8  statistics: 32 named u64 counters (Stat)             |  writer's counters
//   | line 9-12 latency histogram: 32 log2(ns) buckets               |  event -> publish
//   | line 13-14 source: kind, endpoint, symbol                      |  immutable after create
//   | line 16   latch sequence                                       |  every publish
//   | line 17-20 latch copies 0 and 1 of the newest bar (BarSlot x2) |  every publish
//   +----------------------------------------------------------------+
//   | ring: capacity x BarSlot (128 bytes each), slot = bar_index % capacity
//   +----------------------------------------------------------------+
//
// All integers and doubles are native-endian (the header records which) and naturally aligned.
// Every field that changes after the segment becomes ready is accessed through std::atomic_ref on
// both sides; see seqlock.hpp for the protocol that makes a multi-word bar consistent.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace mdshm {

// ---------------------------------------------------------------------------------------------
// Versioning. MAJOR changes whenever an existing offset, size or meaning changes: readers refuse
// any major but their own. MINOR grows when a reserved field gets a meaning: readers accept any
// minor (they ignore what they do not know). The layout hash below catches a forgotten bump.
inline constexpr std::uint64_t kMagic = 0x4745534D4853444DULL;  // the bytes "MDSHMSEG" on little-endian
inline constexpr std::uint16_t kLayoutMajor = 2;  // 2: latch copies carry their version; hash covers types; the source (lines 13-14)
inline constexpr std::uint16_t kLayoutMinor = 0;
inline constexpr std::uint32_t kEndianTag = 0x01020304u;  // stored natively; reads back equal iff same endianness

enum class Arch : std::uint32_t { unknown = 0, x86_64 = 1, aarch64 = 2 };
inline constexpr Arch kThisArch =
#if defined(__x86_64__)
    Arch::x86_64;
#elif defined(__aarch64__)
    Arch::aarch64;
#else
    Arch::unknown;
#endif

// Segment lifecycle, the `state` word. It is written last, with release, when a segment becomes
// usable; a reader that sees anything but kReady trusts nothing else in the segment.
enum class SegmentState : std::uint32_t {
  creating = 0,   // being initialised (fresh file) or re-attached (writer restarting)
  ready = 1,      // header valid, ring usable
  retired = 2,    // replaced by an incompatible segment at the same path: re-open by name
};

inline constexpr std::size_t kCacheLine = 64;

// ---------------------------------------------------------------------------------------------
// Bar flags (Bar::flags). Several may be set at once.
namespace flag {
inline constexpr std::uint32_t in_progress = 1u << 0;     // the newest bar, still being built
inline constexpr std::uint32_t closed = 1u << 1;          // interval over; values final (but see reconciled)
inline constexpr std::uint32_t empty = 1u << 2;           // no trade in the interval: flat at previous close, volume 0
inline constexpr std::uint32_t backfilled = 1u << 3;      // values came from REST, not from the live stream
inline constexpr std::uint32_t reconciled = 1u << 4;      // checked against the exchange's own closed kline
inline constexpr std::uint32_t not_repaired = 1u << 5;    // a gap touched this bar and could not be repaired
inline constexpr std::uint32_t reconcile_diff = 1u << 6;  // the exchange's kline differed; its values won
inline constexpr std::uint32_t from_store = 1u << 7;      // loaded from the on-disk history store
inline constexpr std::uint32_t all = (1u << 8) - 1;
}  // namespace flag

// One OHLCV bar. 112 bytes: everything Binance's kline carries (open time, OHLC, base and quote
// volume, trade count, taker-buy base and quote volume), the first/last aggTrade id that built it
// (gap repair needs them), the time it was last written and flags. 64-bit throughout: float32 cannot
// hold a BTC price to the cent.
struct Bar {
  std::int64_t open_time_ms;   // UTC, milliseconds since the epoch, aligned to the interval
  double open;
  double high;
  double low;
  double close;
  double volume;                 // base asset
  double quote_volume;           // quote asset
  double taker_buy_volume;       // base asset bought by takers
  double taker_buy_quote_volume;
  std::uint64_t trade_count;
  std::int64_t first_trade_id;   // -1 when unknown (backfilled from klines, empty bar)
  std::int64_t last_trade_id;    // -1 when unknown
  std::int64_t update_wall_ns;   // CLOCK_REALTIME when the daemon last changed this bar (applied
                                 // the trade); publishing follows within the same call
  std::uint32_t flags;
  std::uint32_t reserved;
};
static_assert(std::is_trivially_copyable_v<Bar>);
static_assert(sizeof(Bar) == 112);
static_assert(sizeof(Bar) % 8 == 0, "the seqlock copies a bar as 64-bit words");

// A ring slot: two cache lines. `seq` is the slot's seqlock sequence (odd while being written);
// `bar_index` says which bar the slot holds, so a reader detects that it was lapped.
struct alignas(kCacheLine) BarSlot {
  std::uint64_t seq;
  std::uint64_t bar_index;
  Bar bar;
};
static_assert(sizeof(BarSlot) == 128, "LAYOUT.md justifies 128: 112 bytes of bar + seq + index");
static_assert(std::is_trivially_copyable_v<BarSlot>);
inline constexpr std::size_t kRecordSize = sizeof(BarSlot);
inline constexpr std::uint64_t kEmptySlot = ~0ULL;  // bar_index of a slot (or latch copy) never written

// ---------------------------------------------------------------------------------------------
// Statistics: named 64-bit counters at kStatsOffset + 8 * index. The writer owns them; readers
// load them relaxed. Names are part of the contract (the inspector and metrics print them).
enum class Stat : std::uint32_t {
  bars_closed = 0,
  frames,             // frames / messages received from the source
  trades,             // trades applied to this series
  reconnects,
  gaps_detected,      // id holes, stalls and disconnects that touched this series
  gaps_repaired,
  backfilled_bars,    // bars written from REST
  parse_errors,       // malformed frames
  rejected_values,    // impossible values (NaN, negative, absurd time): counted, never in a bar
  duplicate_trades,   // duplicate or older trade ids, dropped
  out_of_order,       // trades older than the bar in progress
  reconcile_checks,   // closed exchange klines compared with the built bar
  reconcile_diffs,    // ... that differed (exchange values won)
  not_repaired_bars,
  store_hits,         // bars loaded from the on-disk history
  store_misses,       // bars the history store lacked (fetched from REST)
  rest_requests,
  rest_weight_used,   // last X-MBX-USED-WEIGHT-1M seen
  unknown_events,
  latency_count,      // event -> publish latency samples (see histogram)
  latency_sum_ns,
  latency_max_ns,
  exchange_offset_ms,   // the source's clock minus the local wall clock, ms, two's complement (1.1)
  // The history store's health (slots 23..27). The state and the pending count are gauges.
  store_write_errors,   // appends, syncs and re-opens of the history store that failed
  store_pending_bars,   // closed bars the store missed and will write when it works again
  store_state,          // StoreState: 0 none configured, 1 ok, 2 failing, 3 unavailable (cannot open)
  store_last_errno,     // errno of the newest store failure (0: none since start)
  store_corrupt_records,  // records with a bad checksum found on open (salvaged file moved aside)
  count_                // keep last
};
inline constexpr std::size_t kStatSlots = 32;
static_assert(static_cast<std::size_t>(Stat::count_) <= kStatSlots);
static_assert(static_cast<std::size_t>(Stat::store_write_errors) == 23, "slots 23..27: the history store");

inline constexpr std::string_view kStatNames[] = {
    "bars_closed",      "frames",          "trades",           "reconnects",
    "gaps_detected",    "gaps_repaired",   "backfilled_bars",  "parse_errors",
    "rejected_values",  "duplicate_trades", "out_of_order",    "reconcile_checks",
    "reconcile_diffs",  "not_repaired_bars", "store_hits",     "store_misses",
    "rest_requests",    "rest_weight_used", "unknown_events",  "latency_count",
    "latency_sum_ns",   "latency_max_ns",   "exchange_offset_ms", "store_write_errors",
    "store_pending_bars", "store_state",   "store_last_errno", "store_corrupt_records",
};
static_assert(std::size(kStatNames) == static_cast<std::size_t>(Stat::count_));

// Values of Stat::store_state. Zero is what a segment holds when no store was ever configured.
enum class StoreState : std::uint64_t { none = 0, ok = 1, failing = 2, unavailable = 3 };

// Latency histogram bucket b counts samples with 2^b <= ns < 2^(b+1) (bucket 0 also takes 0 ns).
inline constexpr std::size_t kLatencyBuckets = 32;

// ---------------------------------------------------------------------------------------------
// The header. Every offset is a named constant derived from the previous one and checked against
// the struct below with static_assert, so the prose, the constants and the compiler agree.
inline constexpr std::size_t kSymbolLen = 16;     // NUL-padded, e.g. "ETHUSDT"
inline constexpr std::size_t kSeriesIdLen = 32;   // NUL-padded, [a-z0-9_], e.g. "eth_ticks"
inline constexpr std::size_t kInstanceLen = 32;   // NUL-padded, [A-Za-z0-9_-]
inline constexpr std::size_t kBootIdLen = 16;     // /proc/sys/kernel/random/boot_id as 16 raw bytes

// line 0: identity
inline constexpr std::size_t kMagicOffset = 0;                          // u64
inline constexpr std::size_t kLayoutMajorOffset = kMagicOffset + 8;     // u16
inline constexpr std::size_t kLayoutMinorOffset = kLayoutMajorOffset + 2;  // u16
inline constexpr std::size_t kStateOffset = kLayoutMinorOffset + 2;     // u32 SegmentState
inline constexpr std::size_t kLayoutHashOffset = kStateOffset + 4;      // u64
inline constexpr std::size_t kHeaderSizeOffset = kLayoutHashOffset + 8;  // u32
inline constexpr std::size_t kRecordSizeOffset = kHeaderSizeOffset + 4;  // u32
inline constexpr std::size_t kArchOffset = kRecordSizeOffset + 4;       // u32 Arch
inline constexpr std::size_t kEndianOffset = kArchOffset + 4;           // u32 kEndianTag
inline constexpr std::size_t kCapacityOffset = kEndianOffset + 4;       // u64 ring slots
inline constexpr std::size_t kIntervalOffset = kCapacityOffset + 8;     // u32 seconds
inline constexpr std::size_t kRingOffsetOffset = kIntervalOffset + 8;   // u64 (4 bytes reserved before)
// line 1: names
inline constexpr std::size_t kSymbolOffset = 64;
inline constexpr std::size_t kSeriesIdOffset = kSymbolOffset + kSymbolLen;
// line 2: instance
inline constexpr std::size_t kInstanceOffset = 128;
inline constexpr std::size_t kCreatedWallOffset = kInstanceOffset + kInstanceLen;  // u64 ns
// line 3: writer identity
inline constexpr std::size_t kGenerationOffset = 192;                   // u64, bumped per (re)attach
inline constexpr std::size_t kWriterPidOffset = kGenerationOffset + 8;  // u32 (+4 reserved)
inline constexpr std::size_t kWriterStartTicksOffset = kWriterPidOffset + 8;  // u64, /proc/<pid>/stat field 22
inline constexpr std::size_t kWriterStartWallOffset = kWriterStartTicksOffset + 8;  // u64 ns
inline constexpr std::size_t kBootIdOffset = kWriterStartWallOffset + 8;  // 16 bytes
inline constexpr std::size_t kHeartbeatMonoOffset = kBootIdOffset + kBootIdLen;  // u64 CLOCK_MONOTONIC ns
inline constexpr std::size_t kHeartbeatWallOffset = kHeartbeatMonoOffset + 8;    // u64 CLOCK_REALTIME ns
// line 4: head (hot)
inline constexpr std::size_t kHeadOffset = 256;                           // u64: newest bar index + 1
inline constexpr std::size_t kUpdatesOffset = kHeadOffset + 8;            // u64: publishes so far
inline constexpr std::size_t kLastUpdateMonoOffset = kUpdatesOffset + 8;  // u64 ns
inline constexpr std::size_t kLastUpdateWallOffset = kLastUpdateMonoOffset + 8;  // u64 ns
inline constexpr std::size_t kAmendsOffset = kLastUpdateWallOffset + 8;   // u64: closed bars rewritten
inline constexpr std::size_t kFutexOffset = kAmendsOffset + 8;            // u32: low 32 bits of updates
// lines 5-8 and 9-12
inline constexpr std::size_t kStatsOffset = 320;
inline constexpr std::size_t kHistogramOffset = kStatsOffset + 8 * kStatSlots;
// lines 13-14: where the bars come from. The writer refuses to re-attach a segment filled from
// another source (made-up synthetic bars must never pass for the exchange's).
inline constexpr std::size_t kSourceKindLen = 16;       // NUL-padded, e.g. "binance", "synthetic"
inline constexpr std::size_t kSourceEndpointLen = 96;   // NUL-padded, e.g. "wss://stream.binance.com:9443"
inline constexpr std::size_t kSourceSymbolLen = kSymbolLen;  // the symbol asked of the source
inline constexpr std::size_t kSourceKindOffset = kHistogramOffset + 8 * kLatencyBuckets;
inline constexpr std::size_t kSourceEndpointOffset = kSourceKindOffset + kSourceKindLen;
inline constexpr std::size_t kSourceSymbolOffset = kSourceEndpointOffset + kSourceEndpointLen;
inline constexpr std::size_t kSourceEnd = kSourceSymbolOffset + kSourceSymbolLen;
static_assert(kSourceKindOffset == 832 && kSourceEnd == 960, "lines 13-14");
// lines 16-20: the latch (the newest bar, twice)
inline constexpr std::size_t kLatchSeqOffset = 1024;
inline constexpr std::size_t kLatchCopiesOffset = kLatchSeqOffset + kCacheLine;
inline constexpr std::size_t kHeaderEnd = kLatchCopiesOffset + 2 * kRecordSize;
inline constexpr std::size_t kHeaderSize = 4096;  // one page: the ring starts page-aligned
static_assert(kSourceEnd <= kLatchSeqOffset);
static_assert(kHeaderEnd <= kHeaderSize);

struct alignas(kCacheLine) SegmentHeader {
  // line 0
  std::uint64_t magic;
  std::uint16_t layout_major;
  std::uint16_t layout_minor;
  std::uint32_t state;
  std::uint64_t layout_hash;
  std::uint32_t header_size;
  std::uint32_t record_size;
  std::uint32_t arch;
  std::uint32_t endian_tag;
  std::uint64_t capacity;
  std::uint32_t interval_s;
  std::uint32_t reserved0;
  std::uint64_t ring_offset;
  // line 1
  char symbol[kSymbolLen];
  char series_id[kSeriesIdLen];
  std::uint8_t reserved1[16];
  // line 2
  char instance[kInstanceLen];
  std::uint64_t created_wall_ns;
  std::uint8_t reserved2[24];
  // line 3
  std::uint64_t generation;
  std::uint32_t writer_pid;
  std::uint32_t reserved3;
  std::uint64_t writer_start_ticks;
  std::uint64_t writer_start_wall_ns;
  std::uint8_t boot_id[kBootIdLen];
  std::uint64_t heartbeat_mono_ns;
  std::uint64_t heartbeat_wall_ns;
  // line 4
  std::uint64_t head;
  std::uint64_t updates;
  std::uint64_t last_update_mono_ns;
  std::uint64_t last_update_wall_ns;
  std::uint64_t amends;
  std::uint32_t futex_word;
  std::uint32_t reserved4;
  std::uint8_t reserved5[16];
  // lines 5-12
  std::uint64_t stats[kStatSlots];
  std::uint64_t latency_hist[kLatencyBuckets];
  // lines 13-14
  char source_kind[kSourceKindLen];
  char source_endpoint[kSourceEndpointLen];
  char source_symbol[kSourceSymbolLen];
  std::uint8_t reserved6[kLatchSeqOffset - kSourceEnd];
  // line 16
  std::uint64_t latch_seq;
  std::uint8_t reserved7[kCacheLine - 8];
  // lines 17-20
  BarSlot latch[2];
  std::uint8_t reserved8[kHeaderSize - kHeaderEnd];
};
static_assert(std::is_standard_layout_v<SegmentHeader> && std::is_trivially_copyable_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) == kHeaderSize);
// The one field list: every header field with its named offset, every slot and bar field. The
// offset checks and the layout hash are both generated from these lists, so neither can drift
// from the structs. A new field goes into its struct, gets a named offset, and is added here.
#define MDSHM_HEADER_FIELDS(X)                                                                   \
  X(magic, kMagicOffset) X(layout_major, kLayoutMajorOffset) X(layout_minor, kLayoutMinorOffset) \
  X(state, kStateOffset) X(layout_hash, kLayoutHashOffset) X(header_size, kHeaderSizeOffset)     \
  X(record_size, kRecordSizeOffset) X(arch, kArchOffset) X(endian_tag, kEndianOffset)            \
  X(capacity, kCapacityOffset) X(interval_s, kIntervalOffset) X(ring_offset, kRingOffsetOffset)  \
  X(symbol, kSymbolOffset) X(series_id, kSeriesIdOffset) X(instance, kInstanceOffset)            \
  X(created_wall_ns, kCreatedWallOffset) X(generation, kGenerationOffset)                        \
  X(writer_pid, kWriterPidOffset) X(writer_start_ticks, kWriterStartTicksOffset)                 \
  X(writer_start_wall_ns, kWriterStartWallOffset) X(boot_id, kBootIdOffset)                      \
  X(heartbeat_mono_ns, kHeartbeatMonoOffset) X(heartbeat_wall_ns, kHeartbeatWallOffset)          \
  X(head, kHeadOffset) X(updates, kUpdatesOffset) X(last_update_mono_ns, kLastUpdateMonoOffset)  \
  X(last_update_wall_ns, kLastUpdateWallOffset) X(amends, kAmendsOffset)                         \
  X(futex_word, kFutexOffset) X(stats, kStatsOffset) X(latency_hist, kHistogramOffset)           \
  X(source_kind, kSourceKindOffset) X(source_endpoint, kSourceEndpointOffset)                    \
  X(source_symbol, kSourceSymbolOffset)                                                          \
  X(latch_seq, kLatchSeqOffset) X(latch, kLatchCopiesOffset)
#define MDSHM_SLOT_FIELDS(X) X(seq) X(bar_index) X(bar)
#define MDSHM_BAR_FIELDS(X)                                                                  \
  X(open_time_ms) X(open) X(high) X(low) X(close) X(volume) X(quote_volume)                  \
  X(taker_buy_volume) X(taker_buy_quote_volume) X(trade_count) X(first_trade_id)             \
  X(last_trade_id) X(update_wall_ns) X(flags) X(reserved)

#define MDSHM_CHECK_OFFSET(field, off) static_assert(offsetof(SegmentHeader, field) == (off), #field);
MDSHM_HEADER_FIELDS(MDSHM_CHECK_OFFSET)
#undef MDSHM_CHECK_OFFSET

// ---------------------------------------------------------------------------------------------
// Layout hash: FNV-1a over the constants readers rely on and, for every field of the three lists,
// its offset, its size and its type (kind, element size, element count). Two builds that disagree
// on any of them disagree on the hash, even if someone forgot to bump kLayoutMajor: trade_count
// turning into a double changes it, so does a longer name field. The minor version is not in it
// (minors are compatible by definition), only where it is stored.
namespace detail {
constexpr std::uint64_t fnv1a(std::uint64_t h, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    h ^= (v >> (8 * i)) & 0xFF;
    h *= 0x100000001B3ULL;
  }
  return h;
}

// kind (1 char, 2 floating, 3 signed, 4 unsigned, 5 struct) << 56 | element size << 32 | count
template <class T>
constexpr std::uint64_t type_code() {
  using E = std::remove_all_extents_t<T>;
  const std::uint64_t kind = std::is_same_v<E, char>   ? 1
                             : std::is_floating_point_v<E> ? 2
                             : std::is_signed_v<E>      ? 3
                             : std::is_unsigned_v<E>    ? 4
                             : std::is_class_v<E>       ? 5
                                                        : 0;
  return kind << 56 | std::uint64_t{sizeof(E)} << 32 | (sizeof(T) / sizeof(E));
}

struct LayoutHasher {
  std::uint64_t h = 0xCBF29CE484222325ULL;
  constexpr void add(std::uint64_t v) { h = fnv1a(h, v); }
  constexpr void field(std::uint64_t offset, std::uint64_t size, std::uint64_t type) {
    add(offset);
    add(size);
    add(type);
  }
};
}  // namespace detail

constexpr std::uint64_t compute_layout_hash() {
  detail::LayoutHasher x;
  for (std::uint64_t c : {kMagic, std::uint64_t{kLayoutMajor}, std::uint64_t{kEndianTag}, std::uint64_t{kHeaderSize},
                          std::uint64_t{kRecordSize}, std::uint64_t{sizeof(Bar)}, std::uint64_t{kStatSlots},
                          std::uint64_t{kLatencyBuckets}})
    x.add(c);
#define MDSHM_HASH_HEADER(f, off) \
  x.field(off, sizeof(SegmentHeader::f), detail::type_code<decltype(SegmentHeader::f)>());
#define MDSHM_HASH_SLOT(f) x.field(offsetof(BarSlot, f), sizeof(BarSlot::f), detail::type_code<decltype(BarSlot::f)>());
#define MDSHM_HASH_BAR(f) x.field(offsetof(Bar, f), sizeof(Bar::f), detail::type_code<decltype(Bar::f)>());
  MDSHM_HEADER_FIELDS(MDSHM_HASH_HEADER)
  MDSHM_SLOT_FIELDS(MDSHM_HASH_SLOT)
  MDSHM_BAR_FIELDS(MDSHM_HASH_BAR)
#undef MDSHM_HASH_HEADER
#undef MDSHM_HASH_SLOT
#undef MDSHM_HASH_BAR
  return x.h;
}
inline constexpr std::uint64_t kLayoutHash = compute_layout_hash();

// Segment size for a capacity, and the largest capacity anyone may ask for (2^24 slots = 2 GiB):
// a header claiming more is garbage, and the arithmetic below can never overflow.
inline constexpr std::uint64_t kMaxCapacity = 1ULL << 24;
constexpr std::uint64_t segment_size(std::uint64_t capacity) { return kHeaderSize + capacity * kRecordSize; }

// ---------------------------------------------------------------------------------------------
// Naming: paths.hpp (the instance directory /dev/shm/mdshm.<instance>/ and the files in it).
inline constexpr std::string_view kDefaultShmDir = "/dev/shm";
inline constexpr std::string_view kDefaultInstance = "default";
inline constexpr std::string_view kSegmentPrefix = "mdshm.";

constexpr bool valid_series_id(std::string_view s) {
  if (s.empty() || s.size() >= kSeriesIdLen) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}
constexpr bool valid_instance(std::string_view s) {
  if (s.empty() || s.size() >= kInstanceLen) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

// Fixed-size NUL-padded name field -> string_view (never reads past the field, even unterminated).
inline std::string_view field_string(const char* field, std::size_t len) {
  std::size_t n = 0;
  while (n < len && field[n] != '\0') ++n;
  return {field, n};
}

// ---------------------------------------------------------------------------------------------
// Validation: what a reader checks before it trusts any offset or length. `file_size` is what
// fstat says, not what the header says. Returns the first problem found.
enum class HeaderProblem {
  none = 0,
  too_small,          // file shorter than a header
  bad_magic,          // not an mdshm segment
  version_mismatch,   // layout major differs
  hash_mismatch,      // same major, different field layout: a build bug, refuse
  arch_mismatch,      // written by another architecture or endianness
  bad_geometry,       // header/record size, capacity or ring offset impossible
  truncated,          // file shorter than the geometry needs
  bad_names,          // series id or symbol not NUL-terminated/valid
  not_ready,          // still being created or re-attached
  retired,            // replaced by a newer segment at the same path
  bad_state,          // a state value no writer writes: corruption, not "try again"
  name_mismatch,      // the header's instance or series id is not the one the file name says
};

inline std::string_view to_string(HeaderProblem p) {
  switch (p) {
    case HeaderProblem::none: return "ok";
    case HeaderProblem::too_small: return "file smaller than a segment header";
    case HeaderProblem::bad_magic: return "bad magic: not an mdshm segment";
    case HeaderProblem::version_mismatch: return "layout major version differs";
    case HeaderProblem::hash_mismatch: return "layout hash differs (field offsets or record size)";
    case HeaderProblem::arch_mismatch: return "written by another architecture or endianness";
    case HeaderProblem::bad_geometry: return "impossible geometry (sizes, capacity or ring offset)";
    case HeaderProblem::truncated: return "file shorter than its capacity requires";
    case HeaderProblem::bad_names: return "series id or symbol field invalid";
    case HeaderProblem::not_ready: return "segment not ready (writer initialising)";
    case HeaderProblem::retired: return "segment retired (replaced by the writer)";
    case HeaderProblem::bad_state: return "unknown segment state (corrupt header)";
    case HeaderProblem::name_mismatch: return "header names another instance or series than the file name";
  }
  return "unknown";
}

template <class T>
inline T load_field(const T& field, std::memory_order mo = std::memory_order_relaxed) {
  // Readers map the segment PROT_READ; an atomic load of <= 8 bytes is a plain load on every
  // supported CPU, so casting away const for std::atomic_ref never writes.
  static_assert(sizeof(T) <= 8);
  return std::atomic_ref<T>(const_cast<T&>(field)).load(mo);
}

// Checks everything but `state` first (so a wrong version is reported as such, not as "not
// ready"), then state with acquire: after kReady, all immutable fields are visible.
inline HeaderProblem validate_header(const void* base, std::uint64_t file_size) {
  if (file_size < kHeaderSize) return HeaderProblem::too_small;
  const auto& h = *static_cast<const SegmentHeader*>(base);
  const auto state = load_field(h.state, std::memory_order_acquire);
  if (load_field(h.magic) != kMagic) return HeaderProblem::bad_magic;
  if (load_field(h.layout_major) != kLayoutMajor) return HeaderProblem::version_mismatch;
  if (state == static_cast<std::uint32_t>(SegmentState::retired)) return HeaderProblem::retired;
  if (state == static_cast<std::uint32_t>(SegmentState::creating)) return HeaderProblem::not_ready;
  if (state != static_cast<std::uint32_t>(SegmentState::ready)) return HeaderProblem::bad_state;
  if (load_field(h.endian_tag) != kEndianTag || load_field(h.arch) != static_cast<std::uint32_t>(kThisArch))
    return HeaderProblem::arch_mismatch;
  if (load_field(h.layout_hash) != kLayoutHash) return HeaderProblem::hash_mismatch;
  const auto cap = load_field(h.capacity);
  if (load_field(h.header_size) != kHeaderSize || load_field(h.record_size) != kRecordSize ||
      load_field(h.ring_offset) != kHeaderSize || cap == 0 || cap > kMaxCapacity ||
      load_field(h.interval_s) == 0)
    return HeaderProblem::bad_geometry;
  if (file_size < segment_size(cap)) return HeaderProblem::truncated;
  if (!valid_series_id(field_string(h.series_id, kSeriesIdLen)) || h.series_id[kSeriesIdLen - 1] != '\0' ||
      h.symbol[kSymbolLen - 1] != '\0' || field_string(h.symbol, kSymbolLen).empty() ||
      !valid_instance(field_string(h.instance, kInstanceLen)) || h.instance[kInstanceLen - 1] != '\0')
    return HeaderProblem::bad_names;
  return HeaderProblem::none;
}

// A valid header must also be the one its path promises: <shm_dir>/mdshm.<instance>/<series>. Else
// a segment copied, renamed or planted under another series' name would serve the wrong bars.
inline HeaderProblem validate_names(const SegmentHeader& h, std::string_view path) {
  const std::string_view inst = field_string(h.instance, kInstanceLen);
  const std::string_view id = field_string(h.series_id, kSeriesIdLen);
  const auto slash = path.rfind('/');
  const std::string_view file = slash == std::string_view::npos ? path : path.substr(slash + 1);
  std::string_view dir = slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
  if (const auto s2 = dir.rfind('/'); s2 != std::string_view::npos) dir = dir.substr(s2 + 1);
  if (file != id || dir.size() != kSegmentPrefix.size() + inst.size() ||
      dir.substr(0, kSegmentPrefix.size()) != kSegmentPrefix || dir.substr(kSegmentPrefix.size()) != inst)
    return HeaderProblem::name_mismatch;
  return HeaderProblem::none;
}

// The source's clock ("now" on the exchange) as the writer knows it: local wall clock + offset.
// Bars are aligned to it, so freshness checks compare bar times with it, not with local time
// (they differ a lot when a simulator replays 2022 data, and a little on a live feed).
inline std::int64_t exchange_offset_ms(const SegmentHeader& h) {
  return static_cast<std::int64_t>(load_field(h.stats[static_cast<std::size_t>(Stat::exchange_offset_ms)]));
}

inline const BarSlot* ring_of(const SegmentHeader* h) {
  return reinterpret_cast<const BarSlot*>(reinterpret_cast<const std::byte*>(h) + kHeaderSize);
}
inline BarSlot* ring_of(SegmentHeader* h) {
  return reinterpret_cast<BarSlot*>(reinterpret_cast<std::byte*>(h) + kHeaderSize);
}

}  // namespace mdshm
