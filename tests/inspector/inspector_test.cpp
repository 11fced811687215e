// The inspector against a live synthetic writer: every command's text and JSON output, check's
// exit codes (healthy, stale, dead writer, incompatible and missing segments) and watch in tmux.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <fstream>
#include <sstream>

#include "mdshm/client.hpp"
#include "process.hpp"

using namespace mdshm::test;

namespace {

const std::string kMdshm = MDSHM_INSPECTOR_EXE;
const std::string kWriter = MDSHM_SYNTHETIC_WRITER_EXE;

struct Fixture {
  std::string instance = unique_instance("insp");
  InstanceCleanup cleanup{instance};
  WriterProcess writer{kWriter, {"--instance", instance, "--history", "30"}};

  RunResult mdshm(const std::string& args, bool merge_stderr = false) const {
    return run(kMdshm + " --instance " + instance + " " + args, merge_stderr);
  }
};

std::size_t count_lines(const std::string& s) {
  std::size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("list shows every series of the instance, text and JSON", "[inspector]") {
  Fixture f;
  const auto text = f.mdshm("list");
  REQUIRE(text.exit_code == 0);
  for (auto s : {"eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks"}) CHECK(contains(text.out, s));
  CHECK(contains(text.out, "31/256"));  // 30 closed + the bar in progress (1m, 1h, 1d)
  CHECK(contains(text.out, "alive"));
  CHECK(count_lines(text.out) == 6);

  const auto js = f.mdshm("list --json");
  REQUIRE(js.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  CHECK(std::string_view(doc["instance"]) == f.instance);
  simdjson::dom::array segs = doc["segments"];
  REQUIRE(segs.size() == 5);
  bool saw_1d = false;
  for (simdjson::dom::element s : segs) {
    CHECK(bool(s["compatible"]));
    CHECK(bool(s["writer_alive"]));
    CHECK(std::string_view(s["writer_state"]) == "alive");
    CHECK(std::int64_t(s["writer_pid"]) == f.writer.pid());
    CHECK(std::string_view(s["layout_version"]) == std::to_string(mdshm::kLayoutMajor) + "." + std::to_string(mdshm::kLayoutMinor));
    CHECK(std::uint64_t(s["generation"]) == 1);
    CHECK(double(s["heartbeat_age_s"]) < 1.0);
    if (std::string_view(s["series"]) == "eth_1d") {
      saw_1d = true;
      CHECK(std::string_view(s["interval"]) == "1d");
      CHECK(std::string_view(s["symbol"]) == "ETHUSDT");
      CHECK(std::uint64_t(s["bars"]) == 31);
      CHECK(std::uint64_t(s["capacity"]) == 256);
    }
  }
  CHECK(saw_1d);
}

TEST_CASE("show prints header, statistics, latency and consumers", "[inspector]") {
  Fixture f;
  sleep_ms(200);  // a few of the writer's 50 ms rounds: trades and latency samples
  mdshm::OpenOptions opt;
  opt.instance = f.instance;
  auto sub = mdshm::Subscription::open("test-consumer", "eth_1m", opt);
  REQUIRE(sub);
  std::vector<mdshm::Bar> buf(8);
  std::size_t n = 0;
  REQUIRE(sub->poll(buf, n) == mdshm::Errc::ok);

  const auto text = f.mdshm("show eth_1m");
  REQUIRE(text.exit_code == 0);
  for (auto name : mdshm::kStatNames) CHECK(contains(text.out, std::string(name)));
  CHECK(contains(text.out, "test-consumer"));
  CHECK(contains(text.out, "p50 <= 32.8 us"));

  const auto js = f.mdshm("show eth_1m --json");
  REQUIRE(js.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  CHECK(std::string_view(doc["series"]) == "eth_1m");
  CHECK(std::uint64_t(doc["interval_s"]) == 60);
  simdjson::dom::object stats = doc["stats"];
  CHECK(stats.size() == std::size(mdshm::kStatNames));
  CHECK(std::uint64_t(doc["stats"]["trades"]) > 0);
  CHECK(std::uint64_t(doc["stats"]["bars_closed"]) >= 30);
  CHECK(std::uint64_t(doc["latency"]["p50_ns"]) == 32768);
  CHECK(std::uint64_t(doc["latency"]["p99_ns"]) == 32768);
  CHECK(std::string_view(doc["writer"]["state"]) == "alive");
  CHECK(std::string_view(doc["newest_bar"]["flags"].at(0)) == "in_progress");
  simdjson::dom::array consumers = doc["consumers"];
  REQUIRE(consumers.size() == 1);
  simdjson::dom::element c = consumers.at(0);
  CHECK(std::string_view(c["name"]) == "test-consumer");
  CHECK(std::int64_t(c["pid"]) == ::getpid());
  CHECK(bool(c["alive"]));
  CHECK(std::uint64_t(c["lag"]) == std::uint64_t(doc["head"]) - std::uint64_t(c["cursor"]));
  CHECK(std::uint64_t(c["reads"]) == 1);

  const auto missing = f.mdshm("show nope", true);
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.out, "not found"));
}

TEST_CASE("tail prints the newest bars with UTC times and flags spelled out", "[inspector]") {
  Fixture f;
  const auto text = f.mdshm("tail eth_1h -n 31");
  REQUIRE(text.exit_code == 0);
  CHECK(count_lines(text.out) == 32);  // header + 31 bars
  CHECK(contains(text.out, ":00:00Z"));
  CHECK(contains(text.out, "closed,backfilled,reconciled"));
  // The last row is the bar in progress.
  const auto last = text.out.substr(text.out.rfind('\n', text.out.size() - 2) + 1);
  CHECK(contains(last, "in_progress"));

  const auto js = f.mdshm("tail eth_1d -n 5 --json");
  REQUIRE(js.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  simdjson::dom::array bars = doc["bars"];
  REQUIRE(bars.size() == 5);
  std::int64_t prev = 0;
  for (simdjson::dom::element b : bars) {
    CHECK(double(b["close"]) == double(b["open"]) + 0.5);
    const std::int64_t t = b["open_time_ms"];
    CHECK(t % 86'400'000 == 0);
    if (prev) CHECK(t - prev == 86'400'000);
    prev = t;
    CHECK(contains(std::string(std::string_view(b["open_time"])), "T00:00:00Z"));
  }
  CHECK(std::string_view(bars.at(4)["flags"].at(0)) == "in_progress");
}

TEST_CASE("check: healthy 0, stale 1 when the writer is stopped", "[inspector]") {
  Fixture f;
  auto ok = f.mdshm("check");
  CHECK(ok.exit_code == 0);
  CHECK(contains(ok.out, "OK"));
  ok = f.mdshm("check --json");
  CHECK(ok.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(ok.out);
  CHECK(std::string_view(doc["status"]) == "ok");
  CHECK(simdjson::dom::array(doc["series"]).size() == 5);

  f.writer.signal(SIGSTOP);
  sleep_ms(1300);
  const auto stale = f.mdshm("check --max-age 1");
  f.writer.signal(SIGCONT);
  CHECK(stale.exit_code == 1);
  CHECK(contains(stale.out, "STALE eth_1d"));
  CHECK(contains(stale.out, "no heartbeat"));
  CHECK(count_lines(stale.out) >= 5);  // at least one line per series

  sleep_ms(300);
  CHECK(f.mdshm("check --max-age 1").exit_code == 0);
}

TEST_CASE("check: 1 when recent bars are flagged not_repaired", "[inspector]") {
  const std::string instance = unique_instance("insp");
  InstanceCleanup cleanup{instance};
  WriterProcess writer{kWriter, {"--instance", instance, "--history", "30", "--not-repaired", "3",
                                 "--series", "eth_1m:ETHUSDT:60:256"}};
  const auto r = run(kMdshm + " --instance " + instance + " check");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "STALE eth_1m: 3 of the newest 31 bars flagged not_repaired"));
}

TEST_CASE("check: 2 for a dead writer, a missing and an incompatible segment", "[inspector]") {
  Fixture f;
  // Garbage with a series name: listed with the reason, never a crash.
  const std::string garbage = mdshm::paths::segment("/dev/shm", f.instance, "garbage");
  {
    std::ofstream out(garbage);
    out << std::string(8192, 'x');
  }
  const std::string tiny = mdshm::paths::segment("/dev/shm", f.instance, "tiny");
  {
    std::ofstream out(tiny);
    out << "short";
  }
  const auto list = f.mdshm("list");
  REQUIRE(list.exit_code == 0);
  CHECK(contains(list.out, "no: bad magic"));
  CHECK(contains(list.out, "no: file smaller than a segment header"));
  const auto js = f.mdshm("list --json");
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  CHECK(simdjson::dom::array(doc["segments"]).size() == 7);

  auto bad = f.mdshm("check");
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.out, "FAIL garbage: incompatible"));
  CHECK(count_lines(bad.out) == 2);
  ::unlink(garbage.c_str());
  ::unlink(tiny.c_str());
  REQUIRE(f.mdshm("check").exit_code == 0);

  // A segment the writer registered but which is gone.
  ::unlink(mdshm::paths::segment("/dev/shm", f.instance, "eth_1h").c_str());
  auto missing = f.mdshm("check");
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.out, "FAIL eth_1h: missing"));

  f.writer.stop(SIGKILL);
  auto dead = f.mdshm("check eth_1m eth_ticks");
  INFO(dead.out);
  CHECK(dead.exit_code == 2);
  CHECK(contains(dead.out, "FAIL eth_1m: writer pid"));
  CHECK(contains(dead.out, "dead"));
  CHECK(count_lines(dead.out) == 2);
  const auto after = f.mdshm("list --json");
  CHECK(contains(after.out, "\"writer_alive\":false"));
}

TEST_CASE("check: --max-age must be a finite, positive, sane number of seconds", "[inspector]") {
  Fixture f;
  for (const char* bad : {"nan", "NaN", "inf", "-1", "0", "-0", "1e9", "1e400", "abc", "5s", ""}) {
    INFO("--max-age '" << bad << "'");
    const auto r = f.mdshm(std::string("check --max-age '") + bad + "'", true);
    CHECK(r.exit_code == 64);
    CHECK(contains(r.out, "max-age"));
  }
  CHECK(f.mdshm("check --max-age 0.5").exit_code == 0);
  CHECK(f.mdshm("check --max-age 86400").exit_code == 0);
}

TEST_CASE("one liveness rule: a writer frozen for 1.6 s is stalled in list, check and the client", "[inspector]") {
  Fixture f;
  REQUIRE(f.mdshm("check").exit_code == 0);
  auto client = mdshm::Series::open("eth_1m", mdshm::OpenOptions{f.instance, "/dev/shm"});
  REQUIRE(client);
  f.writer.signal(SIGSTOP);
  sleep_ms(1600);
  const auto list = f.mdshm("list --json");
  const auto check = f.mdshm("check");  // default --max-age 5: the heartbeat rule is not max-age's
  const auto client_state = client.value().writer_state();
  f.writer.signal(SIGCONT);
  INFO(list.out << "\n" << check.out);
  CHECK(contains(list.out, "\"writer_state\":\"stalled\""));
  CHECK(check.exit_code == 1);
  CHECK(contains(check.out, "STALE eth_1m: writer pid"));
  CHECK(contains(check.out, "stalled"));
  CHECK(client_state == mdshm::WriterState::stalled);
  sleep_ms(300);
  CHECK(f.mdshm("check").exit_code == 0);
}

TEST_CASE("check: a failing history store is a problem (exit 2) naming the error and the backlog", "[inspector]") {
  const std::string instance = unique_instance("insp");
  InstanceCleanup cleanup{instance};
  WriterProcess writer{kWriter, {"--instance", instance, "--history", "30", "--store-state", "2", "--store-pending", "7",
                                 "--series", "eth_1m:ETHUSDT:60:256"}};
  const auto r = run(kMdshm + " --instance " + instance + " check");
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.out, "FAIL eth_1m: history store failing (last error ENOSPC, 3 failure(s)); 7 closed bar(s) not on disk yet"));
  const auto show = run(kMdshm + " --instance " + instance + " show eth_1m");
  CHECK(contains(show.out, "store_pending_bars"));
}

TEST_CASE("watch without a terminal prints one line per series per refresh", "[inspector]") {
  Fixture f;
  const auto plain = f.mdshm("watch --count 2");
  REQUIRE(plain.exit_code == 0);
  CHECK(count_lines(plain.out) == 10);
  CHECK(contains(plain.out, "eth_1m ETHUSDT 1m"));
  CHECK(contains(plain.out, "health=ok"));

  const auto js = f.mdshm("watch --count 2 --json");
  REQUIRE(js.exit_code == 0);
  std::istringstream lines(js.out);
  std::string line;
  int n = 0;
  simdjson::dom::parser parser;
  while (std::getline(lines, line)) {
    simdjson::dom::element doc = parser.parse(line);
    CHECK(std::string_view(doc["health"]) == "ok");
    if (++n > 5) CHECK(double(doc["rate_per_s"]) > 5.0);  // the writer updates every 50 ms
  }
  CHECK(n == 10);
}

TEST_CASE("watch full screen in tmux: refreshes, quits on q and Ctrl-C, restores the terminal", "[inspector][tmux]") {
  if (run("command -v tmux").exit_code != 0) {
    WARN("tmux not installed: watch's full-screen mode not tested");
    return;
  }
  Fixture f;
  for (const std::string key : {"q", "C-c"}) {
    // A tmux server of our own per round: a server whose last session ended exits, and a new
    // session started meanwhile would race with it.
    const std::string tmux = "env -u TMUX TERM=xterm tmux -L mdshm-test-" + std::to_string(::getpid()) + "-" + key + " ";
    struct KillServer {
      std::string tmux;
      ~KillServer() { run(tmux + "kill-server", true); }
    } kill_server{tmux};
    // After watch exits, the pane shows its exit code and the terminal modes it left behind.
    const std::string inner = kMdshm + " --instance " + f.instance +
                              " watch; echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '; "
                              "echo; sleep 30";
    const auto started = run(tmux + "new-session -d -s w -x 160 -y 40 " + quote("sh -c " + quote(inner)), true);
    INFO(started.out);
    REQUIRE(started.exit_code == 0);
    std::string screen;
    for (int i = 0; i < 40 && !contains(screen, "eth_ticks"); ++i) {
      sleep_ms(100);
      screen = run(tmux + "capture-pane -p -t w").out;
    }
    CHECK(contains(screen, "mdshm watch - instance " + f.instance));
    CHECK(contains(screen, "eth_1d"));
    CHECK(contains(screen, "btc_ticks"));
    CHECK(contains(screen, " ok "));
    run(tmux + "send-keys -t w " + key);
    std::string after;
    for (int i = 0; i < 40 && !contains(after, "EXIT="); ++i) {
      sleep_ms(100);
      after = run(tmux + "capture-pane -p -t w").out;
    }
    INFO("after " << key << ":\n" << after);
    CHECK(contains(after, "EXIT=0"));
    CHECK(contains(after, "icanon echo"));  // cooked mode again, not -icanon -echo
    CHECK_FALSE(contains(after, "mdshm watch - instance"));  // alternate screen left
  }
}

TEST_CASE("signed statistics print signed in show, text and JSON", "[inspector]") {
  const std::string instance = unique_instance("sign");
  InstanceCleanup cleanup{instance};
  WriterProcess writer{kWriter, {"--instance", instance, "--history", "5", "--exchange-offset-ms", "-135000"}};
  const auto text = run(kMdshm + " --instance " + instance + " show eth_1m");
  REQUIRE(text.exit_code == 0);
  INFO(text.out);
  CHECK(contains(text.out, "exchange_offset_ms   -135000\n"));
  const auto js = run(kMdshm + " --instance " + instance + " show eth_1m --json");
  REQUIRE(js.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  CHECK(std::int64_t(doc["stats"]["exchange_offset_ms"]) == -135000);
}

TEST_CASE("--json is JSON even when there is nothing to show", "[inspector]") {
  const std::string instance = unique_instance("empty");
  const auto watch = run(kMdshm + " --instance " + instance + " watch --count 1 --json");
  INFO(watch.out);
  CHECK(watch.exit_code == 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(watch.out);
  CHECK(std::int64_t(doc["segments"]) == 0);
  CHECK(contains(std::string(std::string_view(doc["error"])), "no segments of instance '" + instance + "'"));
  for (const char* cmd : {"list", "check"}) {
    const auto r = run(kMdshm + " --instance " + instance + " " + cmd + " --json");
    INFO(cmd << ": " << r.out);
    CHECK_NOTHROW(parser.parse(r.out));
  }
}

TEST_CASE("a --shm-dir that does not exist is an error naming it", "[inspector]") {
  const std::string dir = "/nonexistent-mdshm-" + unique_instance("dir");
  for (const char* cmd : {"list", "watch --count 1", "check", "show eth_1m"}) {
    const auto r = run(kMdshm + " --instance x --shm-dir " + dir + " " + cmd, true);
    INFO(cmd << ": " << r.out);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.out, "--shm-dir " + dir + ": No such file or directory"));
  }
  const auto js = run(kMdshm + " --instance x --shm-dir " + dir + " list --json");
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  CHECK(contains(std::string(std::string_view(doc["error"])), dir));
}

TEST_CASE("permission denied names the group a reader must join", "[inspector][security]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot run the inspector as another user");
    return;
  }
  Fixture f;
  const std::string dir = mdshm::paths::instance_dir("/dev/shm", f.instance);
  struct stat st {};
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  REQUIRE((st.st_mode & S_IROTH) == 0);  // the instance directory is not world-readable
  const group* g = ::getgrgid(st.st_gid);
  REQUIRE(g != nullptr);
  const std::string group_name = g->gr_name;
  // As nobody, outside the group: the directory cannot be listed.
  const auto r = run("setpriv --reuid=65534 --regid=65534 --clear-groups " + quote(kMdshm) + " --instance " +
                         f.instance + " list",
                     true);
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK(contains(r.out, "permission denied"));
  CHECK(contains(r.out, "group '" + group_name + "'"));
}

TEST_CASE("list of an instance with no segments names the instances it sees", "[inspector]") {
  Fixture f;  // a writer under f.instance
  const std::string wrong = unique_instance("typo");
  const auto text = run(kMdshm + " --instance " + wrong + " list");
  INFO(text.out);
  CHECK(text.exit_code == 0);
  CHECK(contains(text.out, "no segments of instance '" + wrong + "'"));
  CHECK(contains(text.out, "other instances there: "));
  CHECK(contains(text.out, f.instance));
  const auto js = run(kMdshm + " --instance " + wrong + " list --json");
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(js.out);
  bool seen = false;
  for (simdjson::dom::element i : simdjson::dom::array(doc["other_instances"]))
    seen = seen || std::string_view(i) == f.instance;
  CHECK(seen);
  // The instance itself is not among the others.
  const auto own = run(kMdshm + " --instance " + f.instance + " list --json");
  simdjson::dom::element own_doc = parser.parse(own.out);
  for (simdjson::dom::element i : simdjson::dom::array(own_doc["other_instances"])) CHECK(std::string_view(i) != f.instance);
}
