// Shared by the parse suites: the real captures in ../shared/data/binance, loaded as frames.
#pragma once

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "parse/capture_line.hpp"

namespace mdshm::parse::test {

inline std::string data_path(const std::string& rel) { return std::string(MDSHM_SHARED_DATA_DIR) + "/" + rel; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every frame of a capture file (`<receive-time>: <frame>` lines after a URL header line).
inline std::vector<std::string> capture_frames(const std::string& rel) {
  std::vector<std::string> frames;
  std::ifstream in(data_path(rel));
  std::string line;
  while (std::getline(in, line))
    if (auto c = parse_capture_line(line)) frames.emplace_back(c->frame);
  return frames;
}

inline const std::vector<std::string>& capture_files() {
  static const std::vector<std::string> files = {"ws/cryptofeed-BINANCE.ws.1.0", "ws/cryptofeed-BINANCE_TR.ws.1.0"};
  return files;
}

// Every real frame we have: both captures plus the pretty-printed single frames.
inline std::vector<std::string> all_real_frames() {
  std::vector<std::string> all;
  for (const auto& f : capture_files())
    for (auto& fr : capture_frames(f)) all.push_back(std::move(fr));
  all.push_back(read_file(data_path("ws/ws_spot_agg_trade.json")));
  all.push_back(read_file(data_path("ws/ws_spot_trade.json")));
  return all;
}

// Shortest fixed-notation decimal that reads back as `v` (what a CSV printer would write).
inline std::string shortest(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return std::string(buf, end);
}

// "1632.46000000" -> "1632.46", "58.00000000" -> "58": the exchange's digits without padding.
inline std::string strip_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace mdshm::parse::test
