// build/bin/mdshmd as a process: segments appear and fill, a second daemon is refused (exit 3,
// naming the holder's pid), SIGTERM stops it cleanly (exit 0), a restart re-attaches with the bars
// kept, bad configs exit 2 naming key and line. Every test uses its own instance and removes the
// files it created.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/layout.hpp"
#include "mdshm/paths.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace mdshm;

namespace {

const std::string kDaemon = std::string(MDSHM_BIN_DIR) + "/mdshmd";
const char* const kSeries[] = {"eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks"};

// A unique instance, its temp config and stderr files, and every /dev/shm file it leaves behind.
struct Instance {
  std::string name;
  fs::path dir;

  explicit Instance(const std::string& tag) {
    name = "e2e_" + tag + "_" + std::to_string(getpid());
    dir = fs::temp_directory_path() / ("mdshmd_" + name);
    fs::create_directories(dir);
  }
  ~Instance() {
    std::error_code ec;
    fs::remove_all(paths::instance_dir("/dev/shm", name), ec);
    fs::remove_all(dir, ec);
  }
  std::string write_config(const std::string& body, const std::string& file = "mdshmd.toml") const {
    const auto p = (dir / file).string();
    std::ofstream(p) << body;
    return p;
  }
  std::string synthetic_config(double rate = 5000) const {
    return write_config("[daemon]\ninstance = \"" + name + "\"\nlog_level = \"info\"\n[source]\nkind = \"synthetic\"\n"
                        "[source.synthetic]\nrate = " + std::to_string(rate) + "\nseed = 3\n"
                        "start_prices = { ETHUSDT = 1900.0, BTCUSDT = 24000.0 }\n");
  }
  std::string segment(const char* series) const { return paths::segment("/dev/shm", name, series); }
};

struct Proc {
  pid_t pid = -1;
  std::string err_path;
  int status = -1;

  // Waits up to `timeout`; returns the exit code, or -1 if it did not exit (then kills it).
  int wait_exit(std::chrono::milliseconds timeout = 5000ms) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      const pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    pid = -1;
    return -1;
  }
  std::string stderr_text() const {
    std::ifstream in(err_path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  ~Proc() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
};

Proc spawn(const Instance& inst, std::vector<std::string> args, const std::string& tag) {
  Proc p;
  p.err_path = (inst.dir / (tag + ".stderr")).string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, p.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, p.err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  args.insert(args.begin(), kDaemon);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&p.pid, kDaemon.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return p;
}

// A read-only look at a segment's header: enough to see it is valid and moving.
struct SegmentView {
  const SegmentHeader* h = nullptr;
  std::size_t size = 0;
  explicit SegmentView(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) return;
    struct stat st {};
    fstat(fd, &st);
    size = static_cast<std::size_t>(st.st_size);
    void* m = size ? mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    if (m != MAP_FAILED) h = static_cast<const SegmentHeader*>(m);
  }
  ~SegmentView() {
    if (h) munmap(const_cast<SegmentHeader*>(h), size);
  }
  HeaderProblem problem() const { return h ? validate_header(h, size) : HeaderProblem::too_small; }
  std::uint64_t head() const { return load_field(h->head, std::memory_order_acquire); }
  std::uint64_t stat(Stat s) const { return load_field(h->stats[static_cast<std::size_t>(s)]); }
  std::uint64_t generation() const { return load_field(h->generation); }
};

bool wait_for(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return cond();
}

}  // namespace

TEST_CASE("mdshmd publishes, refuses a second writer, stops on SIGTERM and re-attaches") {
  Instance inst("run");
  const auto cfg = inst.synthetic_config();
  Proc d = spawn(inst, {"--config", cfg}, "first");

  for (const char* s : kSeries) {
    INFO(s << "\n" << d.stderr_text());
    REQUIRE(wait_for([&] { return SegmentView(inst.segment(s)).problem() == HeaderProblem::none; }, 5000ms));
    struct stat st {};
    REQUIRE(stat(inst.segment(s).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
  }
  {
    // Bars move and close on time: after ~1.5 s the 1 s series has closed bars.
    SegmentView ticks(inst.segment("eth_ticks"));
    INFO(d.stderr_text());
    REQUIRE(wait_for([&] { return ticks.stat(Stat::bars_closed) >= 1 && ticks.stat(Stat::trades) > 100; }, 5000ms));
    CHECK(ticks.head() >= 2);
    SegmentView btc(inst.segment("btc_ticks"));
    CHECK(btc.stat(Stat::trades) > 0);
    CHECK(ticks.stat(Stat::rejected_values) == 0);
  }

  // A second daemon on the same instance fails at once, naming the holder's pid.
  Proc second = spawn(inst, {"--config", cfg}, "second");
  CHECK(second.wait_exit() == 3);
  CHECK(second.stderr_text().find("pid " + std::to_string(d.pid)) != std::string::npos);

  std::uint64_t head_before = 0, gen_before = 0;
  {
    SegmentView m(inst.segment("eth_1m"));
    head_before = m.head();
    gen_before = m.generation();
  }
  const pid_t first_pid = d.pid;
  REQUIRE(kill(d.pid, SIGTERM) == 0);
  CHECK(d.wait_exit() == 0);
  CHECK(d.stderr_text().find("stopping") != std::string::npos);

  // Restart: the compatible segments are re-attached, bars kept, generation bumped.
  Proc again = spawn(inst, {"--config", cfg}, "again");
  {
    INFO(again.stderr_text());
    REQUIRE(wait_for([&] {
      SegmentView m(inst.segment("eth_1m"));
      return m.problem() == HeaderProblem::none && m.generation() > gen_before;
    }, 5000ms));
    SegmentView m(inst.segment("eth_1m"));
    CHECK(m.head() >= head_before);
  }
  REQUIRE(kill(again.pid, SIGINT) == 0);
  CHECK(again.wait_exit() == 0);
  CHECK(again.stderr_text().find("re-attached") != std::string::npos);
  CHECK(first_pid != again.pid);
}

TEST_CASE("--instance overrides the config's instance") {
  Instance inst("ovr");
  const auto cfg = inst.write_config("[daemon]\ninstance = \"unused_name\"\n[source]\nkind = \"synthetic\"\n"
                                     "[[series]]\nid = \"x_1s\"\nsymbol = \"XUSDT\"\ninterval = \"1s\"\ncapacity = 10\n");
  Proc d = spawn(inst, {"--config", cfg, "--instance", inst.name}, "ovr");
  CHECK(wait_for([&] { return SegmentView(inst.segment("x_1s")).problem() == HeaderProblem::none; }, 5000ms));
  kill(d.pid, SIGTERM);
  CHECK(d.wait_exit() == 0);
  CHECK_FALSE(fs::exists(paths::segment("/dev/shm", "unused_name", "x_1s")));
}

TEST_CASE("bad configurations exit 2 naming key and line; --check-config") {
  Instance inst("cfg");
  const auto bad = inst.write_config("[daemon]\ninstance = \"" + inst.name +
                                     "\"\n[shm]\nmode = \"0666\"\n[[series]]\nid = \"x\"\nsymbol = \"XUSDT\"\n"
                                     "interval = \"2s\"\ncapacity = 10\n", "bad.toml");
  Proc p = spawn(inst, {"--config", bad}, "bad");
  CHECK(p.wait_exit() == 2);
  const auto err = p.stderr_text();
  INFO(err);
  CHECK(err.find("bad.toml:4: shm.mode") != std::string::npos);
  CHECK(err.find("bad.toml:8: series[0].interval") != std::string::npos);
  CHECK_FALSE(fs::exists(inst.segment("x")));

  Proc c = spawn(inst, {"--check-config", "--config", bad}, "check_bad");
  CHECK(c.wait_exit() == 2);

  Proc ok = spawn(inst, {"--check-config", "--config", std::string(MDSHM_SOURCE_DIR) + "/config/synthetic.toml"}, "check_ok");
  CHECK(ok.wait_exit() == 0);
  CHECK(ok.stderr_text().find("ok") != std::string::npos);

  // The live source with an exchange that cannot be reached: a clear runtime error (exit 1)
  // naming what it tried, not a hang and not a crash.
  Proc live = spawn(inst, {"--config", inst.write_config("[daemon]\ninstance = \"" + inst.name +
                                                             "\"\n[binance]\nrest_url = \"https://127.0.0.1:1\"\n"
                                                             "ws_url = \"wss://127.0.0.1:1\"\n", "live.toml")}, "live");
  CHECK(live.wait_exit(30000ms) == 1);
  CHECK(live.stderr_text().find("127.0.0.1:1") != std::string::npos);

  Proc nofile = spawn(inst, {"--config", (inst.dir / "missing.toml").string()}, "nofile");
  CHECK(nofile.wait_exit() == 2);
  Proc noarg = spawn(inst, {}, "noarg");
  CHECK(noarg.wait_exit() == 2);
}

TEST_CASE("SIGHUP reloads the log level and says what needs a restart") {
  Instance inst("hup");
  const std::string head = "[daemon]\ninstance = \"" + inst.name + "\"\nlog_level = \"%s\"\n[source]\nkind = \"synthetic\"\n"
                           "[[series]]\nid = \"x_1s\"\nsymbol = \"XUSDT\"\ninterval = \"1s\"\ncapacity = %d\n";
  auto cfg_text = [&](const char* level, int capacity) {
    char buf[512];
    std::snprintf(buf, sizeof buf, head.c_str(), level, capacity);
    return std::string(buf);
  };
  const auto cfg = inst.write_config(cfg_text("info", 10), "hup.toml");
  Proc d = spawn(inst, {"--config", cfg}, "hup");
  REQUIRE(wait_for([&] { return SegmentView(inst.segment("x_1s")).problem() == HeaderProblem::none; }, 5000ms));

  inst.write_config(cfg_text("debug", 20), "hup.toml");  // same path, new content
  REQUIRE(kill(d.pid, SIGHUP) == 0);
  CHECK(wait_for([&] { return d.stderr_text().find("reloaded") != std::string::npos; }, 5000ms));
  const auto log = d.stderr_text();
  INFO(log);
  CHECK(log.find("SIGHUP: log level info -> debug") != std::string::npos);
  CHECK(log.find("SIGHUP: series changed: needs a restart") != std::string::npos);

  // A broken file is refused as a whole and the daemon keeps running.
  inst.write_config("[daemon]\nlog_level = 42\n", "hup.toml");
  REQUIRE(kill(d.pid, SIGHUP) == 0);
  CHECK(wait_for([&] { return d.stderr_text().find("nothing reloaded") != std::string::npos; }, 5000ms));
  CHECK(SegmentView(inst.segment("x_1s")).problem() == HeaderProblem::none);
  REQUIRE(kill(d.pid, SIGTERM) == 0);
  CHECK(d.wait_exit() == 0);
}

TEST_CASE("SIGTERM while the exchange does not answer at startup stops the daemon at once") {
  Instance inst("slow");
  // A listener that never accepts: TCP connects (backlog), TLS never answers.
  const int lsock = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(lsock, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(lsock, 16) == 0);
  socklen_t len = sizeof a;
  getsockname(lsock, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string url = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  Proc d = spawn(inst, {"--config", inst.write_config("[daemon]\ninstance = \"" + inst.name + "\"\n[binance]\nrest_url = \"https://" +
                                                          url + "\"\nws_url = \"wss://" + url + "\"\n", "slow.toml")}, "slow");
  std::this_thread::sleep_for(1500ms);  // well inside the first request's timeout
  REQUIRE(kill(d.pid, SIGTERM) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(d.wait_exit(5000ms) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  INFO(d.stderr_text());
  CHECK(d.stderr_text().find("stopped during startup") != std::string::npos);
  close(lsock);
}

// Operators read these logs next to the inspector's UTC times and through journald: the stamp is
// UTC with its offset, under systemd (JOURNAL_STREAM names stderr) every line carries its syslog
// priority, and a store file created on the first start is news, not a warning.
TEST_CASE("logs: UTC with offset, journald priorities, a new history store is info") {
  Instance inst("logs");
  const auto store_dir = inst.dir / "store";
  const auto cfg = inst.write_config("[daemon]\ninstance = \"" + inst.name + "\"\nlog_level = \"info\"\n"
                                     "[source]\nkind = \"synthetic\"\n[store]\ndir = \"" + store_dir.string() +
                                     "\"\n[[series]]\nid = \"x_1s\"\nsymbol = \"XUSDT\"\ninterval = \"1s\"\n"
                                     "capacity = 10\n", "logs.toml");
  fs::create_directories(store_dir);
  // The stderr file exists before the spawn (which truncates, keeping the inode) so that
  // JOURNAL_STREAM can name it as systemd would name the journal's socket.
  const auto err_path = inst.dir / "journal.stderr";
  std::ofstream(err_path).put('\n');
  struct stat st {};
  REQUIRE(stat(err_path.c_str(), &st) == 0);
  const std::string stream = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  REQUIRE(setenv("JOURNAL_STREAM", stream.c_str(), 1) == 0);
  Proc d = spawn(inst, {"--config", cfg}, "journal");
  unsetenv("JOURNAL_STREAM");
  REQUIRE(d.err_path == err_path.string());
  REQUIRE(wait_for([&] { return d.stderr_text().find("mdshmd running") != std::string::npos; }, 10000ms));
  REQUIRE(kill(d.pid, SIGTERM) == 0);
  CHECK(d.wait_exit(10000ms) == 0);
  const auto log = d.stderr_text();
  INFO(log);
  std::istringstream lines(log);
  int n = 0;
  bool created_seen = false;
  // "<6>2026-12-01T18:30:00.123+00:00 info [pid] message"
  const std::regex line_re(R"(<([0-7])>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 (\w+) \[\d+\] (.*))");
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    ++n;
    std::smatch m;
    INFO(line);
    REQUIRE(std::regex_match(line, m, line_re));
    const std::string level = m[2].str();
    const int prio = std::stoi(m[1].str());
    if (level == "info") CHECK(prio == 6);
    if (level == "warning") CHECK(prio == 4);
    if (level == "error") CHECK(prio == 3);
    if (m[3].str().find("history store: created") != std::string::npos) {
      created_seen = true;
      CHECK(level == "info");
    }
  }
  CHECK(n >= 2);
  CHECK(created_seen);

  // Without JOURNAL_STREAM (a terminal, a file): the same UTC stamp, no priority prefix.
  Proc plain = spawn(inst, {"--config", cfg}, "plain");
  REQUIRE(wait_for([&] { return plain.stderr_text().find("mdshmd running") != std::string::npos; }, 10000ms));
  REQUIRE(kill(plain.pid, SIGTERM) == 0);
  CHECK(plain.wait_exit(10000ms) == 0);
  const auto first = plain.stderr_text().substr(0, plain.stderr_text().find('\n'));
  INFO(first);
  CHECK(std::regex_match(first, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 \w+ \[\d+\] .*)")));
}
