// End to end: mdshm-sim (replaying the real ETHUSDT 1m klines of 2022-08-14/15 at 60x, BTC derived)
// -> mdshmd over TLS -> the client library reading the segments. The 1m bars must equal the
// simulator's CSV rows (OHLC exactly, volumes to 1e-9, trade counts), contiguous, none flagged
// not_repaired or reconcile_diff (a built bar that the exchange had to correct means a lost or
// doubled trade), through the faults the simulator injects.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "spawn_logged.hpp"
#include "mdshm/client.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string kKlines = std::string(MDSHM_SHARED_DATA_DIR) + "/klines/";
const std::string kDay14 = kKlines + "ETHUSDT-1m-2022-08-14.csv";
const std::string kDay15 = kKlines + "ETHUSDT-1m-2022-08-15.csv";
constexpr std::int64_t kStartMs = 1660522200000;  // 2022-08-15 00:10 UTC: a day of history before it
constexpr std::int64_t kMinute = 60'000;

struct Row {
  double open, high, low, close, volume;
  std::uint64_t trades;
};

std::map<std::int64_t, Row> load_csv() {
  std::map<std::int64_t, Row> rows;
  for (const auto& path : {kDay14, kDay15}) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
      if (f.size() < 9) continue;
      rows[std::stoll(f[0])] = {std::strtod(f[1].c_str(), nullptr), std::strtod(f[2].c_str(), nullptr),
                               std::strtod(f[3].c_str(), nullptr), std::strtod(f[4].c_str(), nullptr),
                               std::strtod(f[5].c_str(), nullptr), std::stoull(f[8])};
    }
  }
  return rows;
}

pid_t spawn(std::vector<std::string> args, const std::string& log) {
  const pid_t pid = mdshm::sim::spawn_logged(std::move(args), log);
  REQUIRE(pid > 0);
  return pid;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for a child with a deadline; SIGKILL after it. Returns the exit status.
int reap(pid_t pid, std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(20ms);
  }
  return status;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("mdshm-feed-e2e-" + std::to_string(getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    if (!std::getenv("MDSHM_E2E_KEEP")) fs::remove_all(path, ec);
  }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

class Sim {
 public:
  Sim(const TempDir& dir, const std::string& faults, int speed = 60, std::vector<std::string> extra = {}) : dir_(dir) {
    std::vector<std::string> args = {std::string(MDSHM_BIN_DIR) + "/mdshm-sim",
                                     "--klines", "ETHUSDT:1m:" + kDay14 + "," + kDay15,
                                     "--derive", "BTCUSDT:ETHUSDT:12.5",
                                     "--speed", std::to_string(speed), "--start", std::to_string(kStartMs),
                                     "--ca-out", dir / "ca.pem", "--control", "0",
                                     "--request-log", dir / "requests.log"};
    args.insert(args.end(), extra.begin(), extra.end());
    if (!faults.empty()) {
      std::ofstream(dir / "faults.txt") << faults;
      args.insert(args.end(), {"--faults", dir / "faults.txt"});
    }
    pid_ = spawn(args, dir / "sim.log");
    const std::regex listening("listening ws=wss://127\\.0\\.0\\.1:(\\d+)");
    const std::regex control("control=127\\.0\\.0\\.1:(\\d+)");
    for (int i = 0; i < 500 && port_ == 0; ++i) {
      std::this_thread::sleep_for(10ms);
      const auto log = slurp(dir / "sim.log");
      std::smatch m;
      if (std::regex_search(log, m, control)) control_port_ = std::stoi(m[1]);
      if (std::regex_search(log, m, listening)) port_ = std::stoi(m[1]);
    }
    REQUIRE(port_ != 0);
  }
  ~Sim() {
    kill(pid_, SIGTERM);
    reap(pid_, 3000ms);
  }
  int port() const { return port_; }

  // One control command; the reply line.
  std::string command(const std::string& cmd) {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(control_port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string reply;
    if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const std::string line = cmd + "\n";
      (void)!write(s, line.data(), line.size());
      char buf[256];
      for (ssize_t n; (n = read(s, buf, sizeof buf)) > 0;) {
        reply.append(buf, static_cast<std::size_t>(n));
        if (reply.find('\n') != std::string::npos) break;
      }
    }
    close(s);
    return reply;
  }
  std::int64_t clock_ms() {
    const auto r = command("clock");
    return r.rfind("ok ", 0) == 0 ? std::stoll(r.substr(3)) : -1;
  }

 private:
  const TempDir& dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  int control_port_ = 0;
};

std::string config(const TempDir& dir, int port, const std::string& shm, const std::string& extra_binance = "") {
  const std::string url = "127.0.0.1:" + std::to_string(port);
  return "[daemon]\ninstance = \"e2e\"\nlog_level = \"info\"\n"
         "[shm]\ndir = \"" + shm + "\"\n"
         "[source]\nkind = \"binance\"\n"
         "[binance]\nws_url = \"wss://" + url + "\"\nrest_url = \"https://" + url + "\"\nca_file = \"" +
         (dir / "ca.pem") + "\"\nwatchdog_s = 1\n" + extra_binance +
         "[store]\ndir = \"" + (dir / "store") + "\"\nfsync = \"interval\"\n"
         "[[series]]\nid = \"eth_ticks\"\nsymbol = \"ETHUSDT\"\ninterval = \"1s\"\ncapacity = 1200\nbackfill_depth = 120\n"
         "[[series]]\nid = \"eth_1m\"\nsymbol = \"ETHUSDT\"\ninterval = \"1m\"\ncapacity = 600\nbackfill_depth = 30\n"
         "[[series]]\nid = \"eth_1h\"\nsymbol = \"ETHUSDT\"\ninterval = \"1h\"\ncapacity = 48\nbackfill_depth = 5\n"
         "[[series]]\nid = \"btc_ticks\"\nsymbol = \"BTCUSDT\"\ninterval = \"1s\"\ncapacity = 1200\nbackfill_depth = 120\n";
}

class Daemon {
 public:
  Daemon(const TempDir& dir, const std::string& cfg_text, const std::string& name, std::vector<std::string> extra = {})
      : log_(dir / (name + ".log")) {
    const auto cfg = dir / (name + ".toml");
    std::ofstream(cfg) << cfg_text;
    std::vector<std::string> args = {std::string(MDSHM_BIN_DIR) + "/mdshmd", "--config", cfg};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = spawn(args, log_);
  }
  ~Daemon() {
    if (pid_ > 0) stop();
  }
  int stop() {
    kill(pid_, SIGTERM);
    const int st = reap(pid_, 5000ms);
    pid_ = -1;
    return st;
  }
  void kill9() {
    kill(pid_, SIGKILL);
    reap(pid_, 2000ms);
    pid_ = -1;
  }
  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  void pause(std::chrono::milliseconds d) {
    ::kill(pid_, SIGSTOP);
    std::this_thread::sleep_for(d);
    ::kill(pid_, SIGCONT);
  }
  std::string log() const { return slurp(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

mdshm::OpenOptions shm_options(const std::string& shm) {
  mdshm::OpenOptions o;
  o.instance = "e2e";
  o.shm_dir = shm;
  return o;
}

std::vector<mdshm::Bar> read_all(const std::string& shm, const std::string& id) {
  auto s = mdshm::Series::open(id, shm_options(shm));
  if (!s) return {};
  std::vector<mdshm::Bar> bars(s->capacity());
  std::size_t n = 0;
  if (s->last_n(bars, n) != mdshm::Errc::ok) return {};
  bars.resize(n);
  return bars;
}

std::size_t bars_flagged(const std::string& shm, const std::string& id, std::uint32_t flag) {
  std::size_t n = 0;
  for (const auto& b : read_all(shm, id)) n += (b.flags & flag) != 0;
  return n;
}

std::uint64_t stat(const std::string& shm, const std::string& id, mdshm::Stat st) {
  auto s = mdshm::Series::open(id, shm_options(shm));
  return s ? s->stat(st) : 0;
}

// Asks `done` every `every` until it says yes or `limit` has passed; its last answer.
template <class Done>
bool poll_until(std::chrono::milliseconds limit, std::chrono::milliseconds every, Done done) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(every);
  }
}

// Waits until eth_1m has at least `live` closed bars built from the stream (or times out).
void wait_for_bars(const std::string& shm, std::size_t live, std::chrono::seconds limit) {
  poll_until(limit, 100ms, [&] {
    std::size_t n = 0;
    for (const auto& b : read_all(shm, "eth_1m"))
      n += (b.flags & mdshm::flag::closed) && !(b.flags & (mdshm::flag::backfilled | mdshm::flag::from_store));
    return n >= live;
  });
}

struct Checked {
  std::size_t closed = 0, live = 0, backfilled = 0, from_store = 0, diffs = 0;
  std::int64_t first_open = 0, last_open = 0;
};

// Every closed eth_1m bar equals the CSV row of its minute; bars are contiguous; no bar is flagged
// not_repaired; at most `max_diffs` bars built from the stream needed the exchange's correction
// (reconcile_diff: a lost or doubled trade, or one a fault kept back until after the exchange's
// closed kline; the simulator's trades add up to the CSV rows exactly, quote volume included).
Checked check_eth_1m(const std::string& shm, const std::map<std::int64_t, Row>& csv, std::size_t max_diffs = 0) {
  Checked c;
  const auto bars = read_all(shm, "eth_1m");
  REQUIRE(!bars.empty());
  std::int64_t prev = -1;
  for (const auto& b : bars) {
    if (!(b.flags & mdshm::flag::closed)) continue;
    INFO("bar " << b.open_time_ms << " flags " << b.flags);
    if (prev >= 0) CHECK(b.open_time_ms == prev + kMinute);
    prev = b.open_time_ms;
    if (!c.closed) c.first_open = b.open_time_ms;
    c.last_open = b.open_time_ms;
    ++c.closed;
    if (b.flags & mdshm::flag::from_store) ++c.from_store;
    else if (b.flags & mdshm::flag::backfilled) ++c.backfilled;
    else {
      ++c.live;
      c.diffs += (b.flags & mdshm::flag::reconcile_diff) != 0;
    }
    CHECK((b.flags & mdshm::flag::not_repaired) == 0);
    const auto it = csv.find(b.open_time_ms);
    REQUIRE(it != csv.end());
    const Row& r = it->second;
    CHECK(b.open == r.open);
    CHECK(b.high == r.high);
    CHECK(b.low == r.low);
    CHECK(b.close == r.close);
    CHECK(std::fabs(b.volume - r.volume) <= 1e-9 * r.volume + 1e-12);
    CHECK(b.trade_count == r.trades);
  }
  CHECK(c.diffs <= max_diffs);
  return c;
}

bool equals_row(const mdshm::Bar& b, const Row& r) {
  return b.open == r.open && b.high == r.high && b.low == r.low && b.close == r.close &&
         std::fabs(b.volume - r.volume) <= 1e-9 * r.volume + 1e-12 && b.trade_count == r.trades;
}

// Closed eth_1m bars that differ from the CSV row of their minute (or have none) and carry no flag
// that says so: silently wrong bars. This must be 0 at any moment (a bar is right, or flagged and
// healed later). A bar built from the stream is final only once the exchange's closed kline has
// reconciled it, which comes right after its minute unless the stream is held back: with
// `exchange_now_ms`, bars that closed less than `kReconcileWindow` before it are not counted yet.
constexpr std::int64_t kReconcileWindow = 5 * kMinute;
std::size_t silently_wrong(const std::string& shm, const std::map<std::int64_t, Row>& csv,
                           std::vector<std::string>* seen = nullptr, std::int64_t exchange_now_ms = 0) {
  std::size_t n = 0;
  for (const auto& b : read_all(shm, "eth_1m")) {
    if (!(b.flags & mdshm::flag::closed) || (b.flags & mdshm::flag::not_repaired)) continue;
    if (exchange_now_ms && b.open_time_ms + kMinute + kReconcileWindow > exchange_now_ms) continue;
    const auto it = csv.find(b.open_time_ms);
    if (it == csv.end() || !equals_row(b, it->second)) {
      if (seen)
        seen->push_back(std::to_string(b.open_time_ms) + " flags " + std::to_string(b.flags) + " volume " +
                        std::to_string(b.volume) + " trades " + std::to_string(b.trade_count));
      ++n;
    }
  }
  return n;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (std::size_t i = 0; i < lines.size() && i < 20; ++i) out += lines[i] + "\n";
  return out;
}

// Bars of any series flagged not_repaired although they carry the exchange's values (reconciled).
std::size_t reconciled_but_not_repaired(const std::string& shm) {
  std::size_t n = 0;
  for (const auto& id : {"eth_ticks", "eth_1m", "eth_1h", "btc_ticks"})
    for (const auto& b : read_all(shm, id))
      n += (b.flags & mdshm::flag::reconciled) && (b.flags & mdshm::flag::not_repaired);
  return n;
}

// The 1s bars of each complete minute add up to that minute's 1m row: a lost or doubled trade in
// the ticks series shows here even where the 1m bar was reconciled.
// `max_diffs`: 1s bars the exchange's kline had to correct. An aggTrade hole is seen only when the
// next trade arrives, so the closed 1s klines of the seconds inside it can come first and win;
// the repaired trades then find those bars final. Values stay right (the sums below check them).
void check_ticks_sum(const std::string& shm, const std::map<std::int64_t, Row>& csv, std::int64_t from_ms,
                     int max_diffs = 0) {
  int diffs = 0;
  std::map<std::int64_t, std::pair<double, std::uint64_t>> per_minute;
  std::map<std::int64_t, int> seconds;
  for (const auto& b : read_all(shm, "eth_ticks")) {
    if (!(b.flags & mdshm::flag::closed) || b.open_time_ms < from_ms) continue;
    INFO("1s bar " << b.open_time_ms << " flags " << b.flags);
    CHECK((b.flags & mdshm::flag::not_repaired) == 0);
    diffs += (b.flags & mdshm::flag::reconcile_diff) != 0;
    const auto m = b.open_time_ms - b.open_time_ms % kMinute;
    per_minute[m].first += b.volume;
    per_minute[m].second += b.trade_count;
    ++seconds[m];
  }
  int complete = 0;
  for (const auto& [m, v] : per_minute) {
    if (seconds[m] != 60) continue;
    ++complete;
    const Row& r = csv.at(m);
    INFO("minute " << m);
    CHECK(v.second == r.trades);
    CHECK(std::fabs(v.first - r.volume) <= 1e-6 * r.volume + 1e-9);
  }
  CHECK(complete >= 3);
  CHECK(diffs <= max_diffs);
}

// The 1h bar in progress covers the whole hour so far, also the minutes before the daemon started:
// its open is the hour's first CSV row's and it holds at least every trade of those minutes.
void check_hour_in_progress(const std::string& shm, const std::map<std::int64_t, Row>& csv) {
  const auto bars = read_all(shm, "eth_1h");
  REQUIRE(!bars.empty());
  const auto& b = bars.back();
  INFO("1h bar " << b.open_time_ms << " flags " << b.flags << " trades " << b.trade_count);
  REQUIRE((b.flags & mdshm::flag::in_progress) != 0);
  const std::int64_t hour = kStartMs - kStartMs % (60 * kMinute);
  REQUIRE(b.open_time_ms == hour);
  std::uint64_t before_start = 0, whole_hour = 0;
  double high = 0, low = 1e300;
  for (auto it = csv.lower_bound(hour); it != csv.end() && it->first < hour + 60 * kMinute; ++it) {
    whole_hour += it->second.trades;
    if (it->first >= kStartMs) continue;
    before_start += it->second.trades;
    high = std::max(high, it->second.high);
    low = std::min(low, it->second.low);
  }
  CHECK(b.open == csv.at(hour).open);
  CHECK(b.trade_count >= before_start);
  CHECK(b.trade_count <= whole_hour);
  CHECK(b.high >= high);
  CHECK(b.low <= low);
}

std::vector<std::string> klines_requests(const std::string& log, std::size_t skip_lines, const std::string& interval) {
  std::vector<std::string> out;
  std::istringstream in(log);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line); ++n)
    if (n >= skip_lines && line.find("/api/v3/klines") != std::string::npos &&
        line.find("interval=" + interval + "&") != std::string::npos)
      out.push_back(line);
  return out;
}

std::int64_t param(const std::string& line, const std::string& name) {
  const auto at = line.find(name + "=");
  return at == std::string::npos ? -1 : std::stoll(line.substr(at + name.size() + 1));
}

std::size_t line_count(const std::string& path) {
  const auto s = slurp(path);
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

// The klines requests logged after line `before` of the simulator's request log all start at most
// a minute before `since_ms`: history already on disk was not fetched again.
void check_klines_fetched_only_since(const TempDir& dir, std::size_t before, std::int64_t since_ms,
                                     bool expect_requests) {
  const auto log = slurp(dir / "requests.log");
  INFO(log);
  for (const auto& iv : {"1m", "1s"}) {
    const auto reqs = klines_requests(log, before, iv);
    if (expect_requests) CHECK(!reqs.empty());
    for (const auto& r : reqs) CHECK(param(r, "startTime") >= since_ms - kMinute);
  }
}

// The simulator (no scripted faults) and a daemon on it, live with two closed 1m bars: the setup
// of the cases that then inject faults through the control port.
struct LiveRun {
  const std::map<std::int64_t, Row> csv = load_csv();
  TempDir dir;
  Sim sim;
  const std::string shm;
  Daemon d;
  explicit LiveRun(int speed, const std::string& extra_binance = "")
      : sim(dir, "", speed), shm(made_dir(dir / "shm")), d(dir, config(dir, sim.port(), shm, extra_binance), "daemon") {
    wait_for_bars(shm, 2, 25s);
    REQUIRE(d.alive());
  }
  static std::string made_dir(const std::string& path) {
    fs::create_directories(path);
    return path;
  }
};

}  // namespace

TEST_CASE("clean run: backfill, catch-up and live bars equal the exchange's klines", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  Sim sim(dir, "");
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm), "daemon", {"--record", dir / "frames.rec"});
  wait_for_bars(shm, 6, 20s);
  REQUIRE(d.alive());
  const auto c = check_eth_1m(shm, csv);
  CHECK(c.backfilled == 30);
  CHECK(c.live >= 5);
  check_ticks_sum(shm, csv, kStartMs);
  check_hour_in_progress(shm, csv);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::reconcile_checks) + 2 >= c.live);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::parse_errors) == 0);
  CHECK(stat(shm, "btc_ticks", mdshm::Stat::trades) > 1000);
  CHECK(d.stop() == 0);
  // --record wrote the frames in the capture format.
  const auto rec = slurp(dir / "frames.rec");
  CHECK(std::regex_search(rec, std::regex("(^|\\n)[0-9]+\\.[0-9]{7}: \\{\"stream\":\"ethusdt@aggTrade\"")));
}

TEST_CASE("faults: drop, stall, id hole, duplicates, reordering, malformed frames are repaired", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  // Seconds after the simulator starts (the daemon is live about half a second later).
  Sim sim(dir,
          "2.0 drop\n"
          "3.5 hole 40\n"
          "4.5 duplicate 30\n"
          "5.0 malformed 4\n"
          "5.2 truncate 3\n"
          "6.0 stall 2.5\n"
          "9.5 reorder 10\n");
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm), "daemon");
  std::this_thread::sleep_for(13s);
  REQUIRE(d.alive());
  const auto c = check_eth_1m(shm, csv, 2);  // a hole seen only after its minute's kline
  CHECK(c.live >= 8);
  check_ticks_sum(shm, csv, kStartMs, 10);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::reconnects) >= 2);       // drop + stall
  CHECK(stat(shm, "eth_1m", mdshm::Stat::gaps_detected) >= 3);     // drop, hole, stall
  CHECK(stat(shm, "eth_1m", mdshm::Stat::gaps_repaired) >= 3);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::duplicate_trades) >= 1);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::parse_errors) >= 7);      // 4 malformed + 3 truncated
  CHECK(stat(shm, "btc_ticks", mdshm::Stat::not_repaired_bars) == 0);
  CHECK(d.stop() == 0);
}

TEST_CASE("connection lifetime and serverShutdown: the daemon rotates with overlap, no gap", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  // Binance's 24 h limit compressed: the simulator cuts every WebSocket after 4 s; the daemon
  // rotates after 2.5 s. A serverShutdown comes at 6 s. Each rotation overlaps the old connection
  // until the new one delivers, so no trade is missed and no gap has to be repaired.
  Sim sim(dir, "6.0 shutdown\n", 60, {"--max-conn-lifetime", "4"});
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm, "rotate_after_s = 2.5\n"), "daemon");
  std::this_thread::sleep_for(11s);
  REQUIRE(d.alive());
  const auto log = d.log();
  INFO(log);
  std::size_t rotations = 0;
  for (auto at = log.find("stream rotated"); at != std::string::npos; at = log.find("stream rotated", at + 1)) ++rotations;
  CHECK(rotations >= 3);
  CHECK(log.find("serverShutdown received") != std::string::npos);
  const auto c = check_eth_1m(shm, csv);
  CHECK(c.live >= 8);
  check_ticks_sum(shm, csv, kStartMs);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::gaps_detected) == 0);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::reconnects) == 0);
  // Trades both connections delivered during an overlap are expected: not counted as duplicates.
  CHECK(stat(shm, "eth_1m", mdshm::Stat::duplicate_trades) == 0);
  CHECK(std::regex_search(log, std::regex("rotation overlap over: [1-9][0-9]* trade\\(s\\) came on both")));
  CHECK(d.stop() == 0);
}

TEST_CASE("daemon paused for 3 s (3 minutes of exchange time): the backlog lands in its own bars", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  Sim sim(dir, "");
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm), "daemon");
  wait_for_bars(shm, 2, 20s);
  d.pause(3s);  // frames queue in the socket; the exchange clock moves on
  std::this_thread::sleep_for(5s);
  REQUIRE(d.alive());
  INFO(d.log());
  const auto c = check_eth_1m(shm, csv);  // no bar closed before its trades were in
  CHECK(c.live >= 6);
  check_ticks_sum(shm, csv, kStartMs);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::out_of_order) == 0);
  CHECK(stat(shm, "eth_ticks", mdshm::Stat::out_of_order) == 0);
  CHECK(d.stop() == 0);
}

TEST_CASE("REST 500s, partial bodies, slow answers and a 418 ban during backfill and repair", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  // From the start: the first two REST answers are 500, the next two are cut short, all are slow.
  // Later an id hole forces a repair from REST aggTrades while a 500 is injected again; then a
  // second hole meets a 418 (IP ban, Retry-After 1 s; the daemon's floor is 2 s).
  Sim sim(dir,
          "0 rest_slow 150\n"
          "0 rest_error 500 2\n"
          "0 rest_partial 2\n"
          "4.0 rest_error 500 1\n"
          "4.0 hole 25\n"
          "7.0 rest_error 418 1\n"
          "7.0 hole 25\n");
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm, "rest_ban_backoff_s = 2\n"), "daemon");
  std::this_thread::sleep_for(13s);
  REQUIRE(d.alive());
  const auto c = check_eth_1m(shm, csv, 2);  // every closed bar equals the exchange's kline
  CHECK(c.backfilled == 30);
  CHECK(c.live >= 6);
  check_ticks_sum(shm, csv, kStartMs, 20);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::gaps_repaired) >= 2);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::not_repaired_bars) == 0);
  const auto log = slurp(dir / "requests.log");
  INFO(log);
  CHECK(log.find(" 500 GET") != std::string::npos);
  // The ban held every request: the next one came at least 2 s (120 s of replay clock) later.
  std::istringstream in(log);
  std::int64_t banned_at = -1, next_after_ban = -1;
  for (std::string line; std::getline(in, line);) {
    const std::int64_t t = std::stoll(line);
    if (banned_at < 0 && line.find(" 418 GET") != std::string::npos) banned_at = t;
    else if (banned_at >= 0 && next_after_ban < 0) next_after_ban = t;
  }
  REQUIRE(banned_at > 0);
  REQUIRE(next_after_ban > 0);
  CHECK(next_after_ban - banned_at >= 2 * 60'000 - 6'000);
  CHECK(d.log().find("418") != std::string::npos);
  CHECK(d.stop() == 0);
}

TEST_CASE("REST down while the stream is back: held trades go live, the gap's bars are healed later", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  // REST answers nothing from 3 s to 12 s; the stream drops at 3.5 s and is back within a second.
  // The repair cannot run (each attempt fails after ~4 s of the REST client's own retries), so at
  // the first failure after repair_hold_s = 1 the held trades go live and the bars of the gap (half
  // a minute of 1s bars, their closed klines never received) are flagged not_repaired; once REST
  // is back, its klines reconcile them.
  Sim sim(dir, "3.0 rest_down 9\n3.5 drop\n");
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm, "repair_hold_s = 1\n"), "daemon");
  std::size_t both_flags = 0;  // a reconciled bar is right: it must never be flagged not_repaired
  const bool healed = poll_until(30s, 250ms, [&] {
    both_flags = std::max(both_flags, reconciled_but_not_repaired(shm));
    const auto log = d.log();
    return log.find("ETHUSDT: bars of the gap") != std::string::npos &&
           log.find("BTCUSDT: bars of the gap") != std::string::npos;
  });
  std::this_thread::sleep_for(3s);  // live minutes after the heal
  REQUIRE(d.alive());
  INFO(d.log());
  CHECK(healed);
  CHECK(both_flags == 0);
  CHECK(stat(shm, "eth_ticks", mdshm::Stat::not_repaired_bars) >= 10);  // the give-up happened
  CHECK(stat(shm, "btc_ticks", mdshm::Stat::not_repaired_bars) >= 10);
  for (const auto& id : {"eth_ticks", "eth_1m", "eth_1h", "btc_ticks"}) {
    INFO(id);
    CHECK(bars_flagged(shm, id, mdshm::flag::not_repaired) == 0);
  }
  const auto c = check_eth_1m(shm, csv);
  CHECK(c.live >= 6);
  check_ticks_sum(shm, csv, kStartMs, 200);  // the healed 1s bars differed from the flat ones
  CHECK(d.stop() == 0);
}

TEST_CASE("a network blackout longer than 15 minutes of exchange time is refilled from klines", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  // At 120x, 8.5 s without any connection (WebSocket or REST) are 17 minutes of exchange time:
  // too long for aggTrades, so the missed bars come from REST klines, then the current minute's
  // trades from aggTrades?startTime.
  Sim sim(dir, "3.0 blackout 8.5\n", 120);
  const auto shm = dir / "shm";
  fs::create_directories(shm);
  Daemon d(dir, config(dir, sim.port(), shm), "daemon");
  // Wait for the refill, ETHUSDT healthy after it and five live minutes (the reconnect backoff
  // may reach 16 s).
  std::int64_t refilled_at = -1, healthy_at = -1;
  poll_until(45s, 250ms, [&] {
    const auto log = d.log();
    const auto refill = log.find("ETHUSDT: gap of");
    if (refill == std::string::npos || log.find("refilling bars from klines", refill) == std::string::npos) return false;
    if (refilled_at < 0) refilled_at = sim.clock_ms();
    if (healthy_at < 0 && log.find("ETHUSDT: healthy", refill) != std::string::npos) healthy_at = sim.clock_ms();
    return healthy_at > 0 && sim.clock_ms() > healthy_at + 5 * kMinute;
  });
  REQUIRE(d.alive());
  INFO(d.log());
  REQUIRE(refilled_at > 0);
  REQUIRE(healthy_at > 0);
  const auto c = check_eth_1m(shm, csv);  // contiguous, equal to the CSV: no flat bar, no hole
  CHECK(c.backfilled >= 30 + 15);         // the startup backfill and the blackout's minutes
  CHECK(c.live >= 5);
  CHECK(c.last_open >= kStartMs + 20 * kMinute);
  check_ticks_sum(shm, csv, kStartMs);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::not_repaired_bars) == 0);
  CHECK(stat(shm, "btc_ticks", mdshm::Stat::not_repaired_bars) == 0);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::reconnects) >= 1);
  // The refill asked REST klines for the blackout, from before it began.
  const auto reqs = klines_requests(slurp(dir / "requests.log"), 0, "1m");
  CHECK(std::any_of(reqs.begin(), reqs.end(), [](const std::string& r) {
    return param(r, "startTime") > kStartMs && param(r, "startTime") < kStartMs + 10 * kMinute;
  }));
  CHECK(d.stop() == 0);
}

TEST_CASE("a second outage during the klines refill leaves no silently flat bar", "[e2e]") {
  // At 120x a 20 s blackout is 40 minutes of exchange time (long enough that the repair requests
  // begun while the gap was short have failed before it ends): the daemon refills the bars from
  // REST klines. The simulator starts a second blackout at ETHUSDT's first klines request, long
  // enough (15 s) that every klines request of the refill fails, retries included. The refill's
  // bars must not close flat on the clock: they stay open (stale) until REST answers again, and
  // then every bar equals the exchange's kline.
  LiveRun run(120);
  auto& [csv, dir, sim, shm, d] = run;
  REQUIRE(sim.command("blackout_on klines?symbol=ETHUSDT 15").rfind("ok", 0) == 0);
  REQUIRE(sim.command("blackout 20").rfind("ok", 0) == 0);
  std::size_t wrong = 0;
  std::vector<std::string> seen;
  std::int64_t healthy_at = -1;
  poll_until(150s, 250ms, [&] {
    wrong = std::max(wrong, silently_wrong(shm, csv, &seen, sim.clock_ms()));
    const auto log = d.log();
    const auto refill = log.find("ETHUSDT: gap of");
    if (refill == std::string::npos) return false;
    if (healthy_at < 0 && log.find("ETHUSDT: healthy", refill) != std::string::npos) healthy_at = sim.clock_ms();
    return healthy_at > 0 && sim.clock_ms() > healthy_at + 5 * kMinute;
  });
  REQUIRE(d.alive());
  INFO(d.log());
  REQUIRE(healthy_at > 0);
  // The second blackout did meet the refill: a klines request of it failed.
  CHECK(std::regex_search(d.log(), std::regex("backfill: /api/v3/klines\\?symbol=ETHUSDT[^\\n]* failed")));
  INFO(joined(seen));
  CHECK(wrong == 0);
  CHECK(silently_wrong(shm, csv) == 0);
  const auto c = check_eth_1m(shm, csv);  // contiguous, equal to the CSV, none left not_repaired
  CHECK(c.backfilled >= 30 + 40);         // the startup backfill and both blackouts' minutes
  CHECK(c.live >= 5);
  check_ticks_sum(shm, csv, kStartMs);
  CHECK(stat(shm, "btc_ticks", mdshm::Stat::not_repaired_bars) == 0);
  CHECK(d.stop() == 0);
}

TEST_CASE("a connection that carries no data for a while: no reconnect, and bars close on time", "[e2e]") {
  // For 3 s (3 minutes of exchange time, three watchdog periods of 1 s) the simulator sends no data
  // frame; pings and pongs go on, as on a live connection of a quiet market. The connection must
  // stay (a quiet symbol opens no gap), and the 1s bars must go on closing on the exchange clock
  // within the grace (50 ms of wall time, 3 s of exchange time at 60x) of their end, not wait for
  // the next frame. The frames held back arrive afterwards and are merged into their bars.
  LiveRun run(60);
  auto& [csv, dir, sim, shm, d] = run;
  REQUIRE(sim.command("quiet 3").rfind("ok", 0) == 0);
  std::this_thread::sleep_for(300ms);
  std::int64_t worst_lag = 0;
  int samples = 0;
  for (const auto until = std::chrono::steady_clock::now() + 2400ms; std::chrono::steady_clock::now() < until;) {
    const std::int64_t exchange_now = sim.clock_ms();
    std::int64_t newest_end = 0;
    for (const auto& b : read_all(shm, "eth_ticks"))
      if (b.flags & mdshm::flag::closed) newest_end = std::max(newest_end, b.open_time_ms + 1000);
    worst_lag = std::max(worst_lag, exchange_now - newest_end);
    ++samples;
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(4s);  // the frames held back arrive; the minutes' klines reconcile
  REQUIRE(d.alive());
  const auto log = d.log();
  INFO(log);
  CHECK(samples >= 10);
  // 3 s of grace, 1.2 s between ticks, the polling and a loaded machine: 20 s of exchange time
  // (333 ms of wall time). Before the fix: about a minute, after a reconnect the silence caused.
  CHECK(worst_lag <= 20'000);
  CHECK(log.find("stream stalled") == std::string::npos);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::reconnects) == 0);
  CHECK(stat(shm, "eth_1m", mdshm::Stat::gaps_detected) == 0);
  CHECK(silently_wrong(shm, csv) == 0);
  check_eth_1m(shm, csv, 4);  // bars closed flat before their late trades came: the klines corrected them
  CHECK(d.stop() == 0);
}

TEST_CASE("a fault storm (fixed seed): no bar is ever silently wrong, and all are right after it", "[e2e]") {
  // 120x: 25 s of storm are 50 minutes of exchange time. Faults of 14 kinds, one every 0.3-1.2 s,
  // then a blackout longer than 15 minutes of exchange time whose klines refill meets a second
  // one. Every closed 1m bar is compared with the CSV all along: it equals it or is flagged.
  LiveRun run(120, "repair_hold_s = 2\n");
  auto& [csv, dir, sim, shm, d] = run;
  const std::vector<std::string> kinds = {"drop",         "stall 1.5",        "hole 30",       "duplicate 20",
                                          "reorder 10",   "malformed 3",      "truncate 3",    "rest_error 500 2",
                                          "rest_error 429 1 1", "rest_partial 2", "quiet 1",   "blackout 1.5",
                                          "rest_down 1.5", "shutdown"};
  std::mt19937 rng(20261201);
  std::uniform_int_distribution<std::size_t> pick(0, kinds.size() - 1);
  std::uniform_int_distribution<int> pause_ms(300, 1200);
  std::size_t wrong = 0, faults = 0;
  std::vector<std::string> seen;
  for (const auto until = std::chrono::steady_clock::now() + 25s; std::chrono::steady_clock::now() < until; ++faults) {
    const auto& f = kinds[pick(rng)];
    INFO(f);
    CHECK(sim.command(f).rfind("ok", 0) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    wrong = std::max(wrong, silently_wrong(shm, csv, &seen, sim.clock_ms()));
  }
  REQUIRE(sim.command("blackout_on klines?symbol=ETHUSDT 6").rfind("ok", 0) == 0);
  REQUIRE(sim.command("blackout 9").rfind("ok", 0) == 0);
  const std::int64_t storm_end = sim.clock_ms();
  // Afterwards: every bar healed (none left not_repaired), live again for five minutes.
  const bool settled = poll_until(150s, 250ms, [&] {
    wrong = std::max(wrong, silently_wrong(shm, csv, &seen, sim.clock_ms()));
    const auto bars = read_all(shm, "eth_1m");
    if (bars.empty() || sim.clock_ms() < storm_end + 30 * kMinute) return false;
    for (const auto& b : bars)
      if (b.flags & mdshm::flag::not_repaired) return false;
    std::size_t live_after = 0;
    for (const auto& b : bars)
      live_after += (b.flags & mdshm::flag::closed) && !(b.flags & (mdshm::flag::backfilled | mdshm::flag::from_store)) &&
                    b.open_time_ms > storm_end + 20 * kMinute;
    return live_after >= 5;
  });
  REQUIRE(d.alive());
  INFO(d.log());
  CHECK(faults >= 20);
  CHECK(settled);
  INFO(joined(seen));
  CHECK(wrong == 0);
  CHECK(silently_wrong(shm, csv) == 0);
  const auto c = check_eth_1m(shm, csv, 1000);  // contiguous, equal to the CSV (corrections allowed)
  CHECK(c.live >= 5);
  CHECK(d.stop() == 0);
}

TEST_CASE("a replay started again from an earlier time: the daemon refuses segments ahead of its clock", "[e2e]") {
  // The sim demo run twice: the second simulator starts at the same replay time, minutes behind
  // the bars the first run left in the segments (and their trade ids). Continuing on them dropped
  // every live trade as a duplicate while 1m and 1h stopped updating. The daemon must say so and
  // not start.
  // The second simulator listens on the first one's port: the same source (endpoint) as far as
  // the segments can tell, so they are re-attached, not replaced as from another source.
  TempDir dir1, dir2;
  const auto shm = dir1 / "shm";
  fs::create_directories(shm);
  int port = 0;
  {
    Sim sim(dir1, "", 60);
    port = sim.port();
    Daemon d(dir1, config(dir1, sim.port(), shm), "run1");
    wait_for_bars(shm, 3, 25s);
    REQUIRE(d.alive());
    CHECK(d.stop() == 0);
  }
  Sim sim(dir2, "", 60, {"--port", std::to_string(port)});
  REQUIRE(sim.port() == port);
  Daemon d(dir2, config(dir2, sim.port(), shm), "run2");
  const bool refused = poll_until(20s, 100ms, [&] { return d.log().find("after the exchange clock") != std::string::npos; });
  INFO(d.log());
  CHECK(refused);
  CHECK(d.log().find("duplicate aggTrade") == std::string::npos);
  const int status = d.stop();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) != 0);
}

TEST_CASE("restart with the history store fetches only the gap; 429 during backfill is honoured", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  Sim sim(dir, "0 rest_error 429 3 1\n");
  const auto shm1 = dir / "shm1", shm2 = dir / "shm2";
  fs::create_directories(shm1);
  fs::create_directories(shm2);
  std::int64_t stopped_at = 0;
  {
    Daemon d(dir, config(dir, sim.port(), shm1), "run1");
    wait_for_bars(shm1, 3, 25s);
    REQUIRE(d.alive());
    CHECK(check_eth_1m(shm1, csv).backfilled == 30);
    CHECK(d.stop() == 0);
    stopped_at = sim.clock_ms();
  }
  CHECK(sim.command("stats").find("ok") == 0);
  std::this_thread::sleep_for(3s);  // three minutes of exchange time pass
  const auto before = line_count(dir / "requests.log");
  // A fresh shm dir: the bars must come from the store, and REST only for the outage.
  Daemon d2(dir, config(dir, sim.port(), shm2), "run2");
  wait_for_bars(shm2, 3, 20s);
  REQUIRE(d2.alive());
  const auto c = check_eth_1m(shm2, csv);
  CHECK(c.from_store >= 20);
  CHECK(c.backfilled >= 1);  // the outage only
  CHECK(c.backfilled <= 6);
  CHECK(stat(shm2, "eth_1m", mdshm::Stat::store_hits) >= 20);
  check_klines_fetched_only_since(dir, before, stopped_at, /*expect_requests=*/true);
  CHECK(slurp(dir / "requests.log").find(" 429 GET") != std::string::npos);
  CHECK(d2.stop() == 0);
}

TEST_CASE("kill -9 during store writes: the restart loses no closed bar", "[e2e]") {
  const auto csv = load_csv();
  TempDir dir;
  Sim sim(dir, "");
  const auto shm1 = dir / "shm1", shm2 = dir / "shm2";
  fs::create_directories(shm1);
  fs::create_directories(shm2);
  std::int64_t killed_at = 0;
  {
    Daemon d(dir, config(dir, sim.port(), shm1), "run1");
    wait_for_bars(shm1, 3, 25s);
    REQUIRE(d.alive());
    // The 1s series append a record every few ms of wall time here: a kill lands mid-write often.
    d.kill9();
    killed_at = sim.clock_ms();
  }
  const auto before = line_count(dir / "requests.log");
  Daemon d2(dir, config(dir, sim.port(), shm2), "run2");
  wait_for_bars(shm2, 3, 20s);
  REQUIRE(d2.alive());
  const auto c = check_eth_1m(shm2, csv);
  CHECK(c.from_store >= 20);
  check_ticks_sum(shm2, csv, kStartMs - 60'000);
  // Every bar closed before the kill came from disk: REST was asked only from the kill on.
  check_klines_fetched_only_since(dir, before, killed_at, /*expect_requests=*/false);
  CHECK(d2.stop() == 0);
}
