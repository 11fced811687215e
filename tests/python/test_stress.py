"""Torn-read stress: Python threads and processes read a full-speed writer's rings; every bar
must satisfy the equations py_writer.cpp ties its fields with (a torn bar mixes two versions and
breaks one), and every window must be consecutive bars. Two series: eth_ticks rewrites its
newest bar 400 times before closing it (seqlock contention on one slot), btc_ticks closes a bar
every second update into a 256-slot ring (lapping while views are read: valid() must catch it)."""

import multiprocessing as mp
import os
import threading
import time

import numpy as np

import mdshm
from conftest import FAST_EPOCH_MS

TOTAL_BAR_READS = int(float(os.environ.get("MDSHM_PY_STRESS_READS", "1e7")))
WORKERS = 4  # two threads here, two processes
WINDOW = 1000


def torn(bars, step_ms):
    """Indices of bars whose fields do not agree (each field is tied to (k, g))."""
    k = bars["first_trade_id"]
    g = bars["volume"]
    o = bars["open"]
    ok = ((o == 1000 + k) & (bars["low"] == o - 1) & (bars["close"] == o + 0.5) & (bars["high"] == o + g)
          & (bars["quote_volume"] == 2 * g) & (bars["taker_buy_volume"] == 3 * g)
          & (bars["taker_buy_quote_volume"] == 4 * g) & (bars["trade_count"] == g)
          & (bars["last_trade_id"] == g) & (bars["open_time_ms"] == FAST_EPOCH_MS + k * step_ms))
    return np.flatnonzero(~ok)


def read_loop(sources, shm_dir, target, out):
    """Reads windows (copies) and views (checked with valid()) until `target` bars were read."""
    series = [(mdshm.Series(sid, instance=instance, shm_dir=shm_dir), n) for instance, sid, n in sources]
    reads = torn_bars = broken_windows = contended = views_ok = views_invalid = 0
    while reads < target:
        for s, n in series:
            try:
                w = s.window(n, closed_only=False)
            except mdshm.ContendedError:  # the writer outran the retry bound: said, not torn
                contended += 1
                continue
            reads += len(w)
            torn_bars += len(torn(w, 1000))
            if len(w) > 1 and not np.all(np.diff(w["first_trade_id"]) == 1):
                broken_windows += 1
            try:
                v = s.view(n // 2)
            except mdshm.LappedError:  # lapped before the view was even set up
                views_invalid += 1
                continue
            except mdshm.ContendedError:  # a wrapped window is copied, and the copy can be contended
                contended += 1
                continue
            c = np.array(v)  # copy out, then ask whether the writer touched it meanwhile
            reads += len(c)
            if v.valid():
                views_ok += 1
                torn_bars += len(torn(c, 1000))
                if len(c) > 1 and not np.all(np.diff(c["first_trade_id"]) == 1):
                    broken_windows += 1
            else:
                views_invalid += 1
    out.update(reads=reads, torn=torn_bars, broken=broken_windows, contended=contended, views_ok=views_ok,
               views_invalid=views_invalid)


def guarded_loop(sources, shm_dir, target, out):
    try:
        read_loop(sources, shm_dir, target, out)
    except Exception as e:  # reported to the test instead of hanging it
        out["error"] = repr(e)


def _proc_main(sources, shm_dir, target, q):
    out = {}
    guarded_loop(sources, shm_dir, target, out)
    q.put(out)


def test_no_torn_reads_from_threads_and_processes(start_writer):
    w = start_writer("--fast", "--updates-per-bar", "400", series=("eth_ticks:ETHUSDT:1:8192",))
    lapping = start_writer("--fast", "--updates-per-bar", "2", series=("btc_ticks:BTCUSDT:1:256",))
    sources = [(w.instance, "eth_ticks", WINDOW), (lapping.instance, "btc_ticks", 200)]
    s = mdshm.Series("eth_ticks", instance=w.instance, shm_dir=w.shm_dir)
    while s.head() < WINDOW + 2:
        time.sleep(0.01)
    per_worker = TOTAL_BAR_READS // WORKERS + 1
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_proc_main, args=(sources, w.shm_dir, per_worker, q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [{} for _ in range(2)]
    threads = [threading.Thread(target=guarded_loop, args=(sources, w.shm_dir, per_worker, r)) for r in results]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results += [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    elapsed = time.monotonic() - t0
    updates = s.updates()
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors
    total = {k: sum(r[k] for r in results) for k in results[0]}
    print(f"\nstress: {total} in {elapsed:.1f} s, writer at {updates} updates")
    assert total["reads"] >= TOTAL_BAR_READS
    assert total["torn"] == 0, f"{total['torn']} torn bars"
    assert total["broken"] == 0, f"{total['broken']} windows with a hole or a repeat"
    assert total["views_ok"] > 0
    assert total["views_invalid"] > 0, "the lapping ring must have invalidated some views"
    assert total["contended"] < total["views_ok"], "contended reads must stay the exception"
    assert w.proc.poll() is None and lapping.proc.poll() is None, "the writers must run throughout"


def test_the_torn_check_catches_a_mixed_bar():
    """The check above can fail: a bar with fields from two versions (g = 7 and g = 9) is flagged."""
    a = np.zeros(2, mdshm.dtype)
    for i, g in enumerate((7.0, 9.0)):
        a[i]["first_trade_id"] = 3
        a[i]["open"] = 1003
        a[i]["low"], a[i]["close"], a[i]["high"] = 1002, 1003.5, 1003 + g
        a[i]["volume"], a[i]["quote_volume"], a[i]["taker_buy_volume"] = g, 2 * g, 3 * g
        a[i]["taker_buy_quote_volume"], a[i]["trade_count"], a[i]["last_trade_id"] = 4 * g, int(g), int(g)
        a[i]["open_time_ms"] = FAST_EPOCH_MS + 3000
    assert len(torn(a, 1000)) == 0
    mixed = a[:1].copy()
    mixed[0]["taker_buy_quote_volume"] = a[1]["taker_buy_quote_volume"]  # the tail of the newer write
    assert list(torn(mixed, 1000)) == [0]
