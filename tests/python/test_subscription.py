"""mdshm.Subscription: poll(), the registry entry, and what SIGKILL leaves behind."""

import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import mdshm
from conftest import gil_was_free, spinner


def test_poll_returns_new_closed_bars_and_counts_lapping(start_writer):
    # 200k updates/s, a bar every 100: 2000 bars/s into 1024 slots. Unpaced, the writer rewrites
    # the bar in progress every ~100 ns, and read_since (which reads it from its slot, not from
    # the latch) reports contended: see the report on the core client.
    w = start_writer("--fast", "--rate", "200000", "--updates-per-bar", "100", series=("eth_ticks:ETHUSDT:1:1024",))
    with mdshm.Subscription("py-poller", "eth_ticks", instance=w.instance, shm_dir=w.shm_dir) as sub:
        mine = [c for c in mdshm.consumers(w.instance, w.shm_dir) if c["pid"] == os.getpid()]
        assert [(c["name"], c["series_id"], c["alive"]) for c in mine] == [("py-poller", "eth_ticks", True)]
        inspector = os.environ.get("MDSHM_INSPECTOR")
        if inspector:  # set by ctest when the inspector is built
            shown = subprocess.run([inspector, "--instance", w.instance, "--shm-dir", w.shm_dir, "show", "eth_ticks"],
                                   capture_output=True, text=True, timeout=30).stdout
            assert "py-poller" in shown and str(os.getpid()) in shown, shown
        last = None
        polled = 0
        for _ in range(50):
            bars, lapped = sub.poll()
            assert np.all(bars["flags"] & mdshm.flags["closed"])
            k = bars["first_trade_id"]
            assert np.all(np.diff(k) == 1)
            if len(k):
                # Nothing lost, nothing repeated between calls, unless the lapped count says so.
                if last is not None:
                    assert k[0] == last + 1 + lapped
                last = int(k[-1])
                polled += len(k)
            time.sleep(0.0005)
        assert polled > 0
        s = mdshm.Series("eth_ticks", instance=w.instance, shm_dir=w.shm_dir)
        head = s.head()
        while s.head() < head + 2048:
            time.sleep(0.05)
        bars, lapped = sub.poll()
        assert lapped > 0 and len(bars) > 0
        assert np.all(np.diff(bars["first_trade_id"]) == 1)
    assert not [c for c in mdshm.consumers(w.instance, w.shm_dir) if c["pid"] == os.getpid()]


def test_sigkill_of_100_python_readers_leaves_no_registry_slot(start_writer):
    w = start_writer("--history", "10")
    n = 100
    r, wr = os.pipe()
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:  # the child: register, say so, block in wait() until killed
            try:
                os.close(r)
                sub = mdshm.Subscription(f"py-victim-{i}", "eth_1m", instance=w.instance, shm_dir=w.shm_dir)
                os.write(wr, b"x")
                while True:
                    sub.wait(60.0)
            finally:
                os._exit(1)
        pids.append(pid)
    os.close(wr)
    got = b""
    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        got += os.read(r, n - len(got))
    os.close(r)
    assert len(got) == n, f"only {len(got)} of {n} readers registered"
    listed = [c for c in mdshm.consumers(w.instance, w.shm_dir) if c["name"].startswith("py-victim-")]
    assert len(listed) == n and all(c["alive"] for c in listed)
    time.sleep(0.2)  # let them reach wait()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    # The writer's publisher reclaims dead consumers every second.
    deadline = time.monotonic() + 15
    left = n
    while time.monotonic() < deadline:
        left = len([c for c in mdshm.consumers(w.instance, w.shm_dir) if c["name"].startswith("py-victim-")])
        if left == 0:
            break
        time.sleep(0.1)
    assert left == 0, f"{left} registry slots of killed readers still taken"
    # And the registry is usable again for a new reader.
    with mdshm.Subscription("py-after", "eth_1m", instance=w.instance, shm_dir=w.shm_dir) as sub:
        assert sub.wait(0.05) in ("timeout", "updated")


def test_a_wait_in_one_thread_blocks_no_other_python_thread(start_writer):
    w = start_writer("--history", "5")
    sub = mdshm.Subscription("py-threads", "eth_1m", instance=w.instance, shm_dir=w.shm_dir)
    sub.wait(0.0)  # the first wait returns at once (nothing seen yet); from here on the writer is idle
    result = []
    waiter = threading.Thread(target=lambda: result.append(sub.wait(1.0)))
    waiter.start()
    time.sleep(0.1)
    with spinner() as count:
        t0 = time.monotonic()
        cursor = sub.cursor  # waits for the subscription's lock with the GIL released
        blocked = time.monotonic() - t0
    waiter.join(10)
    assert result == ["timeout"] and cursor == sub.cursor
    assert blocked > 0.5, "cursor should have waited for the wait() in the other thread"
    free, why = gil_was_free(blocked, count[0])
    assert free, f"another thread barely ran while cursor waited: {why}"
    sub.close()
    with pytest.raises(mdshm.InvalidArgumentError, match="closed"):
        sub.poll()
    with pytest.raises(mdshm.InvalidArgumentError):
        mdshm.universal(window=0, instance=w.instance, shm_dir=w.shm_dir)


def test_sigkill_of_readers_blocked_in_series_wait_leaves_nothing_behind(start_writer):
    """On main, Series::wait() counted itself in the registry's shared waiter counts and a reader
    killed while blocked left its count behind for ever (the daemon then polled for nobody). Now
    no reader writes anything to wait: killing blocked readers leaves no record, and the readers
    that remain are still woken (the writer wakes one sleeper, which wakes the rest)."""
    w = start_writer("--fast", "--rate", "20000")  # bursts of 1024 updates, one every ~50 ms
    pids = []
    for _ in range(10):
        pid = os.fork()
        if pid == 0:
            try:
                s = mdshm.Series("eth_1m", instance=w.instance, shm_dir=w.shm_dir)
                while True:
                    s.wait(60.0)
            finally:
                os._exit(1)
        pids.append(pid)
    time.sleep(0.5)  # let them block
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    s = mdshm.Series("eth_1m", instance=w.instance, shm_dir=w.shm_dir)
    t0 = time.monotonic()
    assert s.wait(5.0) == "updated"
    assert time.monotonic() - t0 < 2.0
    d = os.path.join(w.shm_dir, f"mdshm.{w.instance}", "@consumers")
    left = [f for f in os.listdir(d) if f.startswith("c.")] if os.path.isdir(d) else []
    assert left == []
