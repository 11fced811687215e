// mdshm — the operator's view of an mdshm instance: list | show | tail | watch | check.
// Read-only: it maps segments PROT_READ and the consumer registry read-only, so it works for any
// user in the segments' group and never needs root. docs/OPERATIONS.md documents the output.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <exception>

#include "commands.hpp"
#include "inspect.hpp"
#include "json_writer.hpp"
#include "mdshm/build_info.hpp"

int main(int argc, char** argv) {
  using namespace mdshm::inspect;
  CLI::App app{"mdshm: inspect the shared-memory segments of an mdshmd instance"};
  app.require_subcommand(1);
  app.set_version_flag("--version", mdshm::build::version_line("mdshm"));
  Options o;
  app.add_option("--instance", o.open.instance, "instance name")->capture_default_str();
  app.add_option("--shm-dir", o.open.shm_dir, "directory of the segments")->capture_default_str();
  app.add_flag("--json", o.json, "machine-readable output (see docs/OPERATIONS.md)");

  auto* list = app.add_subcommand("list", "every segment of the instance");
  std::string series;
  auto* show = app.add_subcommand("show", "header, statistics and consumers of one series");
  show->add_option("series", series, "series id")->required();
  auto* tail = app.add_subcommand("tail", "the newest bars of one series");
  std::size_t n = 20;
  tail->add_option("series", series, "series id")->required();
  tail->add_option("-n,--bars", n, "how many bars")->capture_default_str()->check(CLI::Range(1, 1 << 24));
  auto* watch = app.add_subcommand("watch", "live view (q or Ctrl-C quits)");
  unsigned count = 0;
  watch->add_option("--count", count, "stop after this many refreshes (0: never)")->capture_default_str();
  auto* check = app.add_subcommand("check", "health for monitoring: exit 0 ok, 1 stale, 2 dead/missing/incompatible");
  double max_age = 5.0;
  std::vector<std::string> wanted;
  check->add_option("--max-age", max_age, "seconds without news before a series is stale")
      ->capture_default_str()
      ->check(CLI::Validator([](std::string& v) {
        double d = 0;
        try {
          std::size_t used = 0;
          d = std::stod(v, &used);
          if (used != v.size()) return std::string("not a number of seconds: '" + v + "'");
        } catch (const std::exception&) {
          return std::string("not a number of seconds: '" + v + "'");
        }
        return age_problem(d);
      }, "SECONDS"));
  check->add_option("series", wanted, "series to check (default: all of the instance)");
  // The global options are accepted after the subcommand too: `mdshm list --json`.
  for (auto* sub : {list, show, tail, watch, check}) sub->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 64;  // EX_USAGE: not to be mistaken for check's 1 or 2
  }
  if (!mdshm::valid_instance(o.open.instance)) {
    fmt::print(stderr, "mdshm: invalid instance name '{}' (1-31 of [A-Za-z0-9_-])\n", o.open.instance);
    return 64;
  }
  // Nothing to look at: the same exit code as a segment that cannot be opened (check: failed).
  if (const auto problem = access_problem(o.open)) {
    if (o.json) fmt::print("{}\n", JsonWriter().begin_object().field("error", *problem).end_object().str());
    fmt::print(stderr, "mdshm: {}\n", *problem);
    return 2;
  }
  try {
    if (*list) return run_list(o);
    if (*show) return run_show(o, series);
    if (*tail) return run_tail(o, series, n);
    if (*watch) return run_watch(o, count);
    if (*check) return run_check(o, max_age, wanted);
  } catch (const std::exception& e) {
    fmt::print(stderr, "mdshm: {}\n", e.what());
    return 70;
  }
  return 64;
}
