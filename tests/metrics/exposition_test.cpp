// render_metrics against a real SegmentWriter and a registered Subscription: the exposition parses,
// every family is announced once, and the values are the segment's own counters.
#include <catch2/catch.hpp>

#include <cmath>

#include "exposition_parse.hpp"
#include "metrics/exposition.hpp"
#include "metrics_support.hpp"

using namespace mdshm;
using namespace mdshm::test;

namespace {
const std::map<std::string, std::string> kEth1m = {{"series", "eth_1m"}, {"symbol", "ETHUSDT"}, {"interval", "1m"}};
const std::map<std::string, std::string> kBtc = {{"series", "btc_ticks"}, {"symbol", "BTCUSDT"}, {"interval", "1s"}};

std::string dump(const Exposition& x) {
  std::string s;
  for (const auto& e : x.errors) s += e + "\n";
  return s;
}
}  // namespace

TEST_CASE("label values are escaped and kept on one valid line") {
  CHECK(metrics::escape_label_value("plain_name-1") == "plain_name-1");
  CHECK(metrics::escape_label_value("a\"b") == "a\\\"b");
  CHECK(metrics::escape_label_value("a\\b") == "a\\\\b");
  CHECK(metrics::escape_label_value("a\nb") == "a\\nb");
  CHECK(metrics::escape_label_value(std::string("a\0b\x7f\xc3", 5)) == "a?b??");
}

TEST_CASE("the exposition of a live instance parses and carries the segments' counters") {
  TestInstance inst("render");
  publish::Publisher pub(inst.publisher_options(),
                         {{"eth_1m", "ETHUSDT", 60, 16}, {"btc_ticks", "BTCUSDT", 1, 8}});
  auto& eth = *pub.find("eth_1m");
  auto& btc = *pub.find("btc_ticks");
  for (int i = 0; i < 5; ++i) REQUIRE(eth.publish(bar_at(60'000LL * i, 1900 + i)));
  for (int i = 0; i < 12; ++i) REQUIRE(btc.publish(bar_at(1'000LL * i, 24000 + i)));  // laps the 8-slot ring
  eth.add_stat(Stat::trades, 42);
  eth.add_stat(Stat::parse_errors, 3);
  eth.set_stat(Stat::rest_weight_used, 17);
  eth.record_latency(0);            // bucket 0: le 2 ns
  eth.record_latency(1500);         // bucket 10: 1024 <= ns < 2048
  eth.record_latency(1ULL << 40);   // beyond the last finite bound: only in +Inf

  auto sub = Subscription::open("model \"a\\b", "eth_1m", inst.open_options());
  REQUIRE(sub.ok());
  Bar buf[16];
  std::size_t n = 0;
  sub->poll(buf, n);  // caught up
  for (int i = 5; i < 8; ++i) REQUIRE(eth.publish(bar_at(60'000LL * i, 1900 + i)));  // 3 new bars behind

  const std::string text = metrics::render_metrics(pub, inst.open_options());
  const auto x = parse_exposition(text);
  INFO(text);
  INFO(dump(x));
  REQUIRE(x.errors.empty());

  SECTION("stats: counters as _total, levels as gauges") {
    CHECK(x.types.at("mdshm_trades_total") == "counter");
    CHECK(x.value("mdshm_trades_total", kEth1m) == 42.0);
    CHECK(x.value("mdshm_trades_total", kBtc) == 0.0);
    CHECK(x.value("mdshm_parse_errors_total", kEth1m) == 3.0);
    CHECK(x.types.at("mdshm_rest_weight_used") == "gauge");
    CHECK(x.value("mdshm_rest_weight_used", kEth1m) == 17.0);
    CHECK(x.types.at("mdshm_event_publish_latency_max_seconds") == "gauge");
    CHECK(x.value("mdshm_event_publish_latency_max_seconds", kEth1m) == Approx(std::ldexp(1.0, 40) / 1e9));
    // Every other Stat is there, one sample per series.
    for (const char* name : {"mdshm_frames_total", "mdshm_reconnects_total", "mdshm_gaps_detected_total",
                             "mdshm_gaps_repaired_total", "mdshm_bars_closed_total", "mdshm_unknown_events_total"})
      CHECK(x.find(name).size() == 2);
  }

  SECTION("ring: head, capacity, bars held, generation, freshness") {
    CHECK(x.value("mdshm_series_head", kEth1m) == 8.0);
    CHECK(x.value("mdshm_series_capacity_bars", kEth1m) == 16.0);
    CHECK(x.value("mdshm_series_bars_held", kEth1m) == 8.0);
    CHECK(x.value("mdshm_series_head", kBtc) == 12.0);
    CHECK(x.value("mdshm_series_bars_held", kBtc) == 8.0);
    CHECK(x.value("mdshm_series_generation", kEth1m) >= 1.0);
    CHECK(x.value("mdshm_series_updates_total", kEth1m) == 8.0);
    const auto age = x.value("mdshm_series_last_update_age_seconds", kEth1m);
    REQUIRE(age);
    CHECK(*age >= 0.0);
    CHECK(*age < 5.0);
    CHECK(x.value("mdshm_series_heartbeat_age_seconds", kBtc) < 5.0);
  }

  SECTION("latency: a proper cumulative histogram ending in +Inf") {
    CHECK(x.types.at("mdshm_event_publish_latency_seconds") == "histogram");
    for (const auto& series : {kEth1m, kBtc}) {
      const auto buckets = x.find("mdshm_event_publish_latency_seconds_bucket", series);
      REQUIRE(buckets.size() == kLatencyBuckets);
      double prev_le = 0, prev_count = 0;
      for (std::size_t i = 0; i + 1 < buckets.size(); ++i) {
        const double le = std::stod(buckets[i]->labels.at("le"));
        const double count = std::stod(buckets[i]->value);
        CHECK(le > prev_le);
        CHECK(count >= prev_count);
        prev_le = le;
        prev_count = count;
      }
      CHECK(buckets.back()->labels.at("le") == "+Inf");
      CHECK(std::stod(buckets.back()->value) >= prev_count);
      CHECK(x.value("mdshm_event_publish_latency_seconds_count", series) == std::stod(buckets.back()->value));
    }
    CHECK(x.value("mdshm_event_publish_latency_seconds_bucket", {{"series", "eth_1m"}, {"le", "2e-09"}}) == 1.0);
    CHECK(x.value("mdshm_event_publish_latency_seconds_bucket", {{"series", "eth_1m"}, {"le", "1.024e-06"}}) == 1.0);
    CHECK(x.value("mdshm_event_publish_latency_seconds_bucket", {{"series", "eth_1m"}, {"le", "2.048e-06"}}) == 2.0);
    CHECK(x.value("mdshm_event_publish_latency_seconds_bucket", {{"series", "eth_1m"}, {"le", "2.147483648"}}) == 2.0);
    CHECK(x.value("mdshm_event_publish_latency_seconds_bucket", {{"series", "eth_1m"}, {"le", "+Inf"}}) == 3.0);
    CHECK(x.value("mdshm_event_publish_latency_seconds_count", kEth1m) == 3.0);
    CHECK(x.value("mdshm_event_publish_latency_seconds_sum", kEth1m) ==
          Approx((1500.0 + std::ldexp(1.0, 40)) / 1e9));
    CHECK(x.value("mdshm_event_publish_latency_seconds_count", kBtc) == 0.0);
  }

  SECTION("consumers: lag, reads, lapped, alive; the name survives escaping") {
    const std::map<std::string, std::string> who = {{"consumer", "model \"a\\b"}, {"series", "eth_1m"},
                                                    {"pid", std::to_string(::getpid())}};
    // The consumer read up to the bar then in progress (index 4); bars 4..7 changed since.
    CHECK(x.value("mdshm_consumer_lag_bars", who) == 4.0);
    CHECK(x.value("mdshm_consumer_reads_total", who) == 1.0);
    CHECK(x.value("mdshm_consumer_lapped_total", who) == 0.0);
    CHECK(x.value("mdshm_consumer_alive", who) == 1.0);
    CHECK(text.find("consumer=\"model \\\"a\\\\b\"") != std::string::npos);
  }
}

TEST_CASE("freshness is measured against the given clock; a never-updated series has no age") {
  TestInstance inst("fresh");
  publish::Publisher pub(inst.publisher_options(), {{"eth_1h", "ETHUSDT", 3600, 4}, {"eth_1d", "ETHUSDT", 86400, 4}});
  REQUIRE(pub.find("eth_1h")->publish(bar_at(0, 1900)));
  const SegmentHeader* h = pub.find("eth_1h")->header();
  const auto now = load_field(h->last_update_mono_ns) + 2'500'000'000ULL;
  const auto x = parse_exposition(metrics::render_metrics({h, pub.find("eth_1d")->header()}, {}, now));
  REQUIRE(x.errors.empty());
  CHECK(x.value("mdshm_series_last_update_age_seconds", {{"series", "eth_1h"}}) == Approx(2.5));
  CHECK(x.find("mdshm_series_last_update_age_seconds", {{"series", "eth_1d"}}).empty());
  CHECK(x.find("mdshm_consumer_lag_bars").empty());
  CHECK(x.type_count.count("mdshm_consumer_lag_bars") == 1);  // the family is still announced
}

TEST_CASE("no segments at all still renders a valid, empty exposition") {
  const auto x = parse_exposition(metrics::render_metrics({}, {}));
  CHECK(x.errors.empty());
  CHECK(x.samples.empty());
}
