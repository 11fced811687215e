// ServiceNotifier against a notify socket played by the test: every message arrives with the
// exact assignments systemd expects, on path and abstract sockets, and nothing breaks without one.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "notify_listener.hpp"
#include "service/service_notifier.hpp"

using namespace mdshm;
using namespace mdshm::service;
using namespace std::chrono_literals;

namespace {

void exercise(test::NotifyListener& listener) {
  test::ScopedEnv env("NOTIFY_SOCKET", listener.address());
  ServiceNotifier n;
  CHECK(ServiceNotifier::enabled());

  REQUIRE(n.status("segments up; backfilling") == NotifyOutcome::sent);
  CHECK(listener.receive(2s) == std::optional<std::string>("STATUS=segments up; backfilling"));

  REQUIRE(n.ready("serving 5 series") == NotifyOutcome::sent);
  CHECK(listener.receive(2s) == std::optional<std::string>("READY=1\nSTATUS=serving 5 series"));

  REQUIRE(n.watchdog() == NotifyOutcome::sent);
  CHECK(listener.receive(2s) == std::optional<std::string>("WATCHDOG=1"));

  REQUIRE(n.reloading() == NotifyOutcome::sent);
  const auto reload = listener.receive(2s);
  REQUIRE(reload);
  CHECK(reload->rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(std::strtoull(reload->c_str() + std::strlen("RELOADING=1\nMONOTONIC_USEC="), nullptr, 10) > 0);

  REQUIRE(n.stopping() == NotifyOutcome::sent);
  CHECK(listener.receive(2s) == std::optional<std::string>("STOPPING=1"));
  CHECK(n.failures() == 0);
}

}  // namespace

TEST_CASE("notifications reach a socket named by a path") {
  test::NotifyListener listener(false, "path");
  exercise(listener);
}

TEST_CASE("notifications reach an abstract socket (@name)") {
  test::NotifyListener listener(true, "abstract");
  REQUIRE(listener.address().front() == '@');
  exercise(listener);
}

TEST_CASE("a newline in a status cannot inject another assignment") {
  test::NotifyListener listener(false, "inject");
  test::ScopedEnv env("NOTIFY_SOCKET", listener.address());
  ServiceNotifier n;
  REQUIRE(n.status("bad frame\nREADY=1") == NotifyOutcome::sent);
  CHECK(listener.receive(2s) == std::optional<std::string>("STATUS=bad frame READY=1"));
}

TEST_CASE("without NOTIFY_SOCKET every call is a no-op") {
  const char* saved = std::getenv("NOTIFY_SOCKET");
  const std::optional<std::string> keep = saved ? std::optional<std::string>(saved) : std::nullopt;
  ::unsetenv("NOTIFY_SOCKET");
  ServiceNotifier n;
  CHECK_FALSE(ServiceNotifier::enabled());
  CHECK(n.ready() == NotifyOutcome::disabled);
  CHECK(n.watchdog() == NotifyOutcome::disabled);
  CHECK(n.stopping() == NotifyOutcome::disabled);
  CHECK(n.failures() == 0);
  if (keep) ::setenv("NOTIFY_SOCKET", keep->c_str(), 1);
}

TEST_CASE("a socket that is gone is a failure value, not a crash") {
  test::ScopedEnv env("NOTIFY_SOCKET", "/nonexistent-mdshm-dir/notify.sock");
  ServiceNotifier n;
  CHECK(n.ready() == NotifyOutcome::failed);
  CHECK(n.failures() == 1);
  CHECK_FALSE(n.last_error().empty());
}

TEST_CASE("watchdog interval is half of WATCHDOG_USEC; the pacer pings at that rate") {
  test::NotifyListener listener(false, "wd");
  test::ScopedEnv sock("NOTIFY_SOCKET", listener.address());
  {
    ::unsetenv("WATCHDOG_USEC");
    CHECK_FALSE(ServiceNotifier::watchdog_ping_interval());
    ServiceNotifier n;
    WatchdogPacer off(n);
    CHECK_FALSE(off.active());
    CHECK_FALSE(off.tick(1'000'000'000));
  }
  test::ScopedEnv usec("WATCHDOG_USEC", "3000000");
  const auto every = ServiceNotifier::watchdog_ping_interval();
  REQUIRE(every);
  CHECK(*every == 1500ms);
  {
    // Meant for another process: systemd sets WATCHDOG_PID, and we must not claim it.
    test::ScopedEnv other("WATCHDOG_PID", std::to_string(::getpid() + 1));
    CHECK_FALSE(ServiceNotifier::watchdog_ping_interval());
  }

  ServiceNotifier n;
  WatchdogPacer pacer(n, *every);
  REQUIRE(pacer.active());
  const std::int64_t t0 = 10'000'000'000;
  CHECK(pacer.tick(t0));                     // first tick pings at once
  CHECK_FALSE(pacer.tick(t0 + 1'000'000'000));  // 1.0 s < 1.5 s
  CHECK(pacer.tick(t0 + 1'500'000'000));
  CHECK_FALSE(pacer.tick(t0 + 2'000'000'000));
  CHECK(pacer.tick(t0 + 3'100'000'000));
  int pings = 0;
  while (auto m = listener.receive(200ms)) {
    CHECK(*m == "WATCHDOG=1");
    ++pings;
  }
  CHECK(pings == 3);
}
