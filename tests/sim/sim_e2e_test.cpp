// End to end: the mdshm-sim program over TLS, driven by a small Beast client that trusts the CA
// the simulator writes. This file is the test's only Beast translation unit.
#include <utility>  // Boost 1.74 needs std::exchange before its headers

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "decimal.hpp"
#include "parse/capture_line.hpp"
#include "spawn_logged.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using namespace mdshm::sim;

extern char** environ;

namespace {

const std::string kData = MDSHM_SHARED_DATA_DIR;
const std::string kDay1 = kData + "/klines/ETHUSDT-1m-2022-08-14.csv";
const std::string kCapture = kData + "/ws/cryptofeed-BINANCE.ws.1.0";
constexpr std::int64_t kDay1Open = 1660435200000;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mdshm-sim-test-" + std::to_string(getpid()) + "-" + name)).string();
}

// The simulator as a child process; stopped with SIGTERM at scope exit.
class Sim {
 public:
  explicit Sim(std::vector<std::string> args) {
    ca_ = temp_path("ca.pem");
    args.insert(args.begin(), std::string(MDSHM_BIN_DIR) + "/mdshm-sim");
    args.insert(args.end(), {"--ca-out", ca_, "--control", "0"});
    int out[2];
    REQUIRE(pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    REQUIRE(posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512];
    while (fgets(line, sizeof line, f)) {
      std::cmatch m;
      const std::string l = line;
      if (std::regex_search(line, m, std::regex("control=127\\.0\\.0\\.1:(\\d+)"))) control_port_ = std::stoi(m[1]);
      if (std::regex_search(line, m, std::regex("^listening ws=wss://127\\.0\\.0\\.1:(\\d+) rest=https://127\\.0\\.0\\.1:(\\d+)"))) {
        port_ = std::stoi(m[1]);
        break;
      }
    }
    fclose(f);
    REQUIRE(port_ > 0);
    REQUIRE(control_port_ > 0);
  }
  ~Sim() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    std::filesystem::remove(ca_);
  }
  int port() const { return port_; }
  const std::string& ca() const { return ca_; }

  // One control command, its one-line reply.
  std::string control(const std::string& command) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(control_port_)});
    asio::write(s, asio::buffer(command + "\n"));
    asio::streambuf buf;
    asio::read_until(s, buf, '\n');
    std::string reply(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
    while (!reply.empty() && reply.back() == '\n') reply.pop_back();
    return reply;
  }

 private:
  pid_t pid_ = 0;
  int port_ = 0, control_port_ = 0;
  std::string ca_;
};

ssl::context client_tls(const std::string& ca) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(ca);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

struct HttpReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

HttpReply get(const Sim& sim, const std::string& target) {
  asio::io_context io;
  auto ctx = client_tls(sim.ca());
  beast::ssl_stream<beast::tcp_stream> s(io, ctx);
  s.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
  beast::get_lowest_layer(s).connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(sim.port())});
  s.handshake(ssl::stream_base::client);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(s, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(s, buf, res);
  HttpReply r{static_cast<int>(res.result_int()), res.body(), {}};
  for (const auto& h : res) r.headers[std::string(h.name_string())] = std::string(h.value());
  return r;
}

class WsClient {
 public:
  WsClient(const Sim& sim, const std::string& target)
      : ctx_(client_tls(sim.ca())), ws_(io_, ctx_) {
    ws_.next_layer().set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(ws_).connect(
        {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(sim.port())});
    ws_.next_layer().handshake(ssl::stream_base::client);
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) ++pings;
    });
    ws_.handshake("127.0.0.1", target);
  }
  // Next text frame; "" once the connection is closed.
  std::string read() {
    beast::flat_buffer buf;
    beast::error_code ec;
    ws_.read(buf, ec);
    if (ec) return {};
    return beast::buffers_to_string(buf.data());
  }
  int pings = 0;

 private:
  asio::io_context io_;
  ssl::context ctx_;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
};

struct ParsedTrade {
  long long id = 0, time = 0;
  std::int64_t price = 0, qty = 0;
  bool maker = false;
};

// The aggTrade objects of a REST reply or a stream frame, by their fixed field order.
std::vector<ParsedTrade> parse_trades(const std::string& text) {
  static const std::regex re(
      "\"a\":(\\d+),\"p\":\"([0-9.]+)\",\"q\":\"([0-9.]+)\",\"f\":\\d+,\"l\":\\d+,\"T\":(\\d+),\"m\":(true|false)");
  std::vector<ParsedTrade> out;
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    const auto& m = *it;
    out.push_back({std::stoll(m[1]), std::stoll(m[4]), *parse_decimal(m[2].str()), *parse_decimal(m[3].str()),
                   m[5] == "true"});
  }
  return out;
}

std::vector<std::string> csv_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

// Runs mdshm-sim with arguments it must refuse: its exit status and what it printed.
std::pair<int, std::string> refused(std::vector<std::string> args) {
  const std::string out = temp_path("refused.txt");
  std::filesystem::remove(out);
  args.insert(args.begin(), std::string(MDSHM_BIN_DIR) + "/mdshm-sim");
  const pid_t pid = spawn_logged(args, out);
  REQUIRE(pid > 0);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

}  // namespace

TEST_CASE("real and generated trades of one symbol do not mix; a capture line needs its receive time") {
  const std::string trades = std::string(MDSHM_SOURCE_DIR) + "/tests/sim/data/BTCUSDT-aggTrades-2021-10-22-excerpt.csv";
  auto [rc, text] = refused({"--klines", "BTCUSDT:1m:" + kDay1, "--trades", "BTCUSDT:" + trades});
  CHECK(rc == 2);
  CHECK(text.find("BTCUSDT has real trades from --trades and trades from another flag") != std::string::npos);
  // The capture holds NKNUSDT aggTrades: generated ones from --klines would interleave with them.
  std::tie(rc, text) = refused({"--klines", "NKNUSDT:1m:" + kDay1, "--replay", kCapture});
  CHECK(rc == 2);
  CHECK(text.find("NKNUSDT has real trades from --replay") != std::string::npos);
  // Nor do its recorded klines (lrcbtc@kline_1m is on line 207).
  std::tie(rc, text) = refused({"--klines", "LRCBTC:1m:" + kDay1, "--replay", kCapture});
  CHECK(rc == 2);
  CHECK(text.find("LRCBTC has real trades from --replay") != std::string::npos);
  std::tie(rc, text) = refused({"--klines", "XEMUSDT:1m:" + kDay1, "--replay", kData + "/ws/cryptofeed-BINANCE_TR.ws.1.0"});
  CHECK(rc == 2);
  CHECK(text.find("cryptofeed-BINANCE_TR.ws.1.0:4: a recorded kline of XEMUSDT") != std::string::npos);
  const std::string bare = temp_path("bare.capture");
  std::ofstream(bare) << "1633998512.0633569: {\"stream\":\"a@aggTrade\"}\n{\"stream\":\"a@aggTrade\"}\n";
  std::tie(rc, text) = refused({"--replay", bare});
  std::filesystem::remove(bare);
  CHECK(rc == 2);
  CHECK(text.find(bare + ":2: capture line without a receive time") != std::string::npos);
}

TEST_CASE("replayed frames arrive unchanged, filtered by the URL's streams") {
  Sim sim({"--replay", kCapture, "--speed", "0"});
  const std::vector<std::string> streams = {"nknusdt@aggTrade", "nknusdt@kline_1m", "blzeth@depth@100ms"};
  std::vector<std::string> expected;
  std::ifstream in(kCapture);
  for (std::string line; std::getline(in, line);) {
    const auto cl = mdshm::parse::parse_capture_line(line);
    if (!cl) continue;
    for (const auto& s : streams)
      if (cl->frame.find("{\"stream\":\"" + s + "\"") == 0) expected.emplace_back(cl->frame);
  }
  REQUIRE(expected.size() > 10);
  WsClient ws(sim, "/stream?streams=" + streams[0] + "/" + streams[1] + "/" + streams[2]);
  for (const auto& want : expected) REQUIRE(ws.read() == want);
}

TEST_CASE("a URL that is not a combined stream is refused") {
  Sim sim({"--replay", kCapture});
  CHECK_THROWS(WsClient(sim, "/ws/nknusdt@aggTrade"));
}

TEST_CASE("REST klines equal the CSV rows, with weight header and request log") {
  const std::string log = temp_path("requests.log");
  std::filesystem::remove(log);
  // The clock starts after the last bar: every bar is closed.
  Sim sim({"--klines", "ETHUSDT:1m:" + kDay1, "--start", std::to_string(kDay1Open + 86'400'000 + 5000), "--request-log",
           log});
  const auto rows = csv_lines(kDay1);
  REQUIRE(rows.size() == 1440);
  std::vector<std::string> got;
  for (std::int64_t start = kDay1Open; got.size() < rows.size();) {
    const auto r = get(sim, "/api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=" + std::to_string(start) + "&limit=1000");
    REQUIRE(r.status == 200);
    REQUIRE(r.headers.count("X-MBX-USED-WEIGHT-1M"));
    CHECK(std::stoi(r.headers.at("X-MBX-USED-WEIGHT-1M")) >= 2);
    std::string body = r.body;
    REQUIRE(body.size() > 4);
    body = body.substr(2, body.size() - 4);  // strip [[ and ]]
    std::size_t before = got.size();
    for (std::size_t p = 0;;) {
      const auto q = body.find("],[", p);
      std::string row = body.substr(p, q == std::string::npos ? std::string::npos : q - p);
      row.erase(std::remove(row.begin(), row.end(), '"'), row.end());
      got.push_back(row);
      if (q == std::string::npos) break;
      p = q + 3;
    }
    REQUIRE(got.size() > before);
    start = std::stoll(split(got.back(), ',')[0]) + 60'000;
  }
  for (std::size_t i = 0; i < rows.size(); ++i) REQUIRE(got[i] == rows[i]);

  const auto t = get(sim, "/api/v3/time");
  CHECK(t.headers.at("X-MBX-USED-WEIGHT-1M") == "5");  // 2 + 2 + 1 within the minute
  CHECK(t.body.find("\"serverTime\":16605216") == 0 + 1);

  std::ifstream in(log);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(all.find(" 200 GET /api/v3/klines?symbol=ETHUSDT&interval=1m&startTime=1660435200000&limit=1000\n") !=
        std::string::npos);
  CHECK(all.find(" 200 GET /api/v3/time\n") != std::string::npos);
  std::filesystem::remove(log);
}

TEST_CASE("REST aggTrades aggregate back to each kline") {
  Sim sim({"--klines", "ETHUSDT:1m:" + kDay1, "--start", std::to_string(kDay1Open + 86'400'000 + 5000)});
  const auto rows = csv_lines(kDay1);
  auto first = parse_trades(get(sim, "/api/v3/aggTrades?symbol=ETHUSDT&startTime=" + std::to_string(kDay1Open) + "&limit=1").body);
  REQUIRE(first.size() == 1);
  long long next_id = first[0].id;
  std::vector<ParsedTrade> trades;
  for (int page = 0; page < 3; ++page) {
    const auto r = get(sim, "/api/v3/aggTrades?symbol=ETHUSDT&fromId=" + std::to_string(next_id) + "&limit=1000");
    REQUIRE(r.status == 200);
    const auto t = parse_trades(r.body);
    REQUIRE(t.size() == 1000);
    for (const auto& x : t) REQUIRE(x.id == next_id++);  // contiguous ids
    trades.insert(trades.end(), t.begin(), t.end());
  }
  std::size_t k = 0;
  for (int bar = 0; bar < 5; ++bar) {
    const auto c = split(rows[static_cast<std::size_t>(bar)], ',');
    const std::int64_t open = std::stoll(c[0]), n = std::stoll(c[8]);
    REQUIRE(k + static_cast<std::size_t>(n) <= trades.size());
    std::int64_t hi = 0, lo = INT64_MAX, vol = 0, buy = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const auto& t = trades[k + static_cast<std::size_t>(i)];
      REQUIRE(t.time >= open);
      REQUIRE(t.time < open + 60'000);
      hi = std::max(hi, t.price);
      lo = std::min(lo, t.price);
      vol += t.qty;
      buy += t.maker ? 0 : t.qty;
    }
    CHECK(trades[k].price == *parse_decimal(c[1]));
    CHECK(hi == *parse_decimal(c[2]));
    CHECK(lo == *parse_decimal(c[3]));
    CHECK(trades[k + static_cast<std::size_t>(n) - 1].price == *parse_decimal(c[4]));
    CHECK(vol == *parse_decimal(c[5]));
    CHECK(buy == *parse_decimal(c[9]));
    k += static_cast<std::size_t>(n);
    if (k < trades.size()) CHECK(trades[k].time >= open + 60'000);
  }
}

TEST_CASE("the stream carries generated trades and closed klines that agree") {
  Sim sim({"--klines", "ETHUSDT:1m:" + kDay1, "--derive", "BTCUSDT:ETHUSDT:12", "--speed", "0", "--start",
           std::to_string(kDay1Open)});
  const auto rows = csv_lines(kDay1);
  WsClient ws(sim, "/stream?streams=ethusdt@aggTrade/ethusdt@kline_1m/btcusdt@aggTrade");
  std::int64_t vol = 0, n = 0, btc = 0;
  long long last_id = -1;
  std::string kline;
  while (kline.empty()) {
    const std::string f = ws.read();
    REQUIRE(!f.empty());
    if (f.rfind("{\"stream\":\"ethusdt@aggTrade\"", 0) == 0) {
      const auto t = parse_trades(f);
      REQUIRE(t.size() == 1);
      if (last_id >= 0) REQUIRE(t[0].id == last_id + 1);
      last_id = t[0].id;
      vol += t[0].qty;
      ++n;
    } else if (f.rfind("{\"stream\":\"btcusdt@aggTrade\"", 0) == 0) {
      ++btc;
    } else {
      REQUIRE(f.rfind("{\"stream\":\"ethusdt@kline_1m\"", 0) == 0);
      kline = f;
    }
  }
  const auto c = split(rows[0], ',');
  CHECK(n == std::stoll(c[8]));
  CHECK(vol == *parse_decimal(c[5]));
  CHECK(btc > 0);
  CHECK(kline.find("\"x\":true") != std::string::npos);
  CHECK(kline.find("\"t\":1660435200000") != std::string::npos);
  CHECK(kline.find("\"v\":\"" + c[5] + "\"") != std::string::npos);
  CHECK(kline.find("\"L\":" + std::to_string(last_id)) != std::string::npos);
  // The clock (as-fast-as-read mode) has followed the stream.
  CHECK(std::stoll(sim.control("clock").substr(3)) >= kDay1Open + 59'000);
}

TEST_CASE("faults: REST 429 with Retry-After, 500, partial body") {
  Sim sim({"--klines", "ETHUSDT:1m:" + kDay1, "--start", std::to_string(kDay1Open + 3'600'000)});
  CHECK(sim.control("rest_error 429 1 7") == "ok rest_error 429 x1");
  auto r = get(sim, "/api/v3/time");
  CHECK(r.status == 429);
  CHECK(r.headers["Retry-After"] == "7");
  CHECK(r.headers.count("X-MBX-USED-WEIGHT-1M"));
  CHECK(get(sim, "/api/v3/time").status == 200);
  sim.control("rest_error 500 1");
  CHECK(get(sim, "/api/v3/time").status == 500);
  sim.control("rest_partial 1");
  CHECK_THROWS(get(sim, "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=50"));
  CHECK(get(sim, "/api/v3/time").status == 200);
  CHECK(sim.control("nonsense").rfind("error", 0) == 0);
  // A blackout closes new connections before the TLS handshake; afterwards the server is back.
  CHECK(sim.control("blackout 0.5").rfind("ok blackout", 0) == 0);
  CHECK_THROWS(get(sim, "/api/v3/time"));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  CHECK(get(sim, "/api/v3/time").status == 200);
}

TEST_CASE("faults on the stream: hole, duplicate, malformed, drop, serverShutdown") {
  Sim sim({"--klines", "ETHUSDT:1m:" + kDay1, "--speed", "0", "--start", std::to_string(kDay1Open)});
  WsClient ws(sim, "/stream?streams=ethusdt@aggTrade");
  auto next_id = [&] {
    const auto t = parse_trades(ws.read());
    REQUIRE(t.size() == 1);
    return t[0].id;
  };
  // The writer runs ahead of this reader; let the socket buffers fill, then every fault applies to
  // frames not yet produced. Loopback buffers autotune to megabytes: tens of thousands of frames
  // can be in flight ahead of a fault, so each search looks far.
  constexpr int kSearch = 400000;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  REQUIRE(sim.control("hole 3") == "ok hole 3");
  long long prev = next_id(), jumps = 0, dups = 0;
  for (int i = 0; i < kSearch && jumps == 0; ++i) {
    const long long id = next_id();
    if (id == prev + 4) ++jumps;
    prev = id;
  }
  CHECK(jumps == 1);
  REQUIRE(sim.control("duplicate 1") == "ok duplicate 1");
  for (int i = 0; i < kSearch && dups == 0; ++i) {
    const long long id = next_id();
    if (id == prev) ++dups;
    prev = id;
  }
  CHECK(dups == 1);
  REQUIRE(sim.control("malformed 1") == "ok malformed 1");
  bool saw_bad = false;
  for (int i = 0; i < kSearch && !saw_bad; ++i) saw_bad = ws.read().find("\"stream\";") != std::string::npos;
  CHECK(saw_bad);
  REQUIRE(sim.control("shutdown") == "ok notified 1");
  bool saw_shutdown = false;
  for (int i = 0; i < kSearch && !saw_shutdown; ++i) saw_shutdown = ws.read().find("\"e\":\"serverShutdown\"") != std::string::npos;
  CHECK(saw_shutdown);
  REQUIRE(sim.control("drop") == "ok dropped 1");
  bool closed = false;
  for (int i = 0; i < kSearch && !closed; ++i) closed = ws.read().empty();
  CHECK(closed);
}

TEST_CASE("pings and the maximum connection lifetime") {
  Sim sim({"--replay", kCapture, "--ping-interval", "0.1", "--max-conn-lifetime", "0.8"});
  WsClient ws(sim, "/stream?streams=none@aggTrade");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(ws.read().empty());  // nothing subscribed: the read ends only when the server closes
  const double lived = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(lived > 0.5);
  CHECK(lived < 3.0);
  CHECK(ws.pings >= 3);
}
