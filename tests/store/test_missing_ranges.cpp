#include <catch2/catch.hpp>

#include <vector>

#include "store/missing_ranges.hpp"
#include "store_test_util.hpp"

using mdshm::store::missing_ranges;
using mdshm::store::TimeRange;
using store_test::kBase;

namespace {
constexpr std::int64_t M = 60'000;
std::vector<std::int64_t> minutes(std::initializer_list<int> idx) {
  std::vector<std::int64_t> v;
  for (int i : idx) v.push_back(kBase + i * M);
  return v;
}
TimeRange r(int from, int to) { return {kBase + from * M, kBase + to * M}; }
}  // namespace

TEST_CASE("missing ranges of an empty store is the whole range", "[store][missing]") {
  CHECK(missing_ranges({}, kBase, kBase + 10 * M, 60) == std::vector{r(0, 10)});
}

TEST_CASE("a complete store misses nothing", "[store][missing]") {
  CHECK(missing_ranges(minutes({0, 1, 2, 3, 4}), kBase, kBase + 5 * M, 60).empty());
}

TEST_CASE("gaps at the start, in the middle and at the end are reported separately", "[store][missing]") {
  const auto present = minutes({2, 3, 5, 6, 6, 7});  // duplicate 6 is harmless
  CHECK(missing_ranges(present, kBase, kBase + 10 * M, 60) == std::vector{r(0, 2), r(4, 5), r(8, 10)});
  CHECK(mdshm::store::bars_in(r(8, 10), 60) == 2);
}

TEST_CASE("unaligned range ends: bars whose open time lies inside the range", "[store][missing]") {
  // [0:30, 3:30) holds the bars opening at 1, 2, 3.
  CHECK(missing_ranges(minutes({2}), kBase + 30'000, kBase + 3 * M + 30'000, 60) ==
        std::vector{r(1, 2), r(3, 4)});
  CHECK(missing_ranges({}, kBase + 1, kBase + 2, 60).empty());  // no open time inside
  CHECK(missing_ranges({}, kBase, kBase, 60).empty());
}

TEST_CASE("present times outside the range are ignored", "[store][missing]") {
  CHECK(missing_ranges(minutes({-5, 0, 1, 20}), kBase, kBase + 4 * M, 60) == std::vector{r(2, 4)});
}

TEST_CASE("weekly bars open on Monday", "[store][missing]") {
  constexpr std::int64_t W = 7 * 86400 * 1000LL;
  const std::int64_t monday = mdshm::bar_open_ms(kBase, 604800);  // 2022-08-08
  CHECK(monday == 1659916800000);
  const std::vector<std::int64_t> present{monday + W};
  CHECK(missing_ranges(present, monday, monday + 3 * W, 604800) ==
        std::vector<TimeRange>{{monday, monday + W}, {monday + 2 * W, monday + 3 * W}});
}
