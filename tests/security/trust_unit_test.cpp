// The trust rules as units: what the writer does with files it did not make, what readers refuse
// (their own Errc values), and the segment's recorded source (issue 8 defect 5).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "mdshm/client.hpp"
#include "mdshm/paths.hpp"
#include "publish/publisher.hpp"
#include "publish/segment_writer.hpp"

namespace fs = std::filesystem;
using namespace mdshm;

namespace {

constexpr uid_t kNobody = 65534;

struct TempShm {
  fs::path dir;
  std::string instance = "u";
  TempShm() {
    char tmpl[] = "/tmp/mdshm_trust.XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~TempShm() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  publish::SegmentOptions options() const {
    publish::SegmentOptions o;
    o.shm_dir = dir.string();
    o.instance = instance;
    return o;
  }
  std::string segment(const char* id) const { return paths::segment(dir.string(), instance, id); }
  OpenOptions open_options() const { return {instance, dir.string()}; }
};

publish::SeriesSpec spec(const std::string& kind = "synthetic", const std::string& endpoint = "seed=1") {
  return {"eth_1m", "ETHUSDT", 60, 16, kind, endpoint};
}

Bar bar(std::int64_t t, double px) {
  Bar b{};
  b.open_time_ms = t;
  b.open = b.high = b.low = b.close = px;
  b.flags = flag::closed;
  return b;
}

}  // namespace

TEST_CASE("paths: everything of an instance lives in its own directory") {
  CHECK(paths::instance_dir("/dev/shm", "x") == "/dev/shm/mdshm.x");
  CHECK(paths::segment("/dev/shm", "x", "eth_1m") == "/dev/shm/mdshm.x/eth_1m");
  CHECK(paths::lock("/dev/shm", "x") == "/dev/shm/mdshm.x/@lock");
  CHECK(paths::consumers_dir("/dev/shm", "x") == "/dev/shm/mdshm.x/@consumers");
  CHECK_FALSE(paths::is_segment_name("@consumers"));
  CHECK(paths::is_segment_name("eth_1m"));
}

TEST_CASE("the daemon creates the instance directory private and corrects a loose mode") {
  TempShm t;
  {
    publish::PublisherOptions o;
    o.segments = t.options();
    publish::Publisher p(o, {spec()});
  }
  struct stat st {};
  const std::string d = paths::instance_dir(t.dir.string(), t.instance);
  REQUIRE(::lstat(d.c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0750);  // segments 0640: the group may read and search, not create
  REQUIRE(::stat(paths::lock(t.dir.string(), t.instance).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);   // nobody else can open the lock, so nobody can flock it

  ::chmod(d.c_str(), 0777);
  std::vector<std::string> logged;
  {
    publish::PublisherOptions o;
    o.segments = t.options();
    o.log = [&](publish::LogLevel, std::string_view m) { logged.emplace_back(m); };
    publish::Publisher p(o, {spec()});
  }
  REQUIRE(::lstat(d.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0750);
  CHECK(std::any_of(logged.begin(), logged.end(), [](const std::string& m) { return m.find("mode corrected") != std::string::npos; }));
}

TEST_CASE("a shm dir others could rename things in is refused") {
  TempShm t;
  ::chmod(t.dir.c_str(), 0777);  // world-writable, not sticky
  publish::PublisherOptions o;
  o.segments = t.options();
  CHECK_THROWS_WITH(publish::Publisher(o, {spec()}), Catch::Contains("not sticky"));
}

TEST_CASE("the writer replaces a segment file it does not own, naming the owner, and never maps it") {
  if (::geteuid() != 0) {
    WARN("not root: cannot give a file to another owner; skipped");
    return;
  }
  TempShm t;
  { auto w = publish::SegmentWriter::open(t.options(), spec()); w.publish(bar(60'000, 1)); }
  REQUIRE(::chown(t.segment("eth_1m").c_str(), kNobody, kNobody) == 0);
  publish::AttachInfo info;
  auto w = publish::SegmentWriter::open(t.options(), spec(), &info);
  CHECK(info.outcome == publish::AttachOutcome::replaced);
  CHECK_THAT(info.reason, Catch::Contains("owned by uid 65534"));
  CHECK(w.head() == 0);
  struct stat st {};
  REQUIRE(::stat(t.segment("eth_1m").c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
}

TEST_CASE("the writer replaces a symlink at a segment path instead of following it") {
  TempShm t;
  { auto w = publish::SegmentWriter::open(t.options(), spec()); }
  const std::string target = (t.dir / "elsewhere").string();
  std::ofstream(target) << "x";
  ::unlink(t.segment("eth_1m").c_str());
  REQUIRE(::symlink(target.c_str(), t.segment("eth_1m").c_str()) == 0);
  publish::AttachInfo info;
  auto w = publish::SegmentWriter::open(t.options(), spec(), &info);
  CHECK(info.outcome == publish::AttachOutcome::replaced);
  CHECK_THAT(info.reason, Catch::Contains("symbolic link"));
  struct stat st {};
  REQUIRE(::lstat(t.segment("eth_1m").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK(fs::file_size(target) == 1);  // the link's target was never written
}

TEST_CASE("readers refuse symlinks and segments of another owner with their own Errc") {
  TempShm t;
  { auto w = publish::SegmentWriter::open(t.options(), spec()); w.publish(bar(60'000, 1)); }
  REQUIRE(Series::open("eth_1m", t.open_options()).ok());

  // Expected writer configured: a segment by anyone else is refused, naming path and owner.
  OpenOptions strict = t.open_options();
  strict.expected_owner = ::geteuid() + 1;
  auto r = Series::open("eth_1m", strict);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::untrusted_owner);
  CHECK_THAT(r.error().message, Catch::Contains(t.segment("eth_1m")) && Catch::Contains("owned by uid"));

  // A symlink at the segment's path.
  const std::string real = (t.dir / "real").string();
  REQUIRE(::rename(t.segment("eth_1m").c_str(), real.c_str()) == 0);
  REQUIRE(::symlink(real.c_str(), t.segment("eth_1m").c_str()) == 0);
  r = Series::open("eth_1m", t.open_options());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::symlink_refused);

  // A symlinked instance directory.
  ::unlink(t.segment("eth_1m").c_str());
  REQUIRE(::rename(real.c_str(), t.segment("eth_1m").c_str()) == 0);
  const std::string dir = paths::instance_dir(t.dir.string(), t.instance);
  REQUIRE(::rename(dir.c_str(), (dir + ".moved").c_str()) == 0);
  REQUIRE(::symlink((dir + ".moved").c_str(), dir.c_str()) == 0);
  r = Series::open("eth_1m", t.open_options());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::symlink_refused);
  ::unlink(dir.c_str());
  REQUIRE(::rename((dir + ".moved").c_str(), dir.c_str()) == 0);

  // Group-writable: someone else could have written it.
  ::chmod(t.segment("eth_1m").c_str(), 0660);
  r = Series::open("eth_1m", t.open_options());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::untrusted_owner);
}

TEST_CASE("issue 8 defect 5: a segment filled from another source is replaced, not re-attached") {
  TempShm t;
  {
    auto w = publish::SegmentWriter::open(t.options(), spec("synthetic", "seed=1"));
    for (int i = 0; i < 5; ++i) w.publish(bar(60'000 * (i + 1), 100 + i));
    const auto& h = *w.header();
    CHECK(field_string(h.source_kind, kSourceKindLen) == "synthetic");
    CHECK(field_string(h.source_endpoint, kSourceEndpointLen) == "seed=1");
    CHECK(field_string(h.source_symbol, kSourceSymbolLen) == "ETHUSDT");
    CHECK(h.layout_major == kLayoutMajor);
  }
  publish::AttachInfo same;
  { auto w = publish::SegmentWriter::open(t.options(), spec("synthetic", "seed=1"), &same); CHECK(w.head() == 5); }
  CHECK(same.outcome == publish::AttachOutcome::reattached);

  publish::AttachInfo other;
  auto w = publish::SegmentWriter::open(t.options(), spec("binance", "wss://stream.binance.com:9443"), &other);
  CHECK(other.outcome == publish::AttachOutcome::replaced);
  CHECK_THAT(other.reason, Catch::Contains("source synthetic seed=1") && Catch::Contains("binance"));
  CHECK(w.head() == 0);  // no made-up bar survives
}
