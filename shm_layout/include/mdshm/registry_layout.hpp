// The consumer registry: /dev/shm/mdshm.<instance>/@registry (paths.hpp).
//
// Kept apart from the data segments on purpose: consumers map it read-write (to register, move
// their cursor and announce that they block), so a buggy consumer can at worst corrupt the
// registry — operators' view and wake-ups — never the bars that others read.
//
//   0              4096                         4096 + 64*64            + 256*128
//   +-- header ----+-- series table (64 x 64) --+-- consumer slots (256 x 128) --+
//
// Series table entry i: the name of a series of this instance and the number of readers blocked
// on it (the writer's notifier wakes a segment's futex only when that number is non-zero).
// Consumer slot: claimed by CAS of `pid` from 0; freed by its owner, or reclaimed by anyone who
// finds the pid dead (then its `waiting` bits are subtracted from the series table).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mdshm/layout.hpp"

namespace mdshm {

inline constexpr std::uint64_t kRegistryMagic = 0x4745524D4853444DULL;  // "MDSHMREG" on little-endian
inline constexpr std::uint16_t kRegistryMajor = 1;
inline constexpr std::uint16_t kRegistryMinor = 0;
inline constexpr std::size_t kRegistrySeriesSlots = 64;
inline constexpr std::size_t kRegistryConsumerSlots = 256;
inline constexpr std::size_t kConsumerNameLen = 32;

struct alignas(kCacheLine) RegistryHeader {
  std::uint64_t magic;
  std::uint16_t major;
  std::uint16_t minor;
  std::uint32_t state;  // SegmentState, written last with release
  std::uint64_t layout_hash;
  std::uint32_t series_slots;
  std::uint32_t consumer_slots;
  std::uint32_t writer_pid;
  std::uint32_t reserved0;
  std::uint64_t generation;
  char instance[kInstanceLen];
  std::uint8_t reserved[4096 - 64 - kInstanceLen];
};
static_assert(sizeof(RegistryHeader) == 4096);

struct alignas(kCacheLine) RegistrySeries {
  char series_id[kSeriesIdLen];
  std::uint32_t waiters;    // readers blocked in wait() on this series right now
  std::uint32_t reserved0;
  std::uint8_t reserved[24];
};
static_assert(sizeof(RegistrySeries) == 64);

struct alignas(kCacheLine) ConsumerSlot {
  std::uint32_t pid;                  // 0 = free
  std::uint32_t reserved0;
  std::uint64_t start_ticks;          // /proc/<pid>/stat starttime: tells a reused pid apart
  std::uint64_t registered_wall_ns;
  std::uint64_t last_read_wall_ns;
  std::uint64_t cursor;               // next bar index this consumer will read
  std::uint64_t reads;
  std::uint64_t lapped;               // bars it missed because the writer lapped it
  std::uint64_t waiting;              // bit i: blocked on series table entry i
  char name[kConsumerNameLen];
  char series_id[kSeriesIdLen];
};
static_assert(sizeof(ConsumerSlot) == 128);

inline constexpr std::size_t kRegistrySeriesOffset = sizeof(RegistryHeader);
inline constexpr std::size_t kRegistryConsumersOffset =
    kRegistrySeriesOffset + kRegistrySeriesSlots * sizeof(RegistrySeries);
inline constexpr std::size_t kRegistrySize = kRegistryConsumersOffset + kRegistryConsumerSlots * sizeof(ConsumerSlot);

constexpr std::uint64_t compute_registry_hash() {
  std::uint64_t h = 0xCBF29CE484222325ULL;
  const std::uint64_t parts[] = {kRegistryMajor, sizeof(RegistryHeader), sizeof(RegistrySeries), sizeof(ConsumerSlot),
                                 kRegistrySeriesSlots, kRegistryConsumerSlots, offsetof(RegistrySeries, waiters),
                                 offsetof(ConsumerSlot, cursor), offsetof(ConsumerSlot, waiting),
                                 offsetof(ConsumerSlot, name), offsetof(ConsumerSlot, series_id)};
  for (auto p : parts) h = detail::fnv1a(h, p);
  return h;
}
inline constexpr std::uint64_t kRegistryHash = compute_registry_hash();

struct RegistryView {
  RegistryHeader* header;
  RegistrySeries* series;
  ConsumerSlot* consumers;
};

inline RegistryView registry_view(void* base) {
  auto* b = static_cast<std::byte*>(base);
  return {reinterpret_cast<RegistryHeader*>(b), reinterpret_cast<RegistrySeries*>(b + kRegistrySeriesOffset),
          reinterpret_cast<ConsumerSlot*>(b + kRegistryConsumersOffset)};
}

inline bool registry_valid(const void* base, std::uint64_t file_size) {
  if (file_size < kRegistrySize) return false;
  const auto& h = *static_cast<const RegistryHeader*>(base);
  return load_field(h.state, std::memory_order_acquire) == static_cast<std::uint32_t>(SegmentState::ready) &&
         load_field(h.magic) == kRegistryMagic && load_field(h.major) == kRegistryMajor &&
         load_field(h.layout_hash) == kRegistryHash && load_field(h.series_slots) == kRegistrySeriesSlots &&
         load_field(h.consumer_slots) == kRegistryConsumerSlots;
}

}  // namespace mdshm
