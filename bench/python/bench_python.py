#!/usr/bin/python3
"""mdshm from Python: what a model pays per snapshot, and what the usual alternatives pay for the
same 5 x 300 snapshot, measured in the same run against the same writer.

    PYTHONPATH=build/python /usr/bin/python3 bench/python/bench_python.py \
        --writer build/tests/mdshm-synthetic-writer [--adapter-bench build/bin/bench_adapter]

Starts mdshm-synthetic-writer (five series, 400 bars of history, the bar in progress updated
every 50 ms) on a private instance, then times, call by call (perf_counter_ns), median and p99:
  Series.window(300), Series.view(300) + valid(), universal(300), tensors(300) (the CNN tensor);
  and for the same snapshot (5 arrays of 300 x 6 float64):
  an in-process queue.Queue hand-over of a copy (what a callback/queue design does per consumer),
  multiprocessing.Queue to another process (pickle + pipe, one way, measured end to end),
  Redis SET/GET of the serialised snapshot (when redis-server and python3-redis are installed).
"""

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

import mdshm

FIVE = ("eth_ticks:ETHUSDT:1:4096", "eth_1m:ETHUSDT:60:4096", "eth_1h:ETHUSDT:3600:4096",
        "eth_1d:ETHUSDT:86400:4096", "btc_ticks:BTCUSDT:1:4096")


def timed(fn, n):
    for _ in range(min(n // 10, 1000)):  # warm up
        fn()
    out = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out / 1000.0  # us


def row(name, us, target=None):
    p50, p99 = np.percentile(us, 50), np.percentile(us, 99)
    t = f"{target}" if target else ""
    print(f"| {name} | {p50:.1f} | {p99:.1f} | {t} |")
    return p50


def _mp_consumer(q, done):
    while True:
        item = q.get()
        if item is None:
            return
        done.put(time.perf_counter_ns() - item[0])


def bench_mp_queue(snapshot, n):
    ctx = mp.get_context("fork")
    q, done = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_mp_consumer, args=(q, done))
    p.start()
    out = np.empty(n)
    for i in range(n):
        q.put((time.perf_counter_ns(), snapshot))
        out[i] = done.get()
    q.put(None)
    p.join()
    return out / 1000.0


def bench_redis(snapshot, n, tmp):
    try:
        import redis
    except ImportError:
        return None, "python3-redis not installed"
    server = shutil.which("redis-server")
    if not server:
        return None, "redis-server not installed"
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen([server, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(unix_socket_path=sock)
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        blob = b"".join(a.tobytes() for a in snapshot)
        r.set("snap", blob)

        def get():
            b = r.get("snap")
            return [np.frombuffer(b, dtype=np.float64, count=1800, offset=k * 14400).reshape(300, 6) for k in range(5)]

        return timed(get, n), None
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writer", required=True, help="path of mdshm-synthetic-writer")
    ap.add_argument("--adapter-bench", help="path of bench_adapter (the C++ adapter alone)")
    ap.add_argument("-n", type=int, default=20000, help="calls per measurement")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mdshm-bench-py-", dir="/dev/shm")
    instance = "bench-py-" + uuid.uuid4().hex[:8]
    cmd = [args.writer, "--instance", instance, "--shm-dir", tmp, "--history", "400"]
    for s in FIVE:
        cmd += ["--series", s]
    writer = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().startswith("ready")
    try:
        n = args.n
        s = mdshm.Series("eth_1m", instance=instance, shm_dir=tmp)
        kw = dict(instance=instance, shm_dir=tmp)
        print(f"machine: {os.cpu_count()} CPUs, {os.uname().release}; Python {sys.version.split()[0]}, numpy {np.__version__}")
        print(f"{n} calls each, writer updating every 50 ms\n")
        print("| what (5 x 300 where a snapshot) | p50 us | p99 us | target |")
        print("|---|---|---|---|")
        row("Series.window(300)", timed(lambda: s.window(300), n), "<= 5")

        def view_and_check():
            v = s.view(300)
            v["close"].sum()
            return v.valid()

        row("Series.view(300) + close.sum() + valid()", timed(view_and_check, n))
        base = row("universal(300)", timed(lambda: mdshm.universal(300, **kw), n), "<= 40")
        row("tensors(300): CNN [5,5,300] float32, relative", timed(lambda: mdshm.tensors(300, price="relative", **kw), n),
            "<= 200")
        snap = mdshm.universal(300, **kw)
        arrays = [getattr(snap, f) for f in ("eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks")]
        q = queue.Queue()

        def in_process():
            q.put([a.copy() for a in arrays])
            return q.get()

        alt = [("in-process queue.Queue of a copy (the snapshot already made)", timed(in_process, n))]
        alt.append(("multiprocessing.Queue to another process, one way", bench_mp_queue(arrays, max(n // 10, 1000))))
        red, why = bench_redis(arrays, max(n // 4, 1000), tmp)
        if red is not None:
            alt.append(("Redis GET of the serialised snapshot (unix socket) + numpy", red))
        print()
        print("| the same snapshot another way | p50 us | p99 us | vs universal(300) p50 |")
        print("|---|---|---|---|")
        for name, us in alt:
            p50, p99 = np.percentile(us, 50), np.percentile(us, 99)
            print(f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / base:.1f}x |")
        if why:
            print(f"\nRedis not measured: {why}")
        if args.adapter_bench:
            print()
            print(subprocess.run([args.adapter_bench], capture_output=True, text=True, check=True).stdout.strip())
    finally:
        writer.terminate()
        writer.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
