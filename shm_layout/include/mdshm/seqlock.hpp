// The seqlock and latch protocols over shared memory, data-race-free in the C++ memory model.
//
// A seqlock lets one writer update a multi-word record that many readers copy without ever
// blocking or notifying the writer. The writer makes the sequence odd, writes, makes it even again;
// a reader copies the record between two reads of the sequence and keeps the copy only if both
// reads saw the same even value.
//
// Classic implementations (rigtorp/Seqlock, most C code) copy the payload with memcpy. Under the
// C++ memory model a concurrent plain read and write of the same bytes is a data race, i.e.
// undefined behaviour, and compilers are entitled to exploit it. Following H. Boehm, "Can Seqlocks
// Get Along with Programming Language Memory Models?" (MSPC 2012), every payload word here is read
// and written through std::atomic_ref with memory_order_relaxed, and ordering comes from fences:
//
//   writer                                     reader
//   s = seq (relaxed)                          s0 = seq.load(acquire)
//   seq.store(s + 1, relaxed)                  if s0 odd: retry
//   atomic_thread_fence(release)               copy payload, relaxed loads
//   store payload, relaxed                     atomic_thread_fence(acquire)
//   seq.store(s + 2, release)                  s1 = seq.load(relaxed)
//                                              consistent iff s0 == s1
//
// Why it is correct: if the reader saw any payload store of a write, the acquire fence makes the
// writer's release fence (before that store) happen-before the s1 load, so s1 sees at least s+1
// and the copy is rejected. If s0 saw the final s+2 (release), every store before it is visible.
// Relaxed 8-byte atomics compile to plain loads/stores on x86-64 and AArch64, so the price is only
// that the compiler may not merge or tear them; on ARM the fences emit the needed barriers.
//
// The latch (Linux's seqcount_latch) keeps two copies so that a reader always has one that is not
// being written: the writer bumps the sequence (readers switch to the other copy), writes copy
// (s & 1) of the old value, bumps again, writes the other. A reader copies copy[s0 & 1] and retries
// only if the sequence moved during its copy, never because a write is in progress. This keeps
// readers of the newest bar making progress while the writer rewrites it millions of times a second.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mdshm/layout.hpp"

namespace mdshm::seqlock {

// Copy a trivially copyable T word by word through relaxed atomics. The shared copy is only ever
// touched as 64-bit words; the caller's private T goes through memcpy, because writing its
// doubles through a uint64_t* breaks strict aliasing: GCC at -O3 then sees the caller's bar as
// never written (-Wmaybe-uninitialized in consumers' code, and code it may reorder).
template <class T>
inline void store_words(T& dst, const T& src) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) % 8 == 0 && alignof(T) >= 8);
  auto* d = reinterpret_cast<std::uint64_t*>(&dst);
  const auto* s = reinterpret_cast<const unsigned char*>(&src);
  for (std::size_t i = 0; i < sizeof(T) / 8; ++i) {
    std::uint64_t w;
    std::memcpy(&w, s + 8 * i, 8);  // one 8-byte move: no intermediate buffer, no aliasing
    std::atomic_ref<std::uint64_t>(d[i]).store(w, std::memory_order_relaxed);
  }
}

template <class T>
inline void load_words(T& dst, const T& src) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) % 8 == 0 && alignof(T) >= 8);
  auto* d = reinterpret_cast<unsigned char*>(&dst);
  auto* s = reinterpret_cast<std::uint64_t*>(const_cast<T*>(&src));  // loads only; see load_field
  for (std::size_t i = 0; i < sizeof(T) / 8; ++i) {
    const std::uint64_t w = std::atomic_ref<std::uint64_t>(s[i]).load(std::memory_order_relaxed);
    std::memcpy(d + 8 * i, &w, 8);
  }
}

inline std::atomic_ref<std::uint64_t> seq_ref(const std::uint64_t& seq) {
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(seq));
}

// ---- one ring slot -----------------------------------------------------------------------------

// Single writer only. The critical section (sequence odd) holds the slot's stores and nothing
// else: the caller computes the bar before. `inside` runs in the middle of it; tests use it to
// stop a writer mid-write, everyone else calls the three-argument form.
template <class Inside>
inline void write_slot(BarSlot& slot, std::uint64_t bar_index, const Bar& bar, Inside&& inside) {
  auto seq = seq_ref(slot.seq);
  const std::uint64_t s = seq.load(std::memory_order_relaxed);
  seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::atomic_ref<std::uint64_t>(slot.bar_index).store(bar_index, std::memory_order_relaxed);
  inside();
  store_words(slot.bar, bar);
  seq.store(s + 2, std::memory_order_release);
}
inline void write_slot(BarSlot& slot, std::uint64_t bar_index, const Bar& bar) {
  write_slot(slot, bar_index, bar, [] {});
}

enum class ReadStatus { ok, busy, changed };

// One attempt. `busy`: a write was in progress at the start; `changed`: a write overlapped.
inline ReadStatus try_read_slot(const BarSlot& slot, std::uint64_t& bar_index, Bar& out) {
  auto seq = seq_ref(slot.seq);
  const std::uint64_t s0 = seq.load(std::memory_order_acquire);
  if (s0 & 1) return ReadStatus::busy;
  bar_index = load_field(slot.bar_index);
  load_words(out, slot.bar);
  std::atomic_thread_fence(std::memory_order_acquire);
  return seq.load(std::memory_order_relaxed) == s0 ? ReadStatus::ok : ReadStatus::changed;
}

// ---- the latch: two copies of the newest bar ------------------------------------------------

// Single writer only. Readers never see a copy under construction. `version` goes into the copy's
// `seq` field (unused otherwise in a latch copy): the `updates` count this version of the bar is
// published as, so a reader can tell a bar it already returned from a new one.
inline void write_latch(std::uint64_t& latch_seq, BarSlot (&copies)[2], std::uint64_t bar_index, const Bar& bar,
                        std::uint64_t version) {
  auto seq = seq_ref(latch_seq);
  const std::uint64_t s = seq.load(std::memory_order_relaxed);
  for (std::uint64_t step = 1; step <= 2; ++step) {
    // Readers now use copy[(s + step) & 1]. The release store publishes the copy written in the
    // previous step; the fence keeps this store ahead of the copy we are about to overwrite.
    seq.store(s + step, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_release);
    BarSlot& c = copies[(s + step + 1) & 1];
    std::atomic_ref<std::uint64_t>(c.seq).store(version, std::memory_order_relaxed);
    std::atomic_ref<std::uint64_t>(c.bar_index).store(bar_index, std::memory_order_relaxed);
    store_words(c.bar, bar);
  }
  // The copy written last is published by the next call's first store; until then readers use
  // the one written in step 1, which already holds `bar`.
}

inline bool try_read_latch(const std::uint64_t& latch_seq, const BarSlot (&copies)[2], std::uint64_t& bar_index,
                           Bar& out, std::uint64_t* version = nullptr) {
  auto seq = seq_ref(latch_seq);
  const std::uint64_t s0 = seq.load(std::memory_order_acquire);
  const BarSlot& c = copies[s0 & 1];
  if (version) *version = load_field(c.seq);
  bar_index = load_field(c.bar_index);
  load_words(out, c.bar);
  std::atomic_thread_fence(std::memory_order_acquire);
  return seq.load(std::memory_order_relaxed) == s0;
}

}  // namespace mdshm::seqlock
