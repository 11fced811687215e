// Compiled, never run: every installed header, and the calls a model process makes, at -O2 and
// -O3 with -Wall -Wextra -Wshadow -Wconversion -Werror (tests/install/CMakeLists.txt). Inlining at
// -O3 is what surfaces -Wmaybe-uninitialized in consumers' code, so the calls must be real.
#include <mdshm/adapter.hpp>
#include <mdshm/client.hpp>
#include <mdshm/layout.hpp>
#include <mdshm/paths.hpp>
#include <mdshm/registry.hpp>
#include <mdshm/registry_layout.hpp>
#include <mdshm/result.hpp>
#include <mdshm/seqlock.hpp>
#include <mdshm/series.hpp>
#include <mdshm/universal.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  mdshm::OpenOptions opt;
  opt.instance = argv[1];
  auto s = mdshm::Series::open(argv[2], opt);
  if (!s) return 1;
  mdshm::Bar bar;
  double sum = 0;
  if (s->latest(bar) == mdshm::Errc::ok) sum += bar.close;
  if (s->read(0, bar) == mdshm::Errc::ok) sum += bar.open;
  std::vector<mdshm::Bar> buf(64);
  std::size_t n = 0;
  if (s->last_n(buf, n) == mdshm::Errc::ok) sum += static_cast<double>(n);
  mdshm::Cursor c{};
  if (s->read_since(c, buf, n) == mdshm::Errc::ok) sum += static_cast<double>(n);
  (void)s->wait(std::chrono::milliseconds(1));
  sum += static_cast<double>(s->update_age().count());

  auto sub = mdshm::Subscription::open("strict-check", argv[2], opt);
  if (sub && sub->poll(buf, n) == mdshm::Errc::ok) sum += static_cast<double>(n);

  auto u = mdshm::Universal::open(opt);
  mdshm::UniversalSnapshot snap;
  if (u.snapshot(snap) == mdshm::Errc::ok) sum += static_cast<double>(snap.timestamp_ns);
  std::printf("%f\n", sum);
  return 0;
}
