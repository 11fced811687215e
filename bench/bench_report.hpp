// Percentiles, medians over repeated rounds and the plain-text tables bench_shm prints.
//
// Every table row is the median, over rounds, of that round's statistic: the machine is shared
// and noisy, and one bad round should not move the answer. Ratios are taken inside a round and
// then their median reported, never a ratio of two medians from different moments.
#pragma once

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace bench {

struct Stats {
  double p50 = 0, p99 = 0, p999 = 0, mean = 0, max = 0, min = 0;
  std::size_t n = 0;
};

// Nearest-rank percentiles of samples already converted to ns.
inline Stats summarize(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) { return v[std::min(v.size() - 1, static_cast<std::size_t>(std::ceil(p * v.size())) - 1)]; };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.p999 = rank(0.999);
  s.max = v.back();
  s.min = v.front();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

// Every sample of a long timed loop, in TSC ticks: exact below 2^16 ticks (25 µs at 2.6 GHz),
// power-of-two buckets above. Lets a case run for a fixed time, whatever its speed, without
// keeping the samples; lives in shared memory when a child process fills it.
struct TickHist {
  static constexpr std::size_t kLinear = 1 << 16;
  std::uint64_t linear[kLinear];
  std::uint64_t log2[64];
  std::uint64_t count, sum, max;

  void add(std::uint64_t t) {
    if (t < kLinear) ++linear[t];
    else ++log2[63 - __builtin_clzll(t)];
    ++count;
    sum += t;
    max = t > max ? t : max;
  }
  // Percentiles in ns; each sample divided by `per` (calls per timed batch).
  Stats summarize(double ticks_per_ns, double per = 1) const {
    Stats s;
    s.n = count;
    if (count == 0) return s;
    auto ns = [&](double ticks) { return ticks / ticks_per_ns / per; };
    auto rank = [&](double p) {
      const auto want = static_cast<std::uint64_t>(std::ceil(p * static_cast<double>(count)));
      std::uint64_t seen = 0;
      for (std::size_t i = 0; i < kLinear; ++i)
        if ((seen += linear[i]) >= want) return ns(static_cast<double>(i));
      for (std::size_t b = 0; b < 64; ++b)
        if ((seen += log2[b]) >= want) return ns(static_cast<double>(1ULL << b));  // bucket's lower bound
      return ns(static_cast<double>(max));
    };
    s.p50 = rank(0.50);
    s.p99 = rank(0.99);
    s.p999 = rank(0.999);
    s.mean = ns(static_cast<double>(sum) / static_cast<double>(count));
    s.max = ns(static_cast<double>(max));
    return s;
  }
};

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// Collects one Stats per round per row label, in first-seen order, and prints medians.
class Table {
 public:
  explicit Table(std::string title) : title_(std::move(title)) {}

  void add(const std::string& row, const Stats& s) {
    if (!rows_.count(row)) order_.push_back(row);
    rows_[row].push_back(s);
  }
  // A free-form number per round (a ratio, a count), printed as its median in the notes column.
  void note(const std::string& row, const std::string& key, double v) {
    if (!rows_.count(row)) {
      order_.push_back(row);
      rows_[row];
    }
    auto& keys = note_keys_[row];
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    notes_[row][key].push_back(v);
  }
  void target(const std::string& row, const std::string& t) { targets_[row] = t; }
  double median_of(const std::string& row, double Stats::*field) const {
    std::vector<double> v;
    if (auto it = rows_.find(row); it != rows_.end())
      for (const auto& s : it->second) v.push_back(s.*field);
    return median(v);
  }
  double median_note(const std::string& row, const std::string& key) const {
    auto it = notes_.find(row);
    if (it == notes_.end()) return NAN;
    auto k = it->second.find(key);
    return k == it->second.end() ? NAN : median(k->second);
  }

  void print(std::FILE* out = stdout) const {
    std::size_t w = 8;
    for (const auto& r : order_) w = std::max(w, r.size());
    std::fprintf(out, "\n## %s\n\n", title_.c_str());
    std::fprintf(out, "| %-*s | rounds | samples/round | p50 ns | p99 ns | p99.9 ns | mean ns | target | notes |\n",
                 static_cast<int>(w), "case");
    std::fprintf(out, "|%s|-------:|--------------:|-------:|-------:|---------:|--------:|--------|-------|\n",
                 std::string(w + 2, '-').c_str());
    for (const auto& r : order_) {
      const auto& runs = rows_.at(r);
      std::string notes;
      if (auto it = note_keys_.find(r); it != note_keys_.end())
        for (const auto& k : it->second) {
          char buf[96];
          std::snprintf(buf, sizeof buf, "%s%s=%s", notes.empty() ? "" : ", ", k.c_str(),
                        fmt_num(median_note(r, k)).c_str());
          notes += buf;
        }
      const auto t = targets_.count(r) ? targets_.at(r) : std::string();
      if (runs.empty()) {
        std::fprintf(out, "| %-*s | | | | | | | %s | %s |\n", static_cast<int>(w), r.c_str(), t.c_str(), notes.c_str());
        continue;
      }
      std::vector<double> n;
      for (const auto& s : runs) n.push_back(static_cast<double>(s.n));
      std::fprintf(out, "| %-*s | %6zu | %13.0f | %6s | %6s | %8s | %7s | %s | %s |\n", static_cast<int>(w), r.c_str(),
                   runs.size(), median(n), fmt_num(median_of(r, &Stats::p50)).c_str(),
                   fmt_num(median_of(r, &Stats::p99)).c_str(), fmt_num(median_of(r, &Stats::p999)).c_str(),
                   fmt_num(median_of(r, &Stats::mean)).c_str(), t.c_str(), notes.c_str());
    }
    std::fflush(out);
  }

  static std::string fmt_num(double v) {
    char buf[32];
    if (std::isnan(v)) return "-";
    if (std::fabs(v) >= 100 || v == std::floor(v)) std::snprintf(buf, sizeof buf, "%.0f", v);
    else if (std::fabs(v) >= 10) std::snprintf(buf, sizeof buf, "%.1f", v);
    else std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
  }

 private:
  std::string title_;
  std::vector<std::string> order_;
  std::map<std::string, std::vector<Stats>> rows_;
  std::map<std::string, std::vector<std::string>> note_keys_;
  std::map<std::string, std::map<std::string, std::vector<double>>> notes_;
  std::map<std::string, std::string> targets_;
};

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  return "unknown";
}

inline std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

inline void print_machine(double ticks_per_ns, double timer_overhead_ns) {
  utsname u{};
  ::uname(&u);
  std::printf("# machine\n\n");
  std::printf("- CPU: %s, %ld online cores, TSC %.3f GHz (calibrated), timer overhead %.1f ns (subtracted)\n",
              cpu_model().c_str(), ::sysconf(_SC_NPROCESSORS_ONLN), ticks_per_ns, timer_overhead_ns);
  std::printf("- kernel: %s %s, clocksource %s\n", u.sysname, u.release,
              first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource").c_str());
  std::printf("- load average at start: %s\n", first_line("/proc/loadavg").c_str());
  std::fflush(stdout);
}

}  // namespace bench
