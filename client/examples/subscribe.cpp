// mdshm-example-subscribe: a registered consumer that blocks until the writer publishes, then
// prints what arrived. It shows up in `mdshm show SERIES` with its cursor and lag.
//
//   mdshm-example-subscribe SERIES [--instance NAME] [--shm-dir DIR] [--name NAME] [--closed N]
//
// Exits after N bars closed (default: run until killed), or with 1 when the writer dies.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <mdshm/client.hpp>

int main(int argc, char** argv) {
  mdshm::OpenOptions opt;
  std::string series, name = "example-subscriber";
  long closed_wanted = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--instance") && i + 1 < argc) opt.instance = argv[++i];
    else if (!std::strcmp(argv[i], "--shm-dir") && i + 1 < argc) opt.shm_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
    else if (!std::strcmp(argv[i], "--closed") && i + 1 < argc) closed_wanted = std::atol(argv[++i]);
    else series = argv[i];
  }
  if (series.empty()) {
    std::fprintf(stderr, "usage: %s SERIES [--instance NAME] [--name NAME] [--closed N]\n", argv[0]);
    return 2;
  }
  auto sub = mdshm::Subscription::open(name, series, opt);
  if (!sub) {
    std::fprintf(stderr, "%s\n", sub.error().message.c_str());
    return 1;
  }
  std::vector<mdshm::Bar> bars(256);  // reused: no allocation in the loop
  long closed_seen = 0;
  for (;;) {
    std::size_t n = 0;
    const mdshm::Errc e = sub->poll(bars, n);
    if (e != mdshm::Errc::ok) std::fprintf(stderr, "poll: %s\n", std::string(mdshm::to_string(e)).c_str());
    for (std::size_t i = 0; i < n; ++i) {
      const mdshm::Bar& b = bars[i];
      const bool closed = b.flags & mdshm::flag::closed;
      std::printf("%s open_time_ms=%lld close=%.2f volume=%.4f trades=%llu %s\n", series.c_str(),
                  static_cast<long long>(b.open_time_ms), b.close, b.volume,
                  static_cast<unsigned long long>(b.trade_count), closed ? "closed" : "in_progress");
      if (closed && ++closed_seen == closed_wanted) return 0;
    }
    std::fflush(stdout);
    // Blocks on the segment's futex; the writer is never slowed down by us.
    if (sub->wait(std::chrono::seconds(5)) == mdshm::WaitResult::writer_dead) {
      std::fprintf(stderr, "%s: writer dead\n", series.c_str());
      return 1;
    }
  }
}
