"""Series, its zero-copy views, and Subscription: thin layers over the C++ client."""

import numpy as np

from . import _mdshm


class BarView(np.ndarray):
    """A read-only structured array of bars. Zero-copy ones point straight into the segment's
    ring (fields as in ``mdshm.slot_dtype``, itemsize 128) and keep the mapping alive; call
    ``valid()`` after using the values: False means the writer lapped or amended a bar of the
    view, or re-attached/retired the segment, while you read, so the values may be mixed.

    A window that wraps around the ring's end cannot be one strided view: then ``view()``
    returns a copy (``zero_copy`` False, fields as in ``mdshm.dtype``) that is consistent when
    made; its ``valid()`` is always True, since the writer cannot change a copy.
    """

    def __array_finalize__(self, obj):
        self._guard = getattr(obj, "_guard", None)

    @property
    def zero_copy(self):
        return self._guard is not None

    def valid(self):
        return self._guard.valid() if self._guard is not None else True


class Series(_mdshm.Series):
    """One series segment, mapped read-only.

    Series(series_id, instance="default", shm_dir="/dev/shm")

    latest()                   the newest bar (in progress or just closed), a numpy record
    window(n, closed_only=True) the n newest (closed) bars, an owned array of ``mdshm.dtype``
    view(n)                    the n newest closed bars without copying (``BarView``)
    wait(timeout=1.0, seen=None)  'updated' | 'timeout' | 'writer_dead'; releases the GIL
    updates(), is_fresh(max_age=5.0), writer_state() ('alive'|'stalled'|'dead'),
    generation, interval (seconds), symbol, series_id, capacity, path, stats()

    One object serves one thread at a time for reads (like the C++ Series); wait() runs on a
    separate internal mapping, so one thread may wait while another reads.
    """

    def view(self, n):
        arr, guard = self._view(n)
        if arr is not None:
            v = arr.view(BarView)
            v._guard = guard
            return v
        # Wrapped around the ring's end: an owned copy, consistent when made (valid() is True:
        # nothing the writer does can change it).
        v = self.window(n, closed_only=True).view(BarView)
        v.flags.writeable = False
        return v

    def __repr__(self):
        return f"mdshm.Series({self.series_id!r}, instance={self.instance!r}, interval={self.interval}s)"


class Subscription:
    """A named reader of one series, listed by `mdshm show` and ``mdshm.consumers()``; its
    registry slot is freed when it is closed, and by the daemon when the process dies.

    poll(max_bars=4096) -> (bars, lapped): the closed bars since the last call, and how many
    were lost to lapping meanwhile. wait(timeout) blocks (GIL released) for the next update.
    """

    def __init__(self, name, series_id, instance=_mdshm.default_instance, shm_dir=_mdshm.default_shm_dir):
        self.name = name
        self.series_id = series_id
        self._sub = _mdshm.Subscription(name, series_id, instance, shm_dir)

    def poll(self, max_bars=4096):
        return self._sub.poll(max_bars)

    def wait(self, timeout=1.0):
        return self._sub.wait(timeout)

    @property
    def cursor(self):
        return self._sub.cursor

    @property
    def lapped(self):
        return self._sub.lapped

    def close(self):
        self._sub.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
