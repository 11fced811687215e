// The consumer record: layout contract, validation of every field, name escaping, reading
// entries that are not records, the liveness rule, and the Subscription's own file.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "mdshm/client.hpp"
#include "mdshm/paths.hpp"
#include "publish/publisher.hpp"
#include "../inspector/process.hpp"  // InstanceCleanup

using namespace mdshm;
using namespace std::chrono_literals;

namespace {

ConsumerRecord good_record() { return new_consumer_record(::getpid(), "inst", "eth_1m", "model"); }

publish::PublisherOptions pub_opts(const std::string& inst) {
  publish::PublisherOptions o;
  o.segments.instance = inst;
  return o;
}

void write_file(const std::string& path, const void* data, std::size_t n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, data, n) == static_cast<ssize_t>(n));
  ::close(fd);
}

}  // namespace

TEST_CASE("the record layout is what the docs say") {
  STATIC_REQUIRE(sizeof(ConsumerRecord) == 192);
  STATIC_REQUIRE(kConNameOffset + kConsumerNameLen == kConsumerRecordSize);
  STATIC_REQUIRE(alignof(ConsumerRecord) == kCacheLine);
  CHECK(kConsumerLayoutHash != 0);
  CHECK(kConsumerLayoutHash != kLayoutHash);
}

TEST_CASE("validation rejects every kind of damage") {
  const ConsumerRecord ok = good_record();
  CHECK(validate_consumer_record(ok, kConsumerRecordSize) == RecordProblem::none);
  CHECK(validate_consumer_record(ok, 0) == RecordProblem::wrong_size);
  CHECK(validate_consumer_record(ok, kConsumerRecordSize + 1) == RecordProblem::wrong_size);
  auto with = [&](auto change) {
    ConsumerRecord r = ok;
    change(r);
    return validate_consumer_record(r, kConsumerRecordSize);
  };
  CHECK(with([](ConsumerRecord& r) { r.magic = ~r.magic; }) == RecordProblem::bad_magic);
  CHECK(with([](ConsumerRecord& r) { r.major = 1; }) == RecordProblem::version_mismatch);
  CHECK(with([](ConsumerRecord& r) { r.layout_hash ^= 1; }) == RecordProblem::hash_mismatch);
  CHECK(with([](ConsumerRecord& r) { r.record_size = 0xFFFFFFFF; }) == RecordProblem::hash_mismatch);
  CHECK(with([](ConsumerRecord& r) { r.pid = 0; }) == RecordProblem::bad_identity);
  CHECK(with([](ConsumerRecord& r) { r.pid = 0xFFFFFFFF; }) == RecordProblem::bad_identity);
  CHECK(with([](ConsumerRecord& r) { r.start_ticks = 0; }) == RecordProblem::bad_identity);
  CHECK(with([](ConsumerRecord& r) { std::memset(r.name, 'A', sizeof r.name); }) == RecordProblem::bad_names);
  CHECK(with([](ConsumerRecord& r) { std::memset(r.series_id, 'a', sizeof r.series_id); }) == RecordProblem::bad_names);
  CHECK(with([](ConsumerRecord& r) { std::memset(r.instance, 'a', sizeof r.instance); }) == RecordProblem::bad_names);
  CHECK(with([](ConsumerRecord& r) { std::strcpy(r.series_id, "ETH/../x"); }) == RecordProblem::bad_names);
  CHECK(with([](ConsumerRecord& r) { r.name[0] = '\0'; }) == RecordProblem::bad_names);
  ConsumerRecord all_ff;
  std::memset(&all_ff, 0xFF, sizeof all_ff);
  CHECK(validate_consumer_record(all_ff, kConsumerRecordSize) != RecordProblem::none);
}

TEST_CASE("names reach a terminal escaped") {
  CHECK(printable_name("model_a 1") == "model_a 1");
  CHECK(printable_name("\x1b[31mX\x07") == "\\x1b[31mX\\x07");
  CHECK(printable_name("a\\b") == "a\\\\b");
  CHECK(printable_name("\xc3\xa9\x7f") == "\\xc3\\xa9\\x7f");
  CHECK(valid_consumer_name("model \"a\\b"));
  CHECK_FALSE(valid_consumer_name("bell\x07"));
  CHECK_FALSE(valid_consumer_name(""));
  CHECK_FALSE(valid_consumer_name(std::string(32, 'a')));
}

TEST_CASE("reading entries that are not records: no hang, no crash, never followed") {
  const std::string dir = "/dev/shm/mdshm-regunit-" + std::to_string(::getpid());
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  const int dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dirfd >= 0);
  const ConsumerRecord ok = good_record();
  write_file(dir + "/good", &ok, sizeof ok);
  write_file(dir + "/short", &ok, 100);
  std::string longer(sizeof ok + 4096, 'x');
  std::memcpy(longer.data(), &ok, sizeof ok);
  write_file(dir + "/long", longer.data(), longer.size());
  REQUIRE(::mkfifo((dir + "/fifo").c_str(), 0644) == 0);  // open() without O_NONBLOCK would hang
  REQUIRE(::symlink((dir + "/good").c_str(), (dir + "/link").c_str()) == 0);
  REQUIRE(::mkdir((dir + "/sub").c_str(), 0700) == 0);

  CHECK(detail::read_record(dirfd, "good").problem == RecordProblem::none);
  CHECK(detail::read_record(dirfd, "good").regular);
  CHECK(detail::read_record(dirfd, "short").problem == RecordProblem::wrong_size);
  CHECK(detail::read_record(dirfd, "long").problem == RecordProblem::wrong_size);
  CHECK_FALSE(detail::read_record(dirfd, "fifo").regular);
  CHECK_FALSE(detail::read_record(dirfd, "link").regular);
  CHECK_FALSE(detail::read_record(dirfd, "sub").regular);
  CHECK_FALSE(detail::read_record(dirfd, "missing").regular);
  std::size_t visited = 0;
  CHECK(detail::for_each_record(dirfd, [&](const RecordEntry&) { ++visited; }));
  CHECK(visited == 6);
  ::close(dirfd);
  std::filesystem::remove_all(dir);
}

TEST_CASE("liveness: pid, start time, boot id and the file's owner") {
  const auto boot = detail::boot_id();
  ConsumerRecord r = good_record();
  CHECK(judge_record(r, ::getuid(), boot) == Liveness::alive);
  CHECK(judge_record(r, ::getuid() + 4242, boot) == Liveness::forged);  // not our user's file
  auto other_boot = boot;
  other_boot[0] ^= 0xFF;
  CHECK(judge_record(r, ::getuid(), other_boot) == Liveness::dead);
  r.start_ticks += 1;  // a reused pid
  CHECK(judge_record(r, ::getuid(), boot) == Liveness::dead);
  // pid 1 lives, but as root: a file of anyone else that claims it is forged.
  ConsumerRecord one = good_record();
  one.pid = 1;
  one.start_ticks = detail::process_start_ticks(1);
  if (one.start_ticks != 0) CHECK(judge_record(one, 4242, boot) == Liveness::forged);
  // A process that exited.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  ConsumerRecord gone = good_record();
  gone.pid = static_cast<std::uint32_t>(child);
  CHECK(judge_record(gone, ::getuid(), boot) == Liveness::dead);
}

TEST_CASE("the writer makes the consumers directory; a subscription owns one file in it") {
  const auto inst = mdshm::test::unique_instance("regdir");
  mdshm::test::InstanceCleanup clean{inst};
  // A shared table left by an older version is removed.
  const std::string legacy = paths::legacy_registry("/dev/shm", inst);
  write_file(legacy, "old", 3);
  publish::Publisher pub(pub_opts(inst), {publish::SeriesSpec{"eth_1m", "ETHUSDT", 60, 64}});
  CHECK(::access(legacy.c_str(), F_OK) != 0);
  const std::string dir = paths::consumers_dir("/dev/shm", inst);
  CHECK(pub.consumers_dir() == dir);
  struct stat st {};
  REQUIRE(::lstat(dir.c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 07777) == 03770);  // segments 0640: sticky, setgid, group may create
  CHECK(st.st_uid == ::geteuid());

  const OpenOptions oo{inst, "/dev/shm"};
  CHECK(Subscription::open("bell\x07", "eth_1m", oo).error().code == Errc::invalid_argument);
  {
    auto a = Subscription::open("model_a", "eth_1m", oo);
    auto b = Subscription::open("model_a", "eth_1m", oo);  // same name twice: two records
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->record_file() != b->record_file());
    CHECK(a->record_file().rfind("c." + std::to_string(::getpid()) + ".", 0) == 0);
    struct stat fs {};
    REQUIRE(::lstat((dir + "/" + a->record_file()).c_str(), &fs) == 0);
    CHECK((fs.st_mode & 07777) == 0644);
    CHECK(fs.st_size == static_cast<off_t>(kConsumerRecordSize));
    std::vector<ConsumerInfo> cs;
    REQUIRE(list_consumers(oo, cs) == Errc::ok);
    CHECK(cs.size() == 2);
    for (const auto& c : cs) CHECK(c.liveness == Liveness::alive);
    CHECK(pub.reclaim_dead_consumers() == 0);  // live ones stay
  }
  std::vector<ConsumerInfo> cs;
  REQUIRE(list_consumers(oo, cs) == Errc::ok);
  CHECK(cs.empty());  // closed subscriptions removed their files
  // The series manifest: the daemon's, read by `mdshm check`.
  std::string manifest(64, '\0');
  const int fd = ::open((dir + "/.series").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  manifest.resize(static_cast<std::size_t>(std::max<ssize_t>(0, ::read(fd, manifest.data(), manifest.size()))));
  ::close(fd);
  CHECK(manifest == "eth_1m\n");
}

TEST_CASE("reclaim: dead at once, garbage after the grace period, never the live") {
  const auto inst = mdshm::test::unique_instance("regrecl");
  mdshm::test::InstanceCleanup clean{inst};
  publish::Publisher pub(pub_opts(inst), {publish::SeriesSpec{"eth_1m", "ETHUSDT", 60, 64}});
  const std::string dir = paths::consumers_dir("/dev/shm", inst);
  const OpenOptions oo{inst, "/dev/shm"};
  auto live = Subscription::open("live", "eth_1m", oo);
  REQUIRE(live.ok());
  const pid_t child = ::fork();
  if (child == 0) {
    auto sub = Subscription::open("doomed", "eth_1m", oo);
    ::_exit(sub.ok() ? 0 : 1);  // no destructor: the record stays
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WEXITSTATUS(status) == 0);
  write_file(dir + "/c.garbage", "\xff\xff\xff", 3);
  REQUIRE(::mkfifo((dir + "/c.fifo").c_str(), 0644) == 0);
  // (The heartbeat thread reclaims too, every second: check what is left, not who removed it.)
  auto exists = [&](const std::string& f) { return ::access((dir + "/" + f).c_str(), F_OK) == 0; };
  std::vector<ConsumerInfo> cs;
  (void)pub.reclaim_dead_consumers();
  REQUIRE(list_consumers(oo, cs) == Errc::ok);
  CHECK(cs.size() == 1);           // the dead one went at once
  CHECK_FALSE(exists("c.fifo"));   // so did the fifo
  CHECK(exists("c.garbage"));      // the garbage may be a record being written: it gets its grace
  std::this_thread::sleep_for(std::chrono::seconds(kInvalidRecordGraceSec) + 1100ms);
  (void)pub.reclaim_dead_consumers();
  CHECK_FALSE(exists("c.garbage"));
  REQUIRE(list_consumers(oo, cs) == Errc::ok);
  REQUIRE(cs.size() == 1);
  CHECK(cs[0].name == "live");
  CHECK(::access((dir + "/" + live->record_file()).c_str(), F_OK) == 0);
}
