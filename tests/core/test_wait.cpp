// Series::wait and friends: the tracked wait API, the wake-up chain among blocked readers, waiting
// for a segment that does not exist yet, and the client bugs the old registry-based wait had.
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace mdshm;
using namespace mdshm::test;
using namespace std::chrono_literals;

namespace {

long voluntary_switches_of_this_thread() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_nvcsw;
}

}  // namespace

TEST_CASE("a reader without a registry sleeps instead of polling every millisecond") {
  const auto inst = unique_instance("norg");
  ShmCleanup clean{inst};
  // A bare segment: no Publisher, so no registry file exists at all.
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks"));
  w.publish(make_bar(1000, 1));
  auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  const long before = voluntary_switches_of_this_thread();
  CHECK(s->wait(s->updates(), 1s) == WaitResult::timeout);
  const long switches = voluntary_switches_of_this_thread() - before;
  // Sleeping in 250 ms slices is ~4 wake-ups; polling every millisecond was ~1,000.
  CHECK(switches < 50);
}

TEST_CASE("a writer killed between counting an update and ringing the futex: wait() still sleeps") {
  // The TSan flake of core_stress: the old wait() took `futex_word != seen` for an update, so a
  // writer killed between its two stores made every wait return `updated` at once, for ever.
  const auto inst = unique_instance("word");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks"));
  w.publish(make_bar(1000, 1));
  w.publish(make_bar(1000, 2));
  // What the kill leaves: `updates` counted, the word still at the previous value.
  std::atomic_ref<std::uint32_t>(w.header()->futex_word).store(1, std::memory_order_release);
  auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
  REQUIRE(s.ok());
  REQUIRE(s->updates() == 2);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(s->wait(s->updates(), 300ms) == WaitResult::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
  CHECK(s->wait(300ms) == WaitResult::timeout);
}

TEST_CASE("Subscription::wait blocks on its first call until something new arrives") {
  const auto inst = unique_instance("subw");
  ShmCleanup clean{inst};
  publish::Publisher pub(pub_opts(inst), {spec("eth_1m", 64, 60)});
  auto& w = pub.at(0);
  for (int i = 0; i < 3; ++i) w.publish(make_bar(60'000 * i, static_cast<std::uint64_t>(i + 1), flag::closed));
  auto sub = Subscription::open("first_wait", "eth_1m", {inst, "/dev/shm"});
  REQUIRE(sub.ok());
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(sub->wait(300ms) == WaitResult::timeout);  // nothing published since open
  CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
  w.publish(make_bar(60'000 * 3, 4, flag::in_progress));
  pub.wake_readers();
  CHECK(sub->wait(5s) == WaitResult::updated);
  std::vector<Bar> out(8);
  std::size_t n = 0;
  REQUIRE(sub->poll(out, n) == Errc::ok);
  REQUIRE(n >= 1);
  CHECK(out[n - 1].trade_count == 4);
  CHECK(sub->wait(200ms) == WaitResult::timeout);  // handed out: the next wait blocks again
}

TEST_CASE("tracked wait + latest: every bar version at most once, none missed at the end") {
  const auto inst = unique_instance("track");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks", 64, 1));
  w.publish(make_bar(1000, 1));
  constexpr std::uint64_t kLast = 3000;
  std::atomic<bool> reader_ready{false};
  std::vector<std::uint64_t> versions, values;
  std::thread reader([&] {
    auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
    if (!s) return;
    reader_ready = true;
    Bar b{};
    std::uint64_t v = 0;
    for (;;) {
      if (s->wait(5s) != WaitResult::updated) return;
      if (s->latest(b, nullptr, &v) != Errc::ok) return;
      versions.push_back(v);
      values.push_back(b.trade_count);
      if (b.trade_count == kLast) return;
    }
  });
  while (!reader_ready) std::this_thread::sleep_for(1ms);
  // Batches of 1..5 publishes, one wake per batch, as the feed does.
  std::uint64_t v = 2;
  std::int64_t t = 1000;
  while (v <= kLast) {
    for (std::uint64_t k = 0; k < 1 + v % 5 && v <= kLast; ++k, ++v) {
      if (v % 7 == 0) t += 1000;
      w.publish(make_bar(t, v));
    }
    w.wake_readers();
    if (v % 64 == 0) std::this_thread::sleep_for(100us);
  }
  reader.join();
  REQUIRE_FALSE(values.empty());
  CHECK(values.back() == kLast);  // the final bar arrives (no lost wake-up)
  for (std::size_t i = 1; i < versions.size(); ++i) {
    INFO("i = " << i);
    CHECK(versions[i] > versions[i - 1]);  // never the same version twice
    CHECK(values[i] > values[i - 1]);
  }
}

TEST_CASE("spinning on updates(): latest()'s version skips the bar already returned") {
  const auto inst = unique_instance("spin");
  ShmCleanup clean{inst};
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks", 64, 1));
  w.publish(make_bar(1000, 1));
  constexpr std::uint64_t kLast = 20'000;
  std::atomic<bool> go{false};
  std::uint64_t repeats = 0, got_last = 0;
  std::thread reader([&] {
    auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
    if (!s) return;
    go = true;
    std::uint64_t seen = 0, prev_value = 0;
    Bar b{};
    const auto end = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < end) {
      if (s->updates() <= seen) continue;  // the documented idiom: compare with the last version
      if (s->latest(b, nullptr, &seen) != Errc::ok) continue;
      if (b.trade_count == prev_value) ++repeats;
      prev_value = b.trade_count;
      if (b.trade_count == kLast) {
        got_last = kLast;
        return;
      }
    }
  });
  while (!go) std::this_thread::yield();
  for (std::uint64_t v = 2; v <= kLast; ++v) w.publish(make_bar(1000 + static_cast<std::int64_t>(v / 100) * 1000, v));
  reader.join();
  CHECK(got_last == kLast);
  CHECK(repeats == 0);
}

TEST_CASE("the writer wakes one blocked reader per batch; the others are woken by it") {
  const auto inst = unique_instance("chain");
  ShmCleanup clean{inst};
  // No Publisher: no heartbeat thread that could wake them instead.
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks"));
  w.publish(make_bar(1000, 1));
  constexpr int kReaders = 8;
  std::atomic<int> blocked{0}, woken{0};
  std::atomic<std::int64_t> latest_wake_ns{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i)
    readers.emplace_back([&] {
      auto s = Series::open("eth_ticks", {inst, "/dev/shm"});
      if (!s) return;
      ++blocked;
      if (s->wait(10s) == WaitResult::updated) {
        const auto ns = std::chrono::steady_clock::now().time_since_epoch().count();
        std::int64_t cur = latest_wake_ns.load();
        while (ns > cur && !latest_wake_ns.compare_exchange_weak(cur, ns)) {}
        ++woken;
      }
    });
  while (blocked < kReaders) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(60ms);  // asleep in their first 250 ms slice, which ends 190 ms from now
  w.publish(make_bar(1000, 2));
  const auto t_publish = std::chrono::steady_clock::now().time_since_epoch().count();
  CHECK(w.wake_readers());
  for (auto& t : readers) t.join();
  CHECK(woken == kReaders);
  // All within well under the remaining slice: woken by the chain, not by their timeouts.
  CHECK(std::chrono::nanoseconds(latest_wake_ns.load() - t_publish) < 120ms);
}

TEST_CASE("wait_open: a reader started before the writer gets the segment when it appears") {
  const auto inst = unique_instance("wopen");
  ShmCleanup clean{inst};
  const OpenOptions oo{inst, "/dev/shm"};
  {
    const auto t0 = std::chrono::steady_clock::now();
    auto none = Series::wait_open("eth_ticks", oo, 200ms);
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().code == Errc::not_found);
    CHECK(std::chrono::steady_clock::now() - t0 >= 200ms);
  }
  std::atomic<std::int64_t> opened_ns{0};
  std::uint64_t got_trades = 0;
  std::thread reader([&] {
    auto s = Series::wait_open("eth_ticks", oo, 20s);
    if (!s) return;
    opened_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    Bar b{};
    if (s->wait(5s) == WaitResult::updated && s->latest(b) == Errc::ok) got_trades = b.trade_count;
  });
  std::this_thread::sleep_for(300ms);
  auto w = publish::SegmentWriter::open(seg_opts(inst), spec("eth_ticks"));
  const auto created_ns = std::chrono::steady_clock::now().time_since_epoch().count();
  // Publish only once the reader holds the segment: a publish before its open would already be
  // "seen" by it, and its wait() would then rightly sleep until the next one.
  for (int i = 0; i < 1000 && opened_ns.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(50ms);  // let it reach wait()
  w.publish(make_bar(1000, 42));
  w.wake_readers();
  reader.join();
  REQUIRE(opened_ns.load() != 0);
  CHECK(std::chrono::nanoseconds(opened_ns.load() - created_ns) < 2s);
  CHECK(got_trades == 42);
  // Errors other than "missing" come back at once.
  auto bad = Series::wait_open("Bad-Name", oo, 5s);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Errc::invalid_argument);
}
