// `--series id:SYMBOL:interval_s:capacity`, as the test writers (mdshm-synthetic-writer,
// mdshm-py-writer) take it.
#pragma once

#include <stdexcept>
#include <string>

#include "publish/segment_writer.hpp"

namespace mdshm::test {

inline mdshm::publish::SeriesSpec parse_spec(const std::string& s) {
  mdshm::publish::SeriesSpec spec;
  const auto a = s.find(':'), b = s.find(':', a + 1), c = s.find(':', b + 1);
  if (a == std::string::npos || b == std::string::npos || c == std::string::npos)
    throw std::runtime_error("--series wants id:SYMBOL:interval_s:capacity, got " + s);
  spec.id = s.substr(0, a);
  spec.symbol = s.substr(a + 1, b - a - 1);
  spec.interval_s = static_cast<std::uint32_t>(std::stoul(s.substr(b + 1, c - b - 1)));
  spec.capacity = std::stoull(s.substr(c + 1));
  return spec;
}

}  // namespace mdshm::test
