// Reads the newest bar of one series from an installed mdshm client: mdshm-consumer INSTANCE SERIES
#include <cstdio>
#include <string>

#include <mdshm/client.hpp>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  mdshm::OpenOptions opt;
  opt.instance = argv[1];
  auto s = mdshm::Series::open(argv[2], opt);
  if (!s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return 1;
  }
  mdshm::Bar bar;
  if (s->latest(bar) != mdshm::Errc::ok) return 1;
  std::printf("%s %s close=%.2f bars=%llu layout=%u\n", argv[2], std::string(s->symbol()).c_str(), bar.close,
              static_cast<unsigned long long>(s->size()), static_cast<unsigned>(mdshm::kLayoutMajor));
  return 0;
}
