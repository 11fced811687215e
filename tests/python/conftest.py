"""Fixtures for the mdshm Python tests: a private shm directory and instance name per test (so
parallel runs never collide), and the test writer (tests/python/py_writer.cpp) as a process."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager

import pytest

WRITER = os.environ.get("MDSHM_PY_WRITER", "")
FAST_EPOCH_MS = 1_600_000_000_000  # py_writer.cpp's kFastEpochMs


class Writer:
    def __init__(self, proc, instance, shm_dir):
        self.proc, self.instance, self.shm_dir = proc, instance, shm_dir
        self.pid = proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def shm_dir():
    d = tempfile.mkdtemp(prefix="mdshm-py-", dir="/dev/shm")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start_writer(shm_dir):
    """start_writer("--fast", series=["eth_1m:ETHUSDT:60:512"], ...) -> Writer, running ("ready" seen).
    instance=w.instance restarts a writer on an earlier one's segments (re-attach)."""
    assert WRITER and os.access(WRITER, os.X_OK), "MDSHM_PY_WRITER must name the built mdshm-py-writer (ctest sets it)"
    started = []

    def start(*args, series=("eth_1m:ETHUSDT:60:512",), instance=None):
        instance = instance or "pyt-" + uuid.uuid4().hex[:12]
        cmd = [WRITER, "--instance", instance, "--shm-dir", shm_dir]
        for s in series:
            cmd += ["--series", s]
        cmd += list(args)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("ready"), f"writer did not start: {cmd} said {line!r}"
        w = Writer(proc, instance, shm_dir)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@contextmanager
def spinner():
    """A thread counting loop iterations while the block runs: yields a list whose one element
    is the count when the block ends. Near zero means the block held the GIL."""
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        yield count
    finally:
        stop.set()
        t.join()


def gil_was_free(block_seconds, count):
    """Whether a spinner() that counted `count` during a block of `block_seconds` ran freely:
    compared with its rate over 0.2 s of time.sleep (which frees the GIL), measured now, so a
    loaded machine lowers both. Holding the GIL, the spinner gets only its switch-interval
    slices (a few ms per second: ~3 % of the rate); free, ~100 %. The bar is 25 %."""
    with spinner() as base:
        time.sleep(0.2)
    rate = base[0] / 0.2
    return count >= 0.25 * rate * block_seconds, f"{count} iterations in {block_seconds:.2f} s at {rate:.0f}/s free"
