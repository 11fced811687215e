// Every program answers --version with the project version, the git revision the build was
// configured from and the layout version, exits 0 and needs no other option (mdshmd: no --config,
// mdshm: no subcommand). The revision comes from cmake/git_revision.cmake, "unknown" outside git.
#include <stdlib.h>

#include <catch2/catch.hpp>

#include <filesystem>

#include "../inspector/process.hpp"
#include "mdshm/layout.hpp"

namespace fs = std::filesystem;
using namespace mdshm::test;

namespace {

std::string expected_line(const std::string& program) {
  return program + " " + MDSHM_VERSION + " (git " + MDSHM_GIT_REVISION + ", layout " +
         std::to_string(mdshm::kLayoutMajor) + "." + std::to_string(mdshm::kLayoutMinor) + ")\n";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

TEST_CASE("--version of every program names version, git revision and layout", "[version]") {
  for (const std::string program : {"mdshmd", "mdshm", "mdshm-sim"}) {
    const std::string exe = std::string(MDSHM_BIN_DIR) + "/" + program;
    INFO(exe);
    REQUIRE(fs::exists(exe));
    const auto r = run(quote(exe) + " --version", true);
    CHECK(r.exit_code == 0);
    CHECK(r.out == expected_line(program));
  }
  CHECK(std::string(MDSHM_GIT_REVISION) != "");
}

TEST_CASE("the git revision is 'unknown' outside a checkout and described inside one", "[version]") {
  std::string t = (fs::temp_directory_path() / "mdshm-version-XXXXXX").string();
  REQUIRE(::mkdtemp(t.data()) != nullptr);
  const std::string script = std::string(MDSHM_SOURCE_DIR) + "/cmake/git_revision.cmake";
  const auto outside = run("cmake -DDIR=" + quote(t) + " -P " + quote(script), true);
  fs::remove_all(t);
  CHECK(outside.exit_code == 0);
  CHECK(trimmed(outside.out) == "unknown");

  if (fs::exists(std::string(MDSHM_SOURCE_DIR) + "/.git") && run("git --version").exit_code == 0) {
    const auto inside = run("cmake -DDIR=" + quote(MDSHM_SOURCE_DIR) + " -P " + quote(script), true);
    INFO(inside.out);
    CHECK(inside.exit_code == 0);
    CHECK(trimmed(inside.out) != "unknown");
    CHECK(!trimmed(inside.out).empty());
  }
}
