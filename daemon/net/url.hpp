// Splits wss:// and https:// URLs into what a TLS connect needs.
// Hand-written because Boost.URL arrived in Boost 1.81 and Debian bookworm ships 1.74; the feed
// needs only scheme, host, port and target, which a few lines cover exactly.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mdshm::net {

struct Url {
  std::string scheme;  // "wss" or "https" (lower case)
  std::string host;    // without IPv6 brackets
  std::uint16_t port = 0;
  std::string target;  // path + query, at least "/"
};

struct UrlResult {
  Url url;
  std::string error;  // empty = ok; otherwise names the problem
  bool ok() const { return error.empty(); }
};

// Only TLS schemes are accepted: the feed never talks to the exchange in clear text.
UrlResult parse_url(std::string_view text);

}  // namespace mdshm::net
