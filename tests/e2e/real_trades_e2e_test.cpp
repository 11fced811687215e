// End to end on real trades: mdshm-sim replaying genuine Binance aggTrades -> mdshmd over TLS ->
// the client library. Startup catch-up and gap repair run against REST answers computed from the
// same real trades (not generated ones), and every published bar is compared with the truth: the
// replayed trades, aggregated here independently of the simulator and the daemon.
//
// Real data (see tests/sim/data/SOURCES.md and ../shared/data/binance/SOURCES.md):
// - BTCUSDT: the ten contiguous aggTrades 966492862..871 of 2021-10-22 (data.binance.vision CSV
//   layout). Second 1634944097 (ids 866-868) is whole: its 1s bar must equal what the exchange's
//   kline of that second was, to the last digit.
// - LRCBTC: the capture ws/cryptofeed-BINANCE.ws.1.0, whose kline frame at E=1633998534486 lists
//   one trade (f=L=12368013), the captured aggTrade: the capture covers that bar up to E, so the
//   daemon's bar must equal the exchange's kline frame.
// No capture in ../shared covers a whole minute with its trades (the captures last 20-30 s), so no
// closed 1m kline can be matched against real trades; these are the intervals that are covered.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mdshm/client.hpp"
#include "spawn_logged.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const std::string kTrades = std::string(MDSHM_SOURCE_DIR) + "/tests/sim/data/BTCUSDT-aggTrades-2021-10-22-excerpt.csv";
const std::string kCapture = std::string(MDSHM_SHARED_DATA_DIR) + "/ws/cryptofeed-BINANCE.ws.1.0";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process with stdout and stderr in `log`; SIGTERM (then SIGKILL) at scope exit.
class Child {
 public:
  Child(std::vector<std::string> args, const std::string& log) : pid_(mdshm::sim::spawn_logged(std::move(args), log)) {
    REQUIRE(pid_ > 0);
  }
  ~Child() {
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 250 && waitpid(pid_, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(20ms);
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
  }

 private:
  pid_t pid_ = -1;
};

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("mdshm-real-e2e-" + std::to_string(getpid()) + "-" + std::to_string(next()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    if (!std::getenv("MDSHM_E2E_KEEP")) fs::remove_all(path, ec);
  }
  static int next() {
    static int n = 0;
    return n++;
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Asks `done` every 50 ms until it says yes or `limit` has passed; its last answer.
template <class Done>
bool poll_until(std::chrono::milliseconds limit, Done done) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

// mdshm-sim with `args`; waits for its "listening" line.
class Sim {
 public:
  Sim(const TempDir& dir, std::vector<std::string> args) {
    args.insert(args.begin(), std::string(MDSHM_BIN_DIR) + "/mdshm-sim");
    args.insert(args.end(), {"--ca-out", dir / "ca.pem", "--request-log", dir / "requests.log"});
    child_.emplace(args, dir / "sim.log");
    const std::regex listening("listening ws=wss://127\\.0\\.0\\.1:(\\d+)");
    poll_until(10s, [&] {
      std::smatch m;
      const auto log = slurp(dir / "sim.log");
      if (std::regex_search(log, m, listening)) port_ = std::stoi(m[1]);
      return port_ != 0;
    });
    REQUIRE(port_ != 0);
  }
  int port() const { return port_; }

 private:
  std::optional<Child> child_;
  int port_ = 0;
};

// mdshmd on `symbol` with one series per interval ("s_<interval>"), against the simulator.
class Daemon {
 public:
  Daemon(const TempDir& dir, int port, const std::string& symbol, const std::vector<std::string>& intervals)
      : shm_(dir / "shm") {
    fs::create_directories(shm_);
    const std::string url = "127.0.0.1:" + std::to_string(port);
    std::string cfg = "[daemon]\ninstance = \"real-e2e\"\nlog_level = \"info\"\n[shm]\ndir = \"" + shm_ +
                      "\"\n[source]\nkind = \"binance\"\n[binance]\nws_url = \"wss://" + url + "\"\nrest_url = \"https://" +
                      url + "\"\nca_file = \"" + (dir / "ca.pem") + "\"\n";
    for (const auto& iv : intervals)
      cfg += "[[series]]\nid = \"s_" + iv + "\"\nsymbol = \"" + symbol + "\"\ninterval = \"" + iv +
             "\"\ncapacity = 600\nbackfill_depth = 30\n";
    std::ofstream(dir / "mdshmd.toml") << cfg;
    child_.emplace(std::vector<std::string>{std::string(MDSHM_BIN_DIR) + "/mdshmd", "--config", dir / "mdshmd.toml"},
                   dir / "mdshmd.log");
  }

  std::vector<mdshm::Bar> bars(const std::string& interval) const {
    mdshm::OpenOptions o;
    o.instance = "real-e2e";
    o.shm_dir = shm_;
    auto s = mdshm::Series::open("s_" + interval, o);
    if (!s) return {};
    std::vector<mdshm::Bar> out(s->capacity());
    std::size_t n = 0;
    if (s->last_n(out, n) != mdshm::Errc::ok) return {};
    out.resize(n);
    return out;
  }
  std::optional<mdshm::Bar> bar(const std::string& interval, std::int64_t open_ms) const {
    for (const auto& b : bars(interval))
      if (b.open_time_ms == open_ms) return b;
    return std::nullopt;
  }

 private:
  std::string shm_;
  std::optional<Child> child_;
};

// The truth: bars aggregated here from the replayed aggTrades (data.binance.vision CSV columns).
struct Truth {
  double open = 0, high = 0, low = 0, close = 0, volume = 0, quote = 0, taker_buy = 0;
  std::uint64_t trades = 0;
  std::int64_t first_id = -1, last_id = -1;
};

std::map<std::int64_t, Truth> truth_of(const std::string& csv, std::int64_t interval_ms) {
  std::map<std::int64_t, Truth> out;
  std::ifstream in(csv);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> c;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) c.push_back(x);
    REQUIRE(c.size() == 8);
    const double p = std::stod(c[1]), q = std::stod(c[2]);
    const std::int64_t id = std::stoll(c[0]), t = std::stoll(c[5]);
    Truth& b = out[t - t % interval_ms];
    if (b.trades == 0) b.open = b.high = b.low = p, b.first_id = id;
    b.high = std::max(b.high, p);
    b.low = std::min(b.low, p);
    b.close = p;
    b.volume += q;
    b.quote += p * q;
    if (c[6] == "False") b.taker_buy += q;
    b.trades += static_cast<std::uint64_t>(std::stoll(c[4]) - std::stoll(c[3]) + 1);
    b.last_id = id;
  }
  return out;
}

void check_equal(const mdshm::Bar& b, const Truth& t) {
  INFO("bar " << b.open_time_ms << " flags " << b.flags << " trades " << b.trade_count);
  CHECK(b.open == t.open);
  CHECK(b.high == t.high);
  CHECK(b.low == t.low);
  CHECK(b.close == t.close);
  CHECK(b.volume == Approx(t.volume).epsilon(1e-12));
  CHECK(b.quote_volume == Approx(t.quote).epsilon(1e-12));
  CHECK(b.taker_buy_volume == Approx(t.taker_buy).epsilon(1e-12));
  CHECK(b.trade_count == t.trades);
  CHECK(b.first_trade_id == t.first_id);
  CHECK(b.last_trade_id == t.last_id);
  CHECK((b.flags & (mdshm::flag::not_repaired | mdshm::flag::reconcile_diff)) == 0);
}

}  // namespace

TEST_CASE("real BTCUSDT trades: a hole in the stream is repaired from REST served from the same trades", "[e2e]") {
  TempDir dir;
  // At a quarter of real speed the clock starts 1.6 s of exchange time (6.5 s of wall time) before
  // the first trade: the daemon is up and streaming by then. The hole swallows trade 966492867
  // (exchange time 097.501, 10.0 s of wall time in): set at 9.1 s, after 866 (8.2 s) went out.
  std::ofstream(dir / "faults.txt") << "9.1 hole 1\n";
  Sim sim(dir, {"--trades", "BTCUSDT:" + kTrades, "--speed", "0.25", "--start", "1634944095000", "--faults",
                dir / "faults.txt"});
  Daemon d(dir, sim.port(), "BTCUSDT", {"1s", "1m"});

  // Second 098 closes at exchange time 099.000: 16 s of wall time in, plus the daemon's grace.
  const bool closed = poll_until(45s, [&] {
    const auto b = d.bar("1s", 1634944098000);
    return b && (b->flags & mdshm::flag::closed);
  });
  INFO(slurp(dir / "mdshmd.log"));
  REQUIRE(closed);

  // The hole happened and was repaired through REST aggTrades fromId, which the simulator answered
  // from the real trades.
  const auto sim_log = slurp(dir / "sim.log");
  CHECK(sim_log.find("hole 1 -> ok hole 1") != std::string::npos);
  const auto requests = slurp(dir / "requests.log");
  INFO(requests);
  CHECK(std::regex_search(requests, std::regex(" 200 GET /api/v3/aggTrades\\?symbol=BTCUSDT&[^\n]*fromId=966492867\n")));

  // Every bar the trades touch equals the truth, the repaired second included; the bars between
  // are flat at the previous close.
  const auto seconds = truth_of(kTrades, 1000);
  REQUIRE(seconds.size() == 3);
  for (const auto& [open, t] : seconds) {
    const auto b = d.bar("1s", open);
    REQUIRE(b);
    check_equal(*b, t);
  }
  // Second 1634944097 is whole (ids 866-868 with 865 and 869 on either side): the exchange's kline
  // of that second, checked by hand from the three trades: 60759.60 x 0.00431, 0.00100, 0.00100.
  const auto whole = d.bar("1s", 1634944097000);
  REQUIRE(whole);
  CHECK(whole->open == 60759.60);
  CHECK(whole->close == 60759.60);
  CHECK(whole->volume == Approx(0.00631).epsilon(1e-12));
  CHECK(whole->quote_volume == Approx(383.393076).epsilon(1e-12));
  CHECK(whole->trade_count == 3);

  // The minute in progress holds all ten trades.
  const auto minute = truth_of(kTrades, 60'000);
  const auto m = d.bar("1m", 1634944080000);
  REQUIRE(m);
  check_equal(*m, minute.at(1634944080000));

  // No bar anywhere is flagged as wrong.
  for (const auto& iv : {"1s", "1m"})
    for (const auto& b : d.bars(iv)) {
      INFO(iv << " bar " << b.open_time_ms << " flags " << b.flags);
      CHECK((b.flags & (mdshm::flag::not_repaired | mdshm::flag::reconcile_diff)) == 0);
      if (b.trade_count == 0) CHECK(b.volume == 0);
    }
}

TEST_CASE("a real capture: the daemon's LRCBTC bar equals the exchange's kline of that minute", "[e2e]") {
  // The exchange's kline frame, read from the capture (the truth), and the aggTrade it counts.
  const std::string cap = slurp(kCapture);
  std::smatch k;
  REQUIRE(std::regex_search(cap, k,
                            std::regex("\"s\":\"LRCBTC\",\"k\":\\{\"t\":(\\d+),.*?\"o\":\"([0-9.]+)\",\"c\":\"([0-9.]+)\","
                                       "\"h\":\"([0-9.]+)\",\"l\":\"([0-9.]+)\",\"v\":\"([0-9.]+)\",\"n\":(\\d+),"
                                       "\"x\":false,\"q\":\"([0-9.]+)\",\"V\":\"([0-9.]+)\"")));
  const std::int64_t open = std::stoll(k[1]);
  REQUIRE(open == 1633998480000);
  REQUIRE(k[7] == "1");  // one trade so far: the captured aggTrade 9213679 (f=l=12368013)

  TempDir dir;
  // Replay from 5.5 s before the trade (exchange time 534.486) at real speed.
  Sim sim(dir, {"--replay", kCapture, "--start", "1633998529000"});
  Daemon d(dir, sim.port(), "LRCBTC", {"1m"});
  const bool traded = poll_until(30s, [&] {
    const auto b = d.bar("1m", open);
    return b && b->trade_count > 0;
  });
  INFO(slurp(dir / "mdshmd.log"));
  REQUIRE(traded);
  const auto b = d.bar("1m", open);
  REQUIRE(b);
  INFO("flags " << b->flags);
  CHECK(b->open == std::stod(k[2]));
  CHECK(b->close == std::stod(k[3]));
  CHECK(b->high == std::stod(k[4]));
  CHECK(b->low == std::stod(k[5]));
  CHECK(b->volume == std::stod(k[6]));
  CHECK(b->trade_count == 1);
  CHECK(b->quote_volume == Approx(std::stod(k[8])).epsilon(1e-12));
  CHECK(b->taker_buy_volume == std::stod(k[9]));
  CHECK(b->last_trade_id == 9213679);
  CHECK((b->flags & (mdshm::flag::not_repaired | mdshm::flag::reconcile_diff)) == 0);
}

TEST_CASE("real BTCUSDT trades: startup catch-up rebuilds the minute from REST aggTrades", "[e2e]") {
  TempDir dir;
  // The clock starts after the last trade: the daemon can only learn the minute's ten trades from
  // REST, answered from the same real trades.
  Sim sim(dir, {"--trades", "BTCUSDT:" + kTrades, "--start", "1634944098300"});
  Daemon d(dir, sim.port(), "BTCUSDT", {"1s", "1m"});
  const bool caught_up = poll_until(30s, [&] {
    const auto m = d.bar("1m", 1634944080000);
    return m && m->trade_count >= 10;
  });
  INFO(slurp(dir / "mdshmd.log"));
  REQUIRE(caught_up);
  const auto requests = slurp(dir / "requests.log");
  INFO(requests);
  CHECK(std::regex_search(requests, std::regex(" 200 GET /api/v3/aggTrades\\?symbol=BTCUSDT&[^\n]*startTime=1634944080000")));
  check_equal(*d.bar("1m", 1634944080000), truth_of(kTrades, 60'000).at(1634944080000));
  for (const auto& [open, t] : truth_of(kTrades, 1000)) {
    const auto b = d.bar("1s", open);
    REQUIRE(b);
    check_equal(*b, t);
  }
}
