#include "net/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mdshm::net {
namespace {

UrlResult fail(std::string_view text, std::string_view why) {
  UrlResult r;
  r.error = "bad URL '" + std::string(text.substr(0, 200)) + "': " + std::string(why);
  return r;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

UrlResult parse_url(std::string_view text) {
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) return fail(text, "no scheme (expected wss:// or https://)");
  UrlResult r;
  r.url.scheme = lower(text.substr(0, sep));
  if (r.url.scheme != "wss" && r.url.scheme != "https")
    return fail(text, "scheme must be wss or https");

  std::string_view rest = text.substr(sep + 3);
  const auto path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  std::string_view target = path_at == std::string_view::npos ? "/" : rest.substr(path_at);
  if (authority.find('@') != std::string_view::npos) return fail(text, "user info not supported");

  std::string_view host = authority;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail(text, "unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail(text, "junk after IPv6 literal");
      port_text = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
  }
  if (host.empty()) return fail(text, "empty host");

  r.url.port = 443;
  if (!port_text.empty()) {
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return fail(text, "port must be 1..65535");
    r.url.port = static_cast<std::uint16_t>(port);
  }
  r.url.host = std::string(host);
  // Built with append rather than "/" + string: GCC 12 at -O3 warns -Wrestrict on the operator+
  // form (a false positive, GCC bug 105329), which -Werror would turn into a build failure.
  r.url.target.clear();
  if (target.front() == '?') r.url.target.push_back('/');
  r.url.target.append(target);
  return r;
}

}  // namespace mdshm::net
