"""mdshm.Series: reads, zero-copy views, waiting, errors."""

import gc
import time

import numpy as np
import pytest

import mdshm
from conftest import FAST_EPOCH_MS, gil_was_free, spinner


def open_series(w, sid="eth_1m"):
    return mdshm.Series(sid, instance=w.instance, shm_dir=w.shm_dir)


def until(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def test_dtype_mirrors_the_c_struct():
    names = ["open_time_ms", "open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume",
             "taker_buy_quote_volume", "trade_count", "first_trade_id", "last_trade_id", "update_wall_ns", "flags"]
    assert list(mdshm.dtype.names) == names
    assert mdshm.dtype.itemsize == 112  # sizeof(Bar)
    assert mdshm.dtype.fields["flags"][1] == 104
    assert mdshm.slot_dtype.itemsize == 128  # sizeof(BarSlot): seq, bar_index, then the bar
    for n in names:
        assert mdshm.slot_dtype.fields[n][1] == mdshm.dtype.fields[n][1] + 16
        assert mdshm.slot_dtype.fields[n][0] == mdshm.dtype.fields[n][0]


def test_errors_are_classes_per_kind_with_the_errc_name(shm_dir):
    assert len(mdshm.errors) == len(mdshm.errc_names) - 1
    for name, cls in mdshm.errors.items():
        assert issubclass(cls, mdshm.MdshmError) and cls.errc == name
        assert getattr(mdshm, cls.__name__) is cls and cls.__name__.endswith("Error") and "ErrorError" not in cls.__name__
    assert mdshm.IoError.errc == "io_error"
    with pytest.raises(mdshm.NotFoundError) as e:
        mdshm.Series("eth_1m", instance="pyt-absent", shm_dir=shm_dir)
    assert str(e.value).startswith("not_found: ") and "pyt-absent" in str(e.value)
    with pytest.raises(mdshm.InvalidArgumentError, match="^invalid_argument: "):
        mdshm.Series("ETH 1m", instance="pyt-absent", shm_dir=shm_dir)
    with pytest.raises(mdshm.NotFoundError):
        mdshm.Subscription("me", "eth_1m", instance="pyt-absent", shm_dir=shm_dir)
    with pytest.raises(mdshm.InvalidArgumentError):
        mdshm.adapt({"x": (0, np.zeros(0, mdshm.dtype))}, as_of=0)


def test_latest_window_and_identity(start_writer):
    w = start_writer("--history", "50")
    s = open_series(w)
    assert (s.series_id, s.symbol, s.interval, s.capacity) == ("eth_1m", "ETHUSDT", 60, 512)
    assert s.generation >= 1 and s.writer_state() == "alive" and s.is_fresh(5.0)
    latest = s.latest()
    assert latest["flags"] & mdshm.flags["in_progress"] and latest["first_trade_id"] == 50
    bars = s.window(10)
    assert bars.dtype == mdshm.dtype
    assert list(bars["first_trade_id"]) == list(range(40, 50))
    assert np.all(np.diff(bars["open_time_ms"]) == 60_000)
    assert np.all(bars["flags"] & mdshm.flags["closed"])
    with_live = s.window(10, closed_only=False)
    assert list(with_live["first_trade_id"]) == list(range(41, 51))
    assert len(s.window(1000)) == 50


def test_view_is_zero_copy_read_only_and_keeps_the_mapping(start_writer):
    w = start_writer("--history", "100")
    s = open_series(w)
    v = s.view(30)
    assert isinstance(v, mdshm.BarView) and v.zero_copy and len(v) == 30
    addr = v.__array_interface__["data"][0]
    assert v._guard.mapping_begin <= addr and addr + 30 * 128 <= v._guard.mapping_end
    assert np.shares_memory(v, s.view(5))          # the same ring slots
    assert not np.shares_memory(v, s.window(30))   # window() copies
    assert list(v["first_trade_id"]) == list(range(70, 100))
    assert np.array_equal(v["close"], s.window(30)["close"])
    with pytest.raises(ValueError):
        v["close"][0] = 1.0
    assert v.valid()
    del s
    gc.collect()
    assert v["close"].sum() == sum(1000 + k + 0.5 for k in range(70, 100))  # the mapping lives on
    assert v.valid()


def test_a_wrapped_window_comes_as_a_consistent_copy(start_writer):
    w = start_writer("--history", "100", series=("eth_1m:ETHUSDT:60:64",))
    s = open_series(w)
    v = s.view(40)  # bars 60..99 sit in slots 60..63 and 0..35
    assert not v.zero_copy and v.valid() and not v.flags.writeable
    assert list(v["first_trade_id"]) == list(range(60, 100))
    c = s.view(30)  # 70..99: slots 6..35, contiguous again
    assert c.zero_copy and list(c["first_trade_id"]) == list(range(70, 100))


def test_lapped_views_are_detected(start_writer):
    w = start_writer("--fast", "--updates-per-bar", "50", series=("eth_ticks:ETHUSDT:1:1024",))
    s = open_series(w, "eth_ticks")
    until(lambda: s.head() > 2048)
    checked = 0
    while checked < 20:
        v = s.view(100)
        if not v.zero_copy:  # wrapped around the ring's end: a copy, nothing to lap
            continue
        first = int(v._guard.first_index)
        until(lambda: s.head() > first + 1024 + 1)
        assert not v.valid(), "a view whose first slot was overwritten must be invalid"
        checked += 1


def test_amended_views_are_detected(start_writer):
    w = start_writer("--fast", "--updates-per-bar", "20000", "--amend-every", "3",
                     series=("eth_ticks:ETHUSDT:1:100000",))
    s = open_series(w, "eth_ticks")
    until(lambda: s.amends() > 2)
    for _ in range(20):
        v = s.view(10)
        a0 = s.amends()
        until(lambda: s.amends() > a0)
        assert not v.valid(), "an amendment after the view was taken must invalidate it"


def test_idle_writer_keeps_views_valid(start_writer):
    w = start_writer("--history", "20")
    s = open_series(w)
    v = s.view(10)
    time.sleep(0.2)
    assert v.valid()


def test_wait_releases_the_gil(start_writer):
    w = start_writer("--history", "5")
    s = open_series(w)
    with spinner() as count:
        t0 = time.monotonic()
        assert s.wait(1.0) == "timeout"
        elapsed = time.monotonic() - t0
    assert elapsed >= 0.9
    free, why = gil_was_free(elapsed, count[0])
    assert free, f"another thread barely ran during wait(): {why}"


def test_the_gil_check_fails_when_the_gil_is_held():
    """gil_was_free can fail: a C call through ctypes.PyDLL keeps the GIL for its whole second."""
    import ctypes
    with spinner() as count:
        t0 = time.monotonic()
        ctypes.PyDLL(None).usleep(1_000_000)
        elapsed = time.monotonic() - t0
    assert not gil_was_free(elapsed, count[0])[0]


def test_wait_sees_updates_and_dead_writers(start_writer):
    fast = start_writer("--fast", series=("eth_ticks:ETHUSDT:1:1024",))
    s = open_series(fast, "eth_ticks")
    assert s.wait(5.0) == "updated"
    dead = start_writer("--history", "5", "--exit-after-setup")
    dead.proc.wait(10)
    d = open_series(dead)
    assert d.wait(5.0) == "writer_dead"
    assert d.writer_state() == "dead" and not d.is_fresh(60.0)
    assert len(d.window(10)) == 5  # the bars stay readable


def test_view_stays_valid_for_bars_that_were_not_touched(start_writer):
    """Under a full-speed writer, a view that valid() accepts holds exactly the bars it claims."""
    w = start_writer("--fast", "--updates-per-bar", "300", series=("eth_ticks:ETHUSDT:1:4096",))
    s = open_series(w, "eth_ticks")
    until(lambda: s.head() > 10)
    accepted = 0
    for _ in range(300):
        v = s.view(200)
        c = np.array(v)
        if v.valid() and len(c):
            k = c["first_trade_id"]
            assert np.all(np.diff(k) == 1)
            assert np.all(c["open"] == 1000 + k)
            assert np.all(c["open_time_ms"] == FAST_EPOCH_MS + k * 1000)
            accepted += 1
    assert accepted > 0


def test_a_writer_restart_invalidates_views_and_is_seen(start_writer):
    w = start_writer("--history", "20")
    s = open_series(w)
    v = s.view(10)
    gen = s.generation
    w.stop()
    again = start_writer("--history", "20", instance=w.instance)  # re-attaches: same bars, new generation
    assert s.generation > gen and s.restarted()
    assert not v.valid(), "a view from before the writer re-attached must be invalid"
    assert list(v["first_trade_id"]) == list(range(10, 20))  # its mapping is still there to read
    fresh = s.view(10)
    assert fresh.valid() and s.writer_state() == "alive"
    assert again.proc.poll() is None


def test_a_replaced_segment_keeps_old_views_readable_and_new_ones_on_the_new_file(start_writer):
    w = start_writer("--history", "20")
    s = open_series(w)
    v = s.view(10)
    old_begin = v._guard.mapping_begin
    w.stop()
    start_writer("--history", "30", series=("eth_1m:ETHUSDT:60:1024",), instance=w.instance)  # new capacity: replaced
    assert not v.valid()
    assert list(v["first_trade_id"]) == list(range(10, 20))  # the old file's mapping lives with the view
    n = s.view(5)  # the series follows the new file, and so does a new view
    assert s.capacity == 1024 and n.valid() and n._guard.mapping_begin != old_begin
    assert list(n["first_trade_id"]) == list(range(25, 30))
    assert list(s.window(5)["first_trade_id"]) == list(range(25, 30))
