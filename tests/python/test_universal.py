"""mdshm.universal (the UniversalDataStream) and the adapter's layouts from Python."""

import dataclasses
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import mdshm

FIVE = ("eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks")
FIVE_SPECS = ("eth_ticks:ETHUSDT:1:4096", "eth_1m:ETHUSDT:60:4096", "eth_1h:ETHUSDT:3600:4096",
              "eth_1d:ETHUSDT:86400:4096", "btc_ticks:BTCUSDT:1:4096")
NORMS = ("none", "log_returns", "zscore", "minmax", "relative")
VOLUME_NORMS = ("none", "log1p", "zscore")


def test_the_stream_has_the_original_specifications_shape(start_writer):
    w = start_writer("--history", "400", series=FIVE_SPECS)
    u = mdshm.universal(window=300, instance=w.instance, shm_dir=w.shm_dir)
    assert [f.name for f in dataclasses.fields(u)][:7] == [*FIVE, "timestamp", "metadata"]
    for sid in FIVE:
        rows = getattr(u, sid)
        assert rows.dtype == np.float64 and rows.shape == (300, 6) and rows.flags.c_contiguous
        m = u.metadata[sid]
        for key in ("fresh", "writer_state", "update_age_s", "heartbeat_age_s", "generation", "bars", "missing",
                    "not_repaired", "complete", "source"):
            assert key in m, key
        assert m["complete"] and m["fresh"] and m["writer_state"] == "alive" and m["bars"] == 300
        step = m["interval_s"] * 1000
        assert np.all(np.diff(rows[:, 0]) == step)
        assert rows[-1, 0] + step <= u.metadata["snapshot"]["as_of_ms"]  # closed by as_of
        assert np.all(rows[:, 1] == 1000 + np.arange(100, 400))  # open = 1000 + k, the writer's bars 100..399
    assert u.timestamp.tzinfo is not None and u.timestamp.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - u.timestamp).total_seconds()) < 60


def test_the_series_set_is_configurable(start_writer):
    w = start_writer("--history", "20", series=("sol_1m:SOLUSDT:60:256", "eth_1m:ETHUSDT:60:256"))
    u = mdshm.universal(window=10, instance=w.instance, shm_dir=w.shm_dir, series=("sol_1m", "eth_1m"))
    assert u.series["sol_1m"].shape == (10, 6) and u.eth_1m.shape == (10, 6)
    assert u.eth_ticks.shape == (0, 6) and "eth_ticks" not in u.metadata


def test_as_of_cuts_at_the_interval_boundary(start_writer):
    w = start_writer("--history", "50", series=("eth_1h:ETHUSDT:3600:256",))
    now = mdshm.universal(window=5, instance=w.instance, shm_dir=w.shm_dir, series=("eth_1h",))
    newest_close = int(now.eth_1h[-1, 0]) + 3_600_000
    kw = dict(window=5, instance=w.instance, shm_dir=w.shm_dir, series=("eth_1h",))
    at = mdshm.universal(as_of=newest_close, **kw)
    before = mdshm.universal(as_of=newest_close - 1, **kw)
    assert at.eth_1h[-1, 0] + 3_600_000 == newest_close
    assert before.eth_1h[-1, 0] + 2 * 3_600_000 == newest_close
    past = mdshm.universal(as_of=datetime.fromtimestamp((newest_close - 10 * 3_600_000) / 1000, timezone.utc), **kw)
    assert past.eth_1h.shape == (5, 6) and past.eth_1h[-1, 0] + 11 * 3_600_000 == newest_close
    with pytest.raises(mdshm.InvalidArgumentError):
        mdshm.universal(as_of=datetime(2023, 1, 1), **kw)  # naive datetimes are ambiguous


def assert_clean(x):
    assert np.isfinite(x.cnn).all(), "NaN or Inf in the CNN tensor"
    assert (x.cnn[~np.broadcast_to(x.mask[:, None, :], x.cnn.shape)] == 0).all(), "padding must be zero"


@pytest.mark.parametrize("case", ["gaps", "dead_writer", "empty_series", "absent_series"])
def test_no_nan_or_inf_under_gaps_dead_writers_and_empty_series(start_writer, case):
    args = {
        "gaps": ["--history", "200", "--gap-every", "7", "--not-repaired-every", "11", "--empty-every", "5"],
        "dead_writer": ["--history", "50", "--exit-after-setup"],
        "empty_series": ["--history", "0", "--no-in-progress"],
        "absent_series": ["--history", "10"],
    }[case]
    w = start_writer(*args, series=FIVE_SPECS[:4] if case == "absent_series" else FIVE_SPECS)
    if case == "dead_writer":
        w.proc.wait(10)
        time.sleep(0.3)  # a heartbeat younger than 150 ms proves the writer alive without asking the kernel
    kw = dict(window=100, instance=w.instance, shm_dir=w.shm_dir)
    u = mdshm.universal(**kw)
    for sid in FIVE:
        rows = getattr(u, sid)
        assert rows.dtype == np.float64 and rows.shape[1] == 6 and np.isfinite(rows).all()
        assert not u.metadata[sid]["complete"] or case == "absent_series"
    for price in NORMS:
        for volume in VOLUME_NORMS:
            for live in (False, True):
                x = mdshm.tensors(price=price, volume=volume, in_progress=live, **kw)
                assert x.cnn.dtype == np.float32 and x.cnn.shape == (5, 6 if live else 5, 101 if live else 100)
                assert_clean(x)
    q = mdshm.tensors(**kw).quality
    if case == "gaps":
        assert q["eth_1m"]["gaps"] > 0 and q["eth_1m"]["not_repaired"] > 0 and q["eth_1m"]["empty_bars"] > 0
        assert not q["eth_1m"]["meets_completeness"]
    if case == "dead_writer":
        assert u.metadata["eth_1m"]["writer_state"] == "dead" and not u.metadata["eth_1m"]["fresh"]
    if case == "empty_series":
        assert all(q[s]["valid"] == 0 for s in FIVE)
    if case == "absent_series":
        assert u.metadata["btc_ticks"]["status"] == "not_found" and u.btc_ticks.shape == (0, 6)
        assert q["btc_ticks"]["valid"] == 0 and q["eth_1m"]["valid"] == 10


def synthetic(interval_s, start_ms, n, rng):
    """n bars of one series with random gaps, some not_repaired, some empty."""
    opens = start_ms + interval_s * 1000 * np.flatnonzero(rng.random(int(n * 1.1)) > 0.1)[:n]
    b = np.zeros(len(opens), mdshm.dtype)
    price = 1900 + np.cumsum(rng.normal(0, 1, len(opens)))
    b["open_time_ms"] = opens
    b["open"] = price
    b["close"] = price + rng.normal(0, 0.5, len(opens))
    b["high"] = np.maximum(b["open"], b["close"]) + rng.random(len(opens))
    b["low"] = np.minimum(b["open"], b["close"]) - rng.random(len(opens))
    b["volume"] = rng.random(len(opens)) * 10
    b["flags"] = mdshm.flags["closed"]
    b["flags"][rng.random(len(opens)) < 0.02] |= mdshm.flags["not_repaired"]
    empty = rng.random(len(opens)) < 0.05
    b["volume"][empty] = 0
    b["flags"][empty] |= mdshm.flags["empty"]
    return b


def test_prefix_invariance_over_10000_random_as_of():
    """The adapter's output at as_of is bit-identical whether the series extend a day past
    as_of or stop there."""
    rng = np.random.default_rng(11)
    t0 = 1_672_531_200_000  # 2023-01-01
    data = {"eth_1m": (60, synthetic(60, t0, 4 * 1440, rng)),
            "eth_1h": (3600, synthetic(3600, t0 - 300 * 3_600_000, 400, rng))}
    day = 86_400_000
    lo, hi = t0 + 100 * 60_000, t0 + 3 * day  # data runs to t0 + 4 days: always >= 1 day past as_of
    for i, as_of in enumerate(rng.integers(lo, hi, 10_000)):
        as_of = int(as_of)
        price, volume = NORMS[i % 5], VOLUME_NORMS[i % 3]
        cut = {}
        for sid, (iv, b) in data.items():
            cut[sid] = (iv, b[b["open_time_ms"] + iv * 1000 <= as_of])
        a = mdshm.adapt(data, as_of, window=60, price=price, volume=volume)
        c = mdshm.adapt(cut, as_of, window=60, price=price, volume=volume)
        assert a.cnn.tobytes() == c.cnn.tobytes(), f"as_of {as_of} ({price}, {volume})"
        assert np.array_equal(a.mask, c.mask) and a.params == c.params


def test_the_1h_boundary_from_python():
    h = 3_600_000
    t0 = 1_672_531_200_000
    b = np.zeros(20, mdshm.dtype)
    b["open_time_ms"] = t0 + h * np.arange(20)
    b["open"] = b["close"] = 100 + np.arange(20)
    b["high"], b["low"], b["volume"] = b["open"] + 1, b["open"] - 1, 1
    b["flags"] = mdshm.flags["closed"]
    fifteen = datetime(2023, 1, 1, 15, tzinfo=timezone.utc)
    before = mdshm.adapt({"eth_1h": (3600, b)}, fifteen - timedelta(milliseconds=1), window=3)
    at = mdshm.adapt({"eth_1h": (3600, b)}, fifteen, window=3)
    assert before.open_time_ms[0, -1] == t0 + 13 * h and before.cnn[0, 0, -1] == 113
    assert at.open_time_ms[0, -1] == t0 + 14 * h and at.cnn[0, 0, -1] == 114


def test_layouts_share_or_copy_as_documented(start_writer):
    w = start_writer("--history", "100", series=FIVE_SPECS)
    x = mdshm.tensors(window=50, instance=w.instance, shm_dir=w.shm_dir, price="relative", volume="log1p")
    S, F, T = x.cnn.shape
    assert (S, F, T) == (5, 5, 50) and x.cnn.flags.c_contiguous and x.features[:5] == ["open", "high", "low", "close", "volume"]
    batch = np.stack([x.cnn, x.cnn])
    assert batch.shape == (2, 5, 5, 50)
    seq, pad = x.transformer("eth_1h")
    assert seq.shape == (T, F) and seq.flags.c_contiguous and pad.shape == (T,) and not pad.any()
    assert np.array_equal(seq[:, 3], x.cnn[2, 3])
    tok, tpad = x.tokens()
    assert tok.shape == (S * T, F + 1) and set(np.unique(tok[:, F])) == set(range(S))
    state, index, mask = x.rl()
    assert np.shares_memory(state, x.cnn) and state.shape == (S * F * T,)
    assert np.array_equal(state[index["eth_1d.close"]], x.cnn[3, 3]) and mask.all()
    assert x.cnn[1, 3, -1] == 0.0  # relative to the last close: 0 there
    assert x.params[1]["price_offset"] == 1000 + 99 + 0.5  # bar 99's close
    assert x.quality["eth_1m"]["completeness"] == 1.0 and x.quality["eth_1m"]["meets_completeness"]


def test_torch_gets_the_tensors_without_a_copy(start_writer):
    torch = pytest.importorskip("torch", reason="python3-torch not installed (scripts/bootstrap.sh installs it)")
    w = start_writer("--history", "20", series=FIVE_SPECS)
    x = mdshm.tensors(window=10, instance=w.instance, shm_dir=w.shm_dir)
    t, m = x.torch()
    assert t.dtype == torch.float32 and tuple(t.shape) == x.cnn.shape
    assert t.data_ptr() == x.cnn.__array_interface__["data"][0]
    conv = torch.nn.Conv1d(x.cnn.shape[1], 4, 3)
    out = conv(t)
    assert torch.isfinite(out).all()


def test_cross_asset_correlation_has_no_look_ahead():
    rng = np.random.default_rng(5)
    t0 = 1_672_531_200_000
    eth = synthetic(1, t0, 3000, rng)
    btc = eth.copy()
    btc["open"] *= 12.5
    btc["close"] *= 12.5
    btc["high"] *= 12.5
    btc["low"] *= 12.5
    data = {"eth_ticks": (1, eth), "btc_ticks": (1, btc)}
    for as_of in rng.integers(t0 + 400_000, t0 + 2_000_000, 200):
        as_of = int(as_of)
        cut = {k: (iv, b[b["open_time_ms"] + 1000 <= as_of]) for k, (iv, b) in data.items()}
        full = mdshm.adapt(data, as_of, window=120).correlation(span=30)
        part = mdshm.adapt(cut, as_of, window=120).correlation(span=30)
        assert full[0].tobytes() == part[0].tobytes() and np.array_equal(full[1], part[1])
        corr, mask = full
        assert np.isfinite(corr).all() and mask.any()
        assert np.allclose(corr[mask], 1.0, atol=1e-4)  # scaled copies move together
        assert (corr[~mask] == 0).all()
    with pytest.raises(mdshm.InvalidArgumentError):
        mdshm.adapt({"eth_ticks": (1, eth), "eth_1m": (60, eth)}, t0 + 10**6, window=10).correlation("eth_ticks", "eth_1m")


def test_garbage_bars_never_crash_the_adapter_or_leak_nan():
    """Unsorted, duplicated, misaligned, non-finite, negative and flag-noise bars: the adapter
    masks what it cannot use and its output stays finite and zero-padded."""
    rng = np.random.default_rng(3)
    t0 = 1_672_531_200_000
    for trial in range(300):
        n = int(rng.integers(0, 400))
        b = np.zeros(n, mdshm.dtype)
        b["open_time_ms"] = t0 + rng.integers(-50, 400, n) * 60_000 + (rng.random(n) < 0.1) * rng.integers(1, 59_999, n)
        if trial % 2:
            b.sort(order="open_time_ms")
        for f in ("open", "high", "low", "close", "volume"):
            b[f] = rng.choice([1900.0, 1901.5, -1.0, 0.0, np.nan, np.inf, -np.inf, 1e308], n)
        b["flags"] = rng.integers(0, 256, n)
        as_of = t0 + int(rng.integers(-10, 500)) * 60_000 + int(rng.integers(0, 60_000))
        for price in NORMS:
            x = mdshm.adapt({"eth_1m": (60, b)}, as_of, window=64, in_progress=bool(trial % 3 == 0), price=price,
                            volume=VOLUME_NORMS[trial % 3])
            assert_clean(x)
            q = x.quality["eth_1m"]
            assert 0 <= q["valid"] <= q["slots"] and 0.0 <= q["completeness"] <= 1.0
