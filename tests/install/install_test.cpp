// cmake --install into a DESTDIR, then two consumer projects built outside the source tree
// against it (find_package and pkg-config) read a synthetic writer's series. Also verifies the
// systemd unit where systemd-analyze exists.
#include <stdlib.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "../inspector/process.hpp"

namespace fs = std::filesystem;
using namespace mdshm::test;

namespace {

const std::string kBuildDir = MDSHM_BUILD_DIR;
const std::string kSourceDir = MDSHM_SOURCE_DIR;
const std::string kWriter = MDSHM_SYNTHETIC_WRITER_EXE;
const std::string kPrefix = "/opt/mdshm";

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "mdshm-install-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("install into a DESTDIR and build consumers against it", "[install]") {
  TempDir tmp;
  const fs::path destdir = tmp.path / "root";
  const fs::path root = destdir.string() + kPrefix;
  const auto inst = run("DESTDIR=" + quote(destdir) + " cmake --install " + quote(kBuildDir) + " --prefix " + kPrefix, true);
  INFO(inst.out);
  REQUIRE(inst.exit_code == 0);
  INFO("no headers installed: is include(cmake/install.cmake) in the top-level CMakeLists.txt?");
  REQUIRE(fs::exists(root / "include/mdshm/client.hpp"));
  for (auto p : {"include/mdshm/layout.hpp", "include/mdshm/detail/proc.hpp", "bin/mdshm",
                 "share/cmake/mdshm/mdshmConfig.cmake", "share/cmake/mdshm/mdshmConfigVersion.cmake",
                 "share/cmake/mdshm/mdshmTargets.cmake", "share/pkgconfig/mdshm.pc",
                 "lib/systemd/system/mdshmd.service", "lib/sysusers.d/mdshm.conf", "etc/mdshm/mdshm.toml"})
    CHECK(fs::exists(root / p));
  const auto unit = run("cat " + quote(root / "lib/systemd/system/mdshmd.service")).out;
  CHECK(contains(unit, "ExecStart=" + kPrefix + "/bin/mdshmd --config " + kPrefix + "/etc/mdshm/mdshm.toml"));

  const std::string instance = unique_instance("inst");
  InstanceCleanup cleanup{instance};
  WriterProcess writer(kWriter, {"--instance", instance, "--history", "10"});

  // Both consumers are built from a copy outside the source tree: only the installed headers exist.
  const fs::path src = tmp.path / "consumer";
  fs::copy(fs::path(kSourceDir) / "tests/install/consumer", src);

  SECTION("find_package(mdshm) -> mdshm::client") {
    const fs::path bin = tmp.path / "build-cmake";
    const auto cfg = run("cmake -S " + quote(src) + " -B " + quote(bin) + " -G Ninja -DCMAKE_PREFIX_PATH=" + quote(root), true);
    INFO(cfg.out);
    REQUIRE(cfg.exit_code == 0);
    const auto build = run("cmake --build " + quote(bin), true);
    INFO(build.out);
    REQUIRE(build.exit_code == 0);
    const auto out = run(quote(bin / "mdshm-consumer") + " " + instance + " eth_1m", true);
    INFO(out.out);
    CHECK(out.exit_code == 0);
    CHECK(contains(out.out, "eth_1m ETHUSDT close="));
    // 10 closed bars of history + the one in progress; one more if a minute boundary passed
    // while the consumer was being configured and built.
    std::smatch m;
    REQUIRE(std::regex_search(out.out, m, std::regex("bars=([0-9]+)")));
    CHECK(std::stoi(m[1]) >= 11);
    CHECK(std::stoi(m[1]) <= 12);
  }
  SECTION("pkg-config mdshm") {
    const std::string pc = "PKG_CONFIG_PATH=" + quote(root / "share/pkgconfig") + " pkg-config ";
    const auto flags = run(pc + "--cflags --libs mdshm", true);
    INFO(flags.out);
    REQUIRE(flags.exit_code == 0);
    CHECK(contains(flags.out, "-I" + destdir.string()));  // relocated via ${pcfiledir}
    const fs::path exe = tmp.path / "pc-consumer";
    const auto build = run("c++ " + quote(src / "main.cpp") + " -o " + quote(exe) + " $(" + pc + "--cflags --libs mdshm)", true);
    INFO(build.out);
    REQUIRE(build.exit_code == 0);
    const auto out = run(quote(exe) + " " + instance + " btc_ticks", true);
    INFO(out.out);
    CHECK(out.exit_code == 0);
    CHECK(contains(out.out, "btc_ticks BTCUSDT close="));
  }
}

TEST_CASE("the systemd unit verifies and its exposure stays low", "[install][systemd]") {
  if (run("command -v systemd-analyze").exit_code != 0) {
    WARN("systemd-analyze not installed: unit not verified");
    return;
  }
  TempDir tmp;
  // verify insists that ExecStart's binary exists: point it at one that does.
  const fs::path unit = tmp.path / "mdshmd.service";
  const auto sed = run("sed 's#/usr/bin/mdshmd#" + std::string(MDSHM_BIN_DIR) + "/mdshm#' " +
                       quote(fs::path(kSourceDir) / "systemd/mdshmd.service") + " > " + quote(unit));
  REQUIRE(sed.exit_code == 0);
  const auto verify = run("cd " + quote(tmp.path) + " && systemd-analyze verify " + quote(unit), true);
  INFO(verify.out);
  CHECK(verify.exit_code == 0);
  CHECK(verify.out.empty());  // verify warns (unknown keys, bad values) but still exits 0
  const auto sec = run("systemd-analyze security --offline=yes " + quote(unit), true);
  std::smatch m;
  const std::regex level("Overall exposure level for mdshmd.service: ([0-9.]+)");
  if (!std::regex_search(sec.out, m, level)) {
    WARN("systemd-analyze security --offline unavailable: " << sec.out.substr(0, 200));
    return;
  }
  INFO(sec.out);
  CHECK(std::stod(m[1].str()) <= 2.0);  // 1.7 when written (docs/OPERATIONS.md)
}

// A bad configuration (exit 2) or an instance another mdshmd holds (exit 3, daemon/app/daemon.hpp)
// does not heal by itself: restarting every RestartSec= for ever only floods the journal.
TEST_CASE("the systemd unit does not restart a daemon that cannot start", "[install][systemd]") {
  const auto unit = run("cat " + quote(fs::path(kSourceDir) / "systemd/mdshmd.service")).out;
  std::smatch m;
  REQUIRE(std::regex_search(unit, m, std::regex("\\nRestartPreventExitStatus=([^\\n]*)")));
  std::set<int> prevented;
  std::istringstream words(m[1].str());
  for (std::string w; words >> w;) prevented.insert(std::stoi(w));
  CHECK(prevented == std::set<int>{2, 3});

  // The code the daemon really exits with on a configuration it refuses.
  TempDir tmp;
  const fs::path bad = tmp.path / "bad.toml";
  REQUIRE(run("printf '[daemon]\\nno_such_key = 1\\n' > " + quote(bad)).exit_code == 0);
  const auto r = run(quote(std::string(MDSHM_BIN_DIR) + "/mdshmd") + " --config " + quote(bad), true);
  INFO(r.out);
  CHECK(prevented.count(r.exit_code) == 1);
}
