// mdshm-example-latest: print the newest bar of each series. The smallest useful consumer.
//
//   mdshm-example-latest [--instance NAME] [--shm-dir DIR] [SERIES...]   (default: the five)
//
// Exit code: 0 if every series was read, 1 otherwise.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <mdshm/client.hpp>

int main(int argc, char** argv) {
  mdshm::OpenOptions opt;
  std::vector<std::string> series;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--instance") && i + 1 < argc) opt.instance = argv[++i];
    else if (!std::strcmp(argv[i], "--shm-dir") && i + 1 < argc) opt.shm_dir = argv[++i];
    else series.emplace_back(argv[i]);
  }
  if (series.empty()) series.assign(mdshm::kUniversalSeries.begin(), mdshm::kUniversalSeries.end());

  int failures = 0;
  for (const auto& id : series) {
    auto s = mdshm::Series::open(id, opt);
    if (!s) {  // errors are values: the message names the segment and the problem
      std::fprintf(stderr, "%s: %s\n", id.c_str(), s.error().message.c_str());
      ++failures;
      continue;
    }
    mdshm::Bar bar{};  // GCC 12 cannot see that latest() fills it whenever it returns ok
    std::uint64_t index = 0;
    const mdshm::Errc e = s->latest(bar, &index);
    if (e != mdshm::Errc::ok) {
      std::fprintf(stderr, "%s: %s\n", id.c_str(), std::string(mdshm::to_string(e)).c_str());
      ++failures;
      continue;
    }
    const bool fresh = s->is_fresh(std::chrono::seconds(5));
    std::printf("%-10s %-8s bar #%llu open_time_ms=%lld open=%.2f high=%.2f low=%.2f close=%.2f volume=%.4f %s%s\n",
                id.c_str(), std::string(s->symbol()).c_str(), static_cast<unsigned long long>(index),
                static_cast<long long>(bar.open_time_ms), bar.open, bar.high, bar.low, bar.close, bar.volume,
                (bar.flags & mdshm::flag::in_progress) ? "in_progress" : "closed", fresh ? "" : " STALE");
  }
  return failures == 0 ? 0 : 1;
}
