"""The universal data stream (the original specification's UniversalDataStream) and the Universal
Data Adapter's model-ready layouts. The cutting, masking and normalising is C++
(client/include/mdshm/adapter.hpp); this file only arranges numpy arrays around it."""

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _mdshm

DEFAULT_SERIES = ("eth_ticks", "eth_1m", "eth_1h", "eth_1d", "btc_ticks")
ROW_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


@dataclass
class UniversalDataStream:
    """Five series as float64 arrays of shape (n, 6): [timestamp, open, high, low, close, volume],
    oldest first, timestamp = the bar's open time in ms since the epoch (UTC). Only bars closed
    by ``timestamp`` (the as_of), at most ``window`` per series; n < window when history is
    missing (``metadata[id]["missing"]`` says how many intervals). ``series`` holds every
    requested series by id, the five fields the default ones (empty (0, 6) if not requested)."""

    eth_ticks: np.ndarray  # [timestamp, open, high, low, close, volume]
    eth_1m: np.ndarray
    eth_1h: np.ndarray
    eth_1d: np.ndarray
    btc_ticks: np.ndarray
    timestamp: datetime    # the as_of, UTC
    metadata: Dict[str, Any]
    series: Dict[str, np.ndarray] = field(default_factory=dict)


def _empty_rows():
    return np.zeros((0, 6), dtype=np.float64)


# One Reader per (instance, shm_dir, series set): segments stay mapped between snapshots.
_readers: Dict[Tuple[str, str, Tuple[str, ...]], Any] = {}


def _reader(instance, shm_dir, series):
    key = (instance, shm_dir, tuple(series))
    r = _readers.get(key)
    if r is None:
        r = _readers[key] = _mdshm.Reader(list(series), instance, shm_dir)
    return r


def _as_of_ms(reader, as_of):
    if as_of is None:
        return reader.now_ms()
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise _mdshm.InvalidArgumentError("invalid_argument: as_of must be timezone-aware (UTC)")
        return int(round(as_of.timestamp() * 1000))
    return int(as_of)  # ms since the epoch


def _utc(ms):
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


def universal(window=300, as_of=None, instance=_mdshm.default_instance, series=DEFAULT_SERIES,
              shm_dir=_mdshm.default_shm_dir, max_age=5.0):
    """A UniversalDataStream of the ``window`` newest intervals closed by ``as_of`` (a UTC
    datetime or ms since the epoch, exchange time; default: now on the exchange's clock).
    A series that is not there (daemon not started) comes back empty with its status in the
    metadata; nothing here raises for missing data."""
    reader = _reader(instance, shm_dir, series)
    as_of_ms = _as_of_ms(reader, as_of)
    parts = reader.read(window, as_of_ms, False, max_age)
    rows = {}
    meta: Dict[str, Any] = {}
    for sid, (_, r, m) in zip(series, parts):
        rows[sid] = r
        meta[sid] = m
    meta["snapshot"] = {
        "as_of_ms": as_of_ms, "window": window, "instance": instance, "series": list(series),
        "all_fresh": all(meta[s]["fresh"] for s in series),
        "all_complete": all(meta[s]["complete"] for s in series),
    }
    five = {s: rows.get(s, _empty_rows()) for s in DEFAULT_SERIES}
    return UniversalDataStream(timestamp=_utc(as_of_ms), metadata=meta, series=rows, **five)


@dataclass
class ModelInput:
    """The adapter's output for S series, F features, T time slots (oldest first).

    cnn           float32 [S, F, T], C-contiguous (stack several for [B, S, F, T])
    mask          bool [S, T]: True where a real bar is; padded slots are 0 in every feature
    open_time_ms  int64 [S, T]: each slot's bar open time (padded slots too)
    params        per series: price_offset/scale, volume_offset/scale (x = out * scale + offset)
    quality       per series: the data quality report (completeness, gaps, not_repaired, ...)
    """

    series: List[str]
    features: List[str]
    as_of: datetime
    as_of_ms: int
    cnn: np.ndarray
    mask: np.ndarray
    open_time_ms: np.ndarray
    params: List[Dict[str, float]]
    quality: Dict[str, Dict[str, Any]]
    rl_slices: Dict[str, slice]
    close: np.ndarray = None      # float64 [S, T]: raw closes of the valid slots, 0 elsewhere
    intervals: List[int] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)

    def correlation(self, a="eth_ticks", b="btc_ticks", span=60):
        """Cross-asset context: the rolling correlation of a's and b's log returns over the last
        ``span`` slots, per slot ([T] float32, no look-ahead), and its mask ([T] bool)."""
        i, j = self.series.index(a), self.series.index(b)
        if self.intervals[i] != self.intervals[j]:
            raise _mdshm.InvalidArgumentError(f"invalid_argument: {a} and {b} have different intervals")
        m = self.mask.view(np.uint8)
        corr, mask = _mdshm.rolling_correlation(self.close[i], m[i], self.close[j], m[j], span)
        return corr, mask.view(np.bool_)

    def transformer(self, s):
        """Series ``s`` (index or id) as [T, F] float32 C-contiguous, and its padding mask [T]
        (True = padding, as torch.nn.Transformer's key_padding_mask wants)."""
        i = self.series.index(s) if isinstance(s, str) else s
        return np.ascontiguousarray(self.cnn[i].T), ~self.mask[i]

    def tokens(self):
        """All series as one token sequence [S*T, F+1]: the features and a series-id channel
        (0..S-1), series after series; and its padding mask [S*T]."""
        S, F, T = self.cnn.shape
        out = np.empty((S * T, F + 1), dtype=np.float32)
        out[:, :F] = self.cnn.transpose(0, 2, 1).reshape(S * T, F)
        out[:, F] = np.repeat(np.arange(S, dtype=np.float32), T)
        return out, ~self.mask.reshape(S * T)

    def rl(self):
        """(state, index, mask): the flat float32 state vector (a view of ``cnn``, no copy), the
        index map name -> slice (e.g. "eth_1m.close"), and the validity mask per element."""
        S, F, T = self.cnn.shape
        state = self.cnn.reshape(-1)
        mask = np.broadcast_to(self.mask[:, None, :], (S, F, T)).reshape(-1)
        return state, self.rl_slices, mask

    def torch(self):
        """The CNN tensor and mask as torch tensors sharing this memory (torch.from_numpy)."""
        import torch
        return torch.from_numpy(self.cnn), torch.from_numpy(self.mask)


def _model_input(series_ids, intervals, d, metadata=None):
    return ModelInput(close=d["close"], intervals=list(intervals),
        series=list(series_ids), features=list(d["features"]), as_of=_utc(d["as_of_ms"]),
        as_of_ms=d["as_of_ms"], cnn=d["tensor"], mask=d["mask"].view(np.bool_),
        open_time_ms=d["open_time_ms"], params=list(d["params"]),
        quality={s: q for s, q in zip(series_ids, d["quality"])},
        rl_slices={name: slice(b, e) for name, b, e in d["rl_index"]}, metadata=metadata or {})


def adapt(bars: Dict[str, Tuple[int, np.ndarray]], as_of, window=300, in_progress=False, price="none",
          volume="none"):
    """The adapter over bars you hold: ``bars`` maps series id -> (interval_s, structured array
    of ``mdshm.dtype``, oldest first). ``as_of`` is a UTC datetime or ms since the epoch.
    price: none | log_returns | zscore | minmax | relative; volume: none | log1p | zscore."""
    if isinstance(as_of, datetime):
        as_of = int(round(as_of.timestamp() * 1000))
    ids = list(bars)
    inputs = [(sid, int(iv), np.ascontiguousarray(b, dtype=_mdshm.dtype)) for sid, (iv, b) in bars.items()]
    return _model_input(ids, [i for _, i, _ in inputs], _mdshm.adapt(inputs, int(as_of), window, in_progress, price,
                                                                     volume))


def tensors(window=300, as_of=None, instance=_mdshm.default_instance, series=DEFAULT_SERIES,
            shm_dir=_mdshm.default_shm_dir, in_progress=False, price="none", volume="none", max_age=5.0):
    """The adapter over the live segments: a ModelInput at ``as_of`` (default: now)."""
    reader = _reader(instance, shm_dir, series)
    as_of_ms = _as_of_ms(reader, as_of)
    parts = reader.read(window, as_of_ms, in_progress, max_age)
    inputs = [(sid, m.get("interval_s", 1), b) for sid, (b, _, m) in zip(series, parts)]
    d = _mdshm.adapt(inputs, as_of_ms, window, in_progress, price, volume)
    return _model_input(series, [i for _, i, _ in inputs], d, {sid: m for sid, (_, _, m) in zip(series, parts)})
