// bench_e2e: end to end over TLS on loopback, mdshm-sim -> mdshmd -> a spinning reader (issue #3,
// "Benchmarks"; docs/PERFORMANCE.md, section "End to end").
//
//   bench_e2e [latency] [resources] [--speeds 92,1200] [--seconds 20] [--rounds 3]
//             [--resource-seconds 150] [--resource-speed 4.5] [--no-pin] [--bin build/bin] [--klines DIR]
//
// Which intervals are measured, and why they are sound:
// - The simulator stamps nothing on the wire but its replay clock: a trade's E is the replay time
//   at which it is due, and the simulator sends it as soon as its clock (steady clock, linear in
//   wall time: start + elapsed * speed) reaches E. So a trade's *scheduled* send time is
//   t0 + (E - start) / speed, t0 being the simulator's clock origin, which this program brackets
//   by asking the simulator's control port for its clock many times (each answer bounds t0 by the
//   round trip around it). The real send is at or after the scheduled time.
// - mdshm-sim --send-log stamps each aggTrade frame (CLOCK_REALTIME) as it hands it to TLS: the
//   actual send, exact like the other stamps. The scheduled time above stays as a second view: its
//   difference to the actual send is the simulator's own lateness (timer, its share of the core).
// - mdshmd --record writes each frame with its receive time (CLOCK_REALTIME, taken when the
//   WebSocket read completed, before parsing).
// - The aggregator stamps bar.update_wall_ns (CLOCK_REALTIME) when it applies the trade, just
//   before the bar is published; that splits the daemon's part into "receive -> applied" and
//   "applied -> published and seen by the reader".
// - The reader spins on Series::updates() and, on a change, reads latest() and takes
//   CLOCK_REALTIME. The bar's last_trade_id names the trade; the record file gives its receive
//   time and E.
// The daemon's and the reader's stamps are CLOCK_REALTIME of one host, so their differences are
// exact up to the 100 ns resolution of the record file; the scheduled send time is an estimate
// within the bracket of t0 (printed), also in CLOCK_REALTIME. Only trades the reader saw are sampled (a trade published
// while the reader was busy with the previous one is covered by the next observation).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench_proc.hpp"
#include "bench_report.hpp"
#include "mdshm/client.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::int64_t kStartMs = 1660522200000;  // 2022-08-15 00:10 UTC: history before it to backfill

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The child inherits the spawning thread's affinity mask and timer slack (prctl(2)).
pid_t spawn_logged(std::vector<std::string> args, const std::string& log, bool pin_to_first_core,
                   unsigned long timer_slack_ns = 0) {
  const int old_slack = ::prctl(PR_GET_TIMERSLACK);
  if (timer_slack_ns) ::prctl(PR_SET_TIMERSLACK, timer_slack_ns);
  if (pin_to_first_core) bench::pin_to_core(0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (pin_to_first_core) bench::unpin();
  if (timer_slack_ns) ::prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(old_slack));
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  // Killed by bench_proc's SIGINT/SIGTERM handler with the rest of the children.
  const int i = bench::detail::g_child_count.fetch_add(1);
  if (i < static_cast<int>(bench::detail::g_children.size()))
    bench::detail::g_children[static_cast<std::size_t>(i)] = pid;
  return pid;
}

// SIGTERM, then SIGKILL after the deadline.
void stop_child(pid_t pid, std::chrono::milliseconds deadline = 5000ms) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
}

struct Options {
  bool pin_children = true;  // simulator and daemon on core 0, the reader alone on the last core
  int daemon_rt = 0;         // > 0: run mdshmd under SCHED_FIFO at this priority (chrt -f)
  std::string bin = "build/bin";
  std::string klines = "/work/shared/data/binance/klines";
};

// One run's scratch: temp dir, simulator, daemon on a unique instance; everything removed at the end.
class Rig {
 public:
  Rig(const Options& o, double speed, bool with_btc, bool five_series) : speed_(speed) {
    static int counter = 0;
    instance_ = "bench-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    dir_ = fs::temp_directory_path() / ("mdshm-" + instance_);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string days = o.klines + "/ETHUSDT-1m-2022-08-14.csv," + o.klines + "/ETHUSDT-1m-2022-08-15.csv";
    std::vector<std::string> sim = {o.bin + "/mdshm-sim", "--klines", "ETHUSDT:1m:" + days, "--speed",
                                    std::to_string(speed), "--start", std::to_string(kStartMs),
                                    "--ca-out", path("ca.pem"), "--control", "0", "--send-log", path("sends.log")};
    if (with_btc) sim.insert(sim.end(), {"--derive", "BTCUSDT:ETHUSDT:12.5"});
    // The simulator sends a trade when a timer fires at its due time; with the default 50 µs timer
    // slack that timer fires up to 50 µs late, which is the test harness's lateness, not the
    // daemon's. 1 ns slack makes the scheduled send time a close bound on the real one.
    sim_ = spawn_logged(sim, path("sim.log"), o.pin_children, 1);
    const std::regex listening("listening ws=wss://127\\.0\\.0\\.1:(\\d+)"), control("control=127\\.0\\.0\\.1:(\\d+)");
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::this_thread::sleep_for(10ms);
      const auto log = slurp(path("sim.log"));
      std::smatch m;
      if (std::regex_search(log, m, control)) control_port_ = std::stoi(m[1]);
      if (std::regex_search(log, m, listening)) port_ = std::stoi(m[1]);
    }
    if (port_ == 0) throw std::runtime_error("mdshm-sim did not start: " + slurp(path("sim.log")));

    const std::string url = "127.0.0.1:" + std::to_string(port_);
    std::ofstream cfg(path("mdshmd.toml"));
    cfg << "[daemon]\ninstance = \"" << instance_ << "\"\nlog_level = \"info\"\n"
        << "[shm]\ndir = \"" << bench::kShmDir << "\"\n[source]\nkind = \"binance\"\n"
        << "[binance]\nws_url = \"wss://" << url << "\"\nrest_url = \"https://" << url << "\"\nca_file = \""
        << path("ca.pem") << "\"\n";
    // Realistic capacities (config/mdshm.toml) for the resource run; small ones for latency.
    auto series = [&](const char* id, const char* sym, const char* iv, int cap) {
      cfg << "[[series]]\nid = \"" << id << "\"\nsymbol = \"" << sym << "\"\ninterval = \"" << iv
          << "\"\ncapacity = " << cap << "\n";
    };
    if (five_series) {
      series("eth_ticks", "ETHUSDT", "1s", 86400);
      series("eth_1m", "ETHUSDT", "1m", 10080);
      series("eth_1h", "ETHUSDT", "1h", 8760);
      series("eth_1d", "ETHUSDT", "1d", 3650);
      series("btc_ticks", "BTCUSDT", "1s", 86400);
    } else {
      series("eth_ticks", "ETHUSDT", "1s", 3600);
      series("eth_1m", "ETHUSDT", "1m", 600);
    }
    cfg.close();
    remember_for_signal_cleanup(five_series);
    std::vector<std::string> daemon = {o.bin + "/mdshmd", "--config", path("mdshmd.toml"), "--record", path("frames.rec")};
    // chrt execs mdshmd: the pid stays the daemon's.
    if (o.daemon_rt > 0) daemon.insert(daemon.begin(), {"/usr/bin/chrt", "-f", std::to_string(o.daemon_rt)});
    daemon_ = spawn_logged(daemon, path("mdshmd.log"), o.pin_children);
  }
  ~Rig() {
    stop();
    bench::detail::g_live_count.store(0);
    bench::remove_instance_files(instance_);
    std::error_code ec;
    if (!std::getenv("MDSHM_BENCH_KEEP")) fs::remove_all(dir_, ec);
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;

  void stop_daemon() {
    stop_child(daemon_);
    daemon_ = -1;
  }
  void stop() {
    stop_daemon();
    stop_child(sim_);
    sim_ = -1;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  pid_t daemon_pid() const { return daemon_; }
  pid_t sim_pid() const { return sim_; }
  double speed() const { return speed_; }

  mdshm::OpenOptions shm() const {
    mdshm::OpenOptions o;
    o.instance = instance_;
    o.shm_dir = bench::kShmDir;
    return o;
  }

  // The simulator's clock origin t0 (CLOCK_REALTIME ns) such that its clock reads
  // start + (now - t0) * speed, bracketed by `queries` control-port round trips.
  struct Origin {
    double lo = -1e30, hi = 1e30;
    double mid() const { return (lo + hi) / 2; }
    double width() const { return hi - lo; }
  };
  Origin sim_origin(int queries) const {
    Origin o;
    const double ns_per_ms = 1e6 / speed_;
    for (int i = 0; i < queries; ++i) {
      const int s = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(control_port_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(s);
        continue;
      }
      char buf[128];
      const std::int64_t sent = realtime_ns();
      if (::write(s, "clock\n", 6) != 6) {
        ::close(s);
        continue;
      }
      std::string reply;
      for (ssize_t n; reply.find('\n') == std::string::npos && (n = ::read(s, buf, sizeof buf)) > 0;)
        reply.append(buf, static_cast<std::size_t>(n));
      const std::int64_t got = realtime_ns();
      ::close(s);
      if (reply.rfind("ok ", 0) != 0) continue;
      // The clock read c at some moment h in [sent, got]: c - start <= (h - t0) * speed < c - start + 1.
      const double c = static_cast<double>(std::stoll(reply.substr(3)) - kStartMs);
      o.lo = std::max(o.lo, static_cast<double>(sent) - (c + 1) * ns_per_ms);
      o.hi = std::min(o.hi, static_cast<double>(got) - c * ns_per_ms);
    }
    return o;
  }

 private:
  // The files bench_proc's SIGINT/SIGTERM handler unlinks if the run is interrupted (it cannot
  // list a directory safely, so the names are spelled out; the temp directory itself stays).
  void remember_for_signal_cleanup(bool five_series) {
    std::vector<std::string> paths;
    for (const char* id : {"eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks"})
      paths.push_back(mdshm::paths::segment(bench::kShmDir, instance_, id));
    if (!five_series) paths.resize(2);
    paths.push_back(mdshm::paths::consumers_dir(bench::kShmDir, instance_) + "/" + std::string(mdshm::kSeriesManifestName));
    paths.push_back(mdshm::paths::consumers_dir(bench::kShmDir, instance_));
    paths.push_back(mdshm::paths::lock(bench::kShmDir, instance_));
    paths.push_back(mdshm::paths::instance_dir(bench::kShmDir, instance_));
    for (const char* f : {"sim.log", "mdshmd.log", "mdshmd.toml", "ca.pem", "frames.rec", "sends.log"}) paths.push_back(path(f));
    int i = 0;
    for (const auto& p : paths)
      if (i < static_cast<int>(std::size(bench::detail::g_live_paths)))
        std::snprintf(bench::detail::g_live_paths[i++], sizeof bench::detail::g_live_paths[0], "%s", p.c_str());
    bench::detail::g_live_count.store(i);
  }

  double speed_;
  std::string instance_;
  fs::path dir_;
  pid_t sim_ = -1, daemon_ = -1;
  int port_ = 0, control_port_ = 0;
};

std::optional<mdshm::Series> open_when_live(const Rig& rig, const char* id, std::chrono::seconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (auto s = mdshm::Series::open(id, rig.shm())) {
      mdshm::Bar b{};
      if (s->latest(b) == mdshm::Errc::ok && b.last_trade_id >= 0) return std::move(*s);
    }
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

struct Seen {
  std::int64_t trade_id, published_ns, seen_ns;
  bool reader_stalled;  // the reader was off the CPU (or stalled) just before or while seeing it
};

// A poll of updates() takes ~100 ns; a longer gap between two polls means the reader was not
// running (preempted by another process on its core), so the sample measures the scheduler.
constexpr std::int64_t kStallNs = 5'000;

// Spin on updates() for `seconds`; one sample per distinct last_trade_id seen.
std::vector<Seen> spin_reader(mdshm::Series& s, double seconds) {
  std::vector<Seen> out;
  out.reserve(1 << 22);
  const std::int64_t end = realtime_ns() + static_cast<std::int64_t>(seconds * 1e9);
  std::uint64_t seen_updates = s.updates();
  std::int64_t last_id = -1, prev_poll = realtime_ns();
  mdshm::Bar b{};
  for (;;) {
    const std::int64_t poll = realtime_ns();
    const std::uint64_t u = s.updates();
    if (u != seen_updates) {
      seen_updates = u;
      if (s.latest(b) == mdshm::Errc::ok) {
        const std::int64_t now = realtime_ns();
        if (b.last_trade_id >= 0 && b.last_trade_id != last_id && out.size() < out.capacity()) {
          out.push_back({b.last_trade_id, b.update_wall_ns, now, poll - prev_poll > kStallNs || now - poll > kStallNs});
          last_id = b.last_trade_id;
        }
      }
    }
    prev_poll = poll;
    if (poll > end) break;
  }
  return out;
}

// Nanoseconds this thread spent runnable but waiting for a CPU (schedstat(5) field 2).
std::int64_t run_delay_ns() {
  std::ifstream in("/proc/thread-self/schedstat");
  std::int64_t on_cpu = 0, waiting = 0;
  in >> on_cpu >> waiting;
  return waiting;
}

struct ProcSample {
  double cpu_s = 0, vm_rss_mb = 0, rss_anon_mb = 0, rss_shmem_mb = 0, vm_hwm_mb = 0;
};

ProcSample sample_proc(pid_t pid) {
  ProcSample p;
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close_paren = stat.rfind(')');
  if (close_paren != std::string::npos) {
    std::istringstream in(stat.substr(close_paren + 2));
    std::vector<std::string> f;
    for (std::string x; in >> x;) f.push_back(x);
    // Fields 14 and 15 (utime, stime) of proc(5); f[0] is field 3.
    if (f.size() > 13)
      p.cpu_s = static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    auto kb = [&](const char* key) { return line.rfind(key, 0) == 0 ? std::stod(line.substr(std::strlen(key))) * 1024 / 1e6 : -1; };
    if (double v = kb("VmRSS:"); v >= 0) p.vm_rss_mb = v;
    if (double v = kb("RssAnon:"); v >= 0) p.rss_anon_mb = v;
    if (double v = kb("RssShmem:"); v >= 0) p.rss_shmem_mb = v;
    if (double v = kb("VmHWM:"); v >= 0) p.vm_hwm_mb = v;
  }
  return p;
}

struct Received {
  std::int64_t recv_ns, event_ms;
};

std::int64_t json_int(const std::string& line, const char* key, std::size_t from) {
  const auto k = line.find(key, from);
  return k == std::string::npos ? -1 : std::strtoll(line.c_str() + k + std::strlen(key), nullptr, 10);
}

// aggTrade frames of one symbol in the record file: id -> (receive time, E).
std::unordered_map<std::int64_t, Received> read_record(const std::string& path, const std::string& stream) {
  std::unordered_map<std::int64_t, Received> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos || line.find(stream, colon) == std::string::npos) continue;
    const auto dot = line.find('.');
    if (dot == std::string::npos || dot > colon) continue;
    const std::int64_t s = std::strtoll(line.c_str(), nullptr, 10);
    const std::int64_t frac = std::strtoll(line.substr(dot + 1, colon - dot - 1).c_str(), nullptr, 10);  // 1e-7 s
    const std::int64_t id = json_int(line, "\"a\":", colon), e = json_int(line, "\"E\":", colon);
    if (id >= 0) out[id] = {s * 1'000'000'000 + frac * 100, e};
  }
  return out;
}

// mdshm-sim --send-log: aggTrade id -> CLOCK_REALTIME ns of its send.
std::unordered_map<std::int64_t, std::int64_t> read_sends(const std::string& path) {
  std::unordered_map<std::int64_t, std::int64_t> out;
  std::ifstream in(path);
  for (std::int64_t id = 0, ns = 0; in >> id >> ns;) out.emplace(id, ns);  // a duplicate keeps the first send
  return out;
}

struct RoundResult {
  double rate = 0;  // aggTrade frames per second received during the window
  std::size_t samples = 0;
  bench::Stats recv_to_seen, recv_to_published, published_to_seen, sched_to_recv, sched_to_seen;
  bench::Stats sched_to_sent, sent_to_recv, sent_to_seen;
  double origin_width_us = 0, origin_drift_us = 0;
  double sim_cpu = 0, daemon_cpu = 0;  // share of one core during the window
  double reader_waiting = 0;            // share of the window the reader was runnable but not running
  double stalled_share = 0;             // share of samples taken right after a reader stall
  bench::Stats recv_to_seen_running;    // recv_to_seen without those samples
};

RoundResult latency_round(const Options& o, double speed, double seconds) {
  Rig rig(o, speed, false, false);
  auto s = open_when_live(rig, "eth_ticks", 30s);
  if (!s) throw std::runtime_error("eth_ticks never went live (see " + rig.path("mdshmd.log") + ")");
  std::this_thread::sleep_for(2s);  // past the start-up backfill
  const auto before = rig.sim_origin(300);
  const auto sim_a = sample_proc(rig.sim_pid()), daemon_a = sample_proc(rig.daemon_pid());
  const auto t_a = std::chrono::steady_clock::now();
  bench::pin_to_core(bench::online_cores() - 1);
  const std::int64_t delay_a = run_delay_ns();
  const auto seen = spin_reader(*s, seconds);
  const std::int64_t delay_b = run_delay_ns();
  bench::unpin();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_a).count();
  const auto sim_b = sample_proc(rig.sim_pid()), daemon_b = sample_proc(rig.daemon_pid());
  const auto after = rig.sim_origin(300);
  rig.stop();  // flushes the record file and the send log
  const auto rec = read_record(rig.path("frames.rec"), "ethusdt@aggTrade");
  const auto sends = read_sends(rig.path("sends.log"));

  RoundResult r;
  r.sim_cpu = (sim_b.cpu_s - sim_a.cpu_s) / wall;
  r.daemon_cpu = (daemon_b.cpu_s - daemon_a.cpu_s) / wall;
  r.reader_waiting = static_cast<double>(delay_b - delay_a) / (wall * 1e9);
  const double t0 = before.mid();
  r.origin_width_us = before.width() / 1e3;
  r.origin_drift_us = (after.mid() - before.mid()) / 1e3;
  std::vector<double> a, b, c, d, e, running, f, g, h;
  std::size_t stalled = 0;
  std::int64_t first_recv = INT64_MAX, last_recv = 0;
  std::size_t in_window = 0;
  const std::int64_t win_lo = seen.empty() ? 0 : seen.front().seen_ns, win_hi = seen.empty() ? 0 : seen.back().seen_ns;
  for (const auto& [id, x] : rec)
    if (x.recv_ns >= win_lo && x.recv_ns <= win_hi) {
      ++in_window;
      first_recv = std::min(first_recv, x.recv_ns);
      last_recv = std::max(last_recv, x.recv_ns);
    }
  if (last_recv > first_recv) r.rate = static_cast<double>(in_window) * 1e9 / static_cast<double>(last_recv - first_recv);
  for (const auto& x : seen) {
    const auto it = rec.find(x.trade_id);
    if (it == rec.end()) continue;
    const auto& rv = it->second;
    const double sched = t0 + static_cast<double>(rv.event_ms - kStartMs) * 1e6 / speed;
    a.push_back(static_cast<double>(x.seen_ns - rv.recv_ns));
    if (x.reader_stalled) ++stalled;
    else running.push_back(a.back());
    b.push_back(static_cast<double>(x.published_ns - rv.recv_ns));
    c.push_back(static_cast<double>(x.seen_ns - x.published_ns));
    d.push_back(static_cast<double>(rv.recv_ns) - sched);
    e.push_back(static_cast<double>(x.seen_ns) - sched);
    if (const auto sent = sends.find(x.trade_id); sent != sends.end()) {
      f.push_back(static_cast<double>(sent->second) - sched);
      g.push_back(static_cast<double>(rv.recv_ns - sent->second));
      h.push_back(static_cast<double>(x.seen_ns - sent->second));
    }
  }
  r.samples = a.size();
  r.recv_to_seen = bench::summarize(a);
  r.recv_to_seen_running = bench::summarize(running);
  r.stalled_share = a.empty() ? 0 : static_cast<double>(stalled) / static_cast<double>(a.size());
  r.recv_to_published = bench::summarize(b);
  r.published_to_seen = bench::summarize(c);
  r.sched_to_recv = bench::summarize(d);
  r.sched_to_seen = bench::summarize(e);
  r.sched_to_sent = bench::summarize(f);
  r.sent_to_recv = bench::summarize(g);
  r.sent_to_seen = bench::summarize(h);
  return r;
}

void print_row(const char* name, const std::vector<bench::Stats>& per_round) {
  auto med = [&](auto field) {
    std::vector<double> v;
    for (const auto& s : per_round) v.push_back(s.*field);
    return bench::median(v) / 1e3;
  };
  std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", name, med(&bench::Stats::min), med(&bench::Stats::p50),
              med(&bench::Stats::p99), med(&bench::Stats::p999), med(&bench::Stats::mean));
}

void bench_latency(const Options& o, const std::vector<double>& speeds, int rounds, double seconds) {
  std::printf("\n## End to end latency: mdshm-sim -> TLS loopback -> mdshmd -> spinning reader (eth_ticks)\n");
  std::printf("\nReader pinned to core %d; simulator and daemon %s. %d rounds of %.0f s per speed; each row is\n"
              "the median over rounds of that round's statistic (µs).\n",
              bench::online_cores() - 1, o.pin_children ? "pinned to core 0" : "unpinned", rounds, seconds);
  for (const double speed : speeds) {
    std::vector<RoundResult> rr;
    for (int i = 0; i < rounds; ++i) rr.push_back(latency_round(o, speed, seconds));
    std::vector<double> rates, samples, widths, drifts, sim_cpu, daemon_cpu, waiting, stalled;
    for (const auto& r : rr) {
      rates.push_back(r.rate);
      samples.push_back(static_cast<double>(r.samples));
      widths.push_back(r.origin_width_us);
      drifts.push_back(r.origin_drift_us);
      sim_cpu.push_back(r.sim_cpu);
      daemon_cpu.push_back(r.daemon_cpu);
      waiting.push_back(r.reader_waiting);
      stalled.push_back(r.stalled_share);
    }
    std::printf("\n### --speed %g: %.0f ETH aggTrades/s received (median of rounds), %.0f trades sampled per round\n\n",
                speed, bench::median(rates), bench::median(samples));
    std::printf("| interval | min µs | p50 µs | p99 µs | p99.9 µs | mean µs |\n|---|---:|---:|---:|---:|---:|\n");
    auto rows = [&](bench::Stats RoundResult::*f) {
      std::vector<bench::Stats> v;
      for (const auto& r : rr) v.push_back(r.*f);
      return v;
    };
    print_row("**daemon receive → reader sees the bar** (exact)", rows(&RoundResult::recv_to_seen));
    print_row("  the same, samples where the reader was on its CPU", rows(&RoundResult::recv_to_seen_running));
    print_row("  daemon receive → aggregator's stamp (bar.update_wall_ns)", rows(&RoundResult::recv_to_published));
    print_row("  aggregator's stamp → reader sees the bar", rows(&RoundResult::published_to_seen));
    print_row("sim send (--send-log stamp) → daemon receive (exact)", rows(&RoundResult::sent_to_recv));
    print_row("**sim send → reader sees the bar** (exact)", rows(&RoundResult::sent_to_seen));
    print_row("sim scheduled send → sim send: the simulator's lateness (estimate)", rows(&RoundResult::sched_to_sent));
    print_row("sim scheduled send → daemon receive (estimate)", rows(&RoundResult::sched_to_recv));
    print_row("**sim scheduled send → reader sees the bar** (estimate)", rows(&RoundResult::sched_to_seen));
    std::printf("\nSimulator clock origin bracketed to ±%.1f µs (median over rounds); it moved %.1f µs between\n"
                "the brackets before and after the window (clock drift or slew).\n",
                bench::median(widths) / 2, bench::median(drifts));
    std::printf("CPU during the window (utime+stime / wall, median over rounds): simulator %.0f %%, daemon %.0f %% of one core.\n",
                100 * bench::median(sim_cpu), 100 * bench::median(daemon_cpu));
    std::printf("The spinning reader waited for its CPU (other processes on its core) %.1f %% of the window;\n"
                "%.2f %% of the samples were taken right after such a stall (poll gap > %lld µs).\n",
                100 * bench::median(waiting), 100 * bench::median(stalled), static_cast<long long>(kStallNs / 1000));
    std::fflush(stdout);
  }
}

void bench_resources(const Options& o, double speed, double seconds) {
  std::printf("\n## Daemon CPU and RSS at a realistic rate (ETH + derived BTC, five default series and capacities)\n\n");
  Rig rig(o, speed, true, true);
  if (!open_when_live(rig, "eth_ticks", 30s)) throw std::runtime_error("eth_ticks never went live");
  std::this_thread::sleep_for(3s);  // past the start-up backfill
  const auto t_a = std::chrono::steady_clock::now();
  const auto a = sample_proc(rig.daemon_pid());
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto b = sample_proc(rig.daemon_pid());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_a).count();
  const std::int64_t hi = realtime_ns(), lo = hi - static_cast<std::int64_t>(wall * 1e9);
  rig.stop_daemon();
  std::size_t trades = 0;
  for (const char* stream : {"ethusdt@aggTrade", "btcusdt@aggTrade"})
    for (const auto& [id, x] : read_record(rig.path("frames.rec"), stream))
      if (x.recv_ns >= lo && x.recv_ns <= hi) ++trades;
  std::printf("--speed %g, measured over %.0f s after start-up; %.0f aggTrades/s received (both symbols); no reader attached.\n\n",
              speed, wall, static_cast<double>(trades) / wall);
  std::printf("| daemon | value |\n|---|---:|\n");
  std::printf("| CPU (utime+stime) / wall | %.2f %% of one core |\n", 100 * (b.cpu_s - a.cpu_s) / wall);
  std::printf("| CPU per received trade (fixed per-second work included) | %.1f µs |\n", trades ? (b.cpu_s - a.cpu_s) * 1e6 / static_cast<double>(trades) : 0.0);
  std::printf("| VmRSS at the end (MB = 10^6 B) | %.1f |\n| RssAnon | %.1f |\n| RssShmem | %.1f |\n| VmHWM | %.1f |\n",
              b.vm_rss_mb, b.rss_anon_mb, b.rss_shmem_mb, b.vm_hwm_mb);
  std::printf("| VmRSS at the start of the window | %.1f |\n", a.vm_rss_mb);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mdshm end-to-end benchmark: simulator -> daemon over TLS -> reader"};
  std::vector<std::string> which;
  Options o;
  std::vector<double> speeds = {92, 1200};
  int rounds = 3;
  double seconds = 20, resource_seconds = 150, resource_speed = 4.5;
  app.add_option("benches", which, "latency resources (default: both)")->check(CLI::IsMember({"latency", "resources", "all"}));
  app.add_option("--speeds", speeds, "simulator speeds for the latency runs (ETH from 2022-08-15 00:10: ~11 trades/s at 1x over the first replay minutes, ~20/s over hours)")
      ->delimiter(',');
  app.add_option("--rounds", rounds, "latency rounds per speed")->check(CLI::Range(1, 50));
  app.add_option("--seconds", seconds, "measured seconds per latency round");
  app.add_option("--resource-seconds", resource_seconds, "measured seconds of the CPU/RSS run");
  app.add_option("--resource-speed", resource_speed, "simulator speed of the CPU/RSS run (ETH + BTC)");
  app.add_option("--daemon-rt", o.daemon_rt,
                 "run mdshmd under SCHED_FIFO at this priority (chrt -f; needs CAP_SYS_NICE): a woken daemon then "
                 "preempts the simulator on their shared core, as a latency-critical feed handler would be configured")
      ->check(CLI::Range(0, 99));
  app.add_flag("!--no-pin", o.pin_children, "let the simulator and daemon float instead of pinning them to core 0");
  app.add_option("--bin", o.bin, "directory holding mdshmd and mdshm-sim");
  app.add_option("--klines", o.klines, "directory of the ETHUSDT-1m-2022-08-1{4,5}.csv files");
  CLI11_PARSE(app, argc, argv);
  std::set<std::string> run(which.begin(), which.end());
  if (run.empty() || run.count("all")) run = {"latency", "resources"};

  bench::install_cleanup_handler();
  ::signal(SIGPIPE, SIG_IGN);
  std::printf("# machine\n\n- CPU: %s, %d online cores\n- load average at start: %s\n", bench::cpu_model().c_str(),
              bench::online_cores(), bench::first_line("/proc/loadavg").c_str());
  try {
    if (run.count("latency")) bench_latency(o, speeds, rounds, seconds);
    if (run.count("resources")) bench_resources(o, resource_speed, resource_seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_e2e: %s\n", e.what());
    return 1;
  }
  std::printf("\n- load average at the end: %s\n", bench::first_line("/proc/loadavg").c_str());
  return 0;
}
