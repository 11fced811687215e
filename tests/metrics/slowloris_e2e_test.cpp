// /metrics under a slowloris: 200 connections that trickle a request head byte by byte and
// reconnect the moment they are closed, against a real mdshmd. Well-behaved scrapes must keep
// succeeding, and publishing (watched through a reader of the segment) must not notice.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/client.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kDaemon = std::string(MDSHM_BIN_DIR) + "/mdshmd";

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

int connect_to(std::uint16_t port, bool nonblocking) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One well-behaved scrape with a deadline, as Prometheus does it (its default timeout is 10 s).
bool scrape(std::uint16_t port, std::chrono::milliseconds timeout) {
  const int fd = connect_to(port, false);
  if (fd < 0) return false;
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[8192];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out.rfind("HTTP/1.1 200 OK", 0) == 0 && out.find("mdshm_trades_total") != std::string::npos;
}

// 200 connections, each sending one byte of an endless request head every 500 ms and replaced
// at once when the server closes it.
class Slowloris {
 public:
  Slowloris(std::uint16_t port, std::size_t n) : port_(port), fds_(n, -1) {
    thread_ = std::thread([this] { run(); });
  }
  ~Slowloris() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  std::uint64_t reconnects() const { return reconnects_; }

 private:
  void run() {
    const std::string head = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    std::vector<std::size_t> sent(fds_.size(), 0);
    auto last_trickle = Clock::now();
    while (!stop_) {
      for (std::size_t i = 0; i < fds_.size(); ++i) {
        if (fds_[i] >= 0) continue;
        fds_[i] = connect_to(port_, true);
        sent[i] = 0;
        ++reconnects_;
      }
      const bool trickle = Clock::now() - last_trickle >= 500ms;
      if (trickle) last_trickle = Clock::now();
      std::vector<pollfd> ps;
      for (int fd : fds_) ps.push_back({fd, POLLIN, 0});
      ::poll(ps.data(), ps.size(), 10);
      for (std::size_t i = 0; i < fds_.size(); ++i) {
        char buf[256];
        bool dead = (ps[i].revents & (POLLHUP | POLLERR)) != 0;
        if (!dead && (ps[i].revents & POLLIN)) dead = ::recv(fds_[i], buf, sizeof buf, 0) <= 0;
        if (!dead && trickle) {
          const char c = sent[i] < head.size() ? head[sent[i]] : 'a';
          dead = ::send(fds_[i], &c, 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN;
          ++sent[i];
        }
        if (dead) {
          ::close(fds_[i]);
          fds_[i] = -1;
        }
      }
    }
  }

  std::uint16_t port_;
  std::vector<int> fds_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> reconnects_{0};
  std::thread thread_;
};

// The longest time a reader saw no new update of a series, sampled every millisecond.
class GapWatch {
 public:
  explicit GapWatch(mdshm::Series& s) : s_(s) {
    thread_ = std::thread([this] {
      auto last = s_.updates();
      auto since = Clock::now();
      while (!stop_) {
        std::this_thread::sleep_for(1ms);
        const auto u = s_.updates();
        const auto now = Clock::now();
        if (u != last) {
          last = u;
          longest_ = std::max<std::int64_t>(longest_, std::chrono::duration_cast<std::chrono::milliseconds>(now - since).count());
          since = now;
        }
      }
    });
  }
  std::int64_t stop() {
    stop_ = true;
    thread_.join();
    return longest_;
  }

 private:
  mdshm::Series& s_;
  std::atomic<bool> stop_{false};
  std::int64_t longest_ = 0;
  std::thread thread_;
};

struct Daemon {
  std::string instance = "e2e_loris_" + std::to_string(::getpid());
  fs::path dir = fs::temp_directory_path() / ("mdshm-" + instance);
  std::uint16_t port = free_port();
  pid_t pid = -1;

  Daemon() {
    fs::create_directories(dir);
    const auto cfg = (dir / "mdshmd.toml").string();
    std::ofstream(cfg) << "[daemon]\ninstance = \"" << instance << "\"\n[source]\nkind = \"synthetic\"\n"
                       << "[source.synthetic]\nrate = 2000\nseed = 5\n[metrics]\nlisten = \"127.0.0.1:" << port << "\"\n";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const auto err = (dir / "stderr").string();
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {kDaemon, "--config", cfg};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid, kDaemon.c_str(), &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Daemon() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/dev/shm", ec))
      if (e.path().filename().string().find(instance) != std::string::npos) fs::remove_all(e.path(), ec);  // the instance directory
    fs::remove_all(dir, ec);
  }
  std::string log() const {
    std::ifstream in(dir / "stderr");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

}  // namespace

TEST_CASE("a slowloris of 200 connections neither stops scrapes nor disturbs publishing", "[metrics][e2e]") {
  Daemon d;
  bool up = false;
  for (int i = 0; i < 200 && !up; ++i) {
    up = scrape(d.port, 1s);
    if (!up) std::this_thread::sleep_for(50ms);
  }
  INFO(d.log());
  REQUIRE(up);
  auto series = mdshm::Series::open("eth_ticks", mdshm::OpenOptions{d.instance, "/dev/shm"});
  REQUIRE(series);

  GapWatch quiet(series.value());
  std::this_thread::sleep_for(2s);
  const auto gap_before = quiet.stop();

  int ok = 0;
  constexpr int kScrapes = 40;
  std::int64_t gap_during = 0;
  std::uint64_t reconnects = 0;
  {
    Slowloris attack(d.port, 200);
    std::this_thread::sleep_for(1500ms);  // every slot taken, and then some
    GapWatch watch(series.value());
    for (int i = 0; i < kScrapes; ++i) {
      ok += scrape(d.port, 3s);
      std::this_thread::sleep_for(100ms);
    }
    gap_during = watch.stop();
    reconnects = attack.reconnects();
  }
  std::printf("slowloris: %d/%d scrapes ok, %llu attacker connections, longest publish gap %lld ms during the attack "
              "(%lld ms before)\n",
              ok, kScrapes, static_cast<unsigned long long>(reconnects), static_cast<long long>(gap_during),
              static_cast<long long>(gap_before));
  CHECK(reconnects >= 200);
  CHECK(ok >= kScrapes * 95 / 100);
  // The synthetic source updates eth_ticks about a thousand times a second: a gap near the
  // heartbeat deadline would mean the exporter stole the publisher's time.
  CHECK(gap_during < 500);
  CHECK(scrape(d.port, 3s));  // and it is all still there afterwards
}
