// mdshmd --record FILE: every frame received, one per line, as "<receive-time>: <frame>" with the
// receive time in Unix seconds and 7 decimals (the format of shared/data/binance/ws/, which
// mdshm-sim --replay reads back). Buffered by stdio; flush() from the feed's timer.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace mdshm::feed {

class FrameRecorder {
 public:
  FrameRecorder() = default;
  ~FrameRecorder() { close(); }
  FrameRecorder(const FrameRecorder&) = delete;
  FrameRecorder& operator=(const FrameRecorder&) = delete;

  // Appends to `path`; false (and errno set) when it cannot be opened.
  bool open(const std::string& path) {
    close();
    f_ = std::fopen(path.c_str(), "a");
    return f_ != nullptr;
  }
  bool is_open() const { return f_ != nullptr; }
  void write(std::int64_t recv_wall_ns, std::string_view frame) {
    if (!f_) return;
    const std::int64_t s = recv_wall_ns / 1'000'000'000;
    const std::int64_t frac = (recv_wall_ns % 1'000'000'000) / 100;
    std::fprintf(f_, "%" PRId64 ".%07" PRId64 ": ", s, frac);
    std::fwrite(frame.data(), 1, frame.size(), f_);
    std::fputc('\n', f_);
  }
  void flush() {
    if (f_) std::fflush(f_);
  }
  void close() {
    if (f_) std::fclose(f_);
    f_ = nullptr;
  }

 private:
  std::FILE* f_ = nullptr;
};

}  // namespace mdshm::feed
