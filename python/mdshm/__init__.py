"""mdshm for Python: market-data bars from the mdshmd daemon's shared memory, and model-ready tensors.

    import mdshm
    s = mdshm.Series("eth_1m")                  # instance "default"
    bars = s.window(300)                        # owned numpy structured array, dtype mdshm.dtype
    v = s.view(300)                             # zero-copy, read-only; check v.valid() after use
    s.wait(1.0)                                 # blocks with the GIL released
    u = mdshm.universal(window=300)             # UniversalDataStream: five (n, 6) float64 arrays
    x = mdshm.tensors(window=300, price="relative")   # ModelInput: CNN / Transformer / RL layouts

Every error is an exception of a class per client error kind (``NotFoundError``,
``PermissionDeniedError``, ``LappedError`` ...; all derive from ``MdshmError``), and the message
starts with the kind's name (``not_found: ...``).
"""

from ._mdshm import (  # noqa: F401  (re-exported)
    MdshmError,
    consumers as _consumers,
    default_instance,
    default_shm_dir,
    dtype,
    errc_names,
    flags,
    slot_dtype,
)
from . import _mdshm
from ._series import BarView, Series, Subscription
from ._universal import ModelInput, UniversalDataStream, adapt, tensors, universal, DEFAULT_SERIES

# One exception class per error kind, e.g. mdshm.NotFoundError; `errors` maps kind -> class.
errors = dict(_mdshm.error_classes)
globals().update({cls.__name__: cls for cls in errors.values()})


def consumers(instance=default_instance, shm_dir=default_shm_dir):
    """The registered consumers of an instance (what `mdshm show` lists), as dicts."""
    return _consumers(instance, shm_dir)


__all__ = [
    "BarView", "DEFAULT_SERIES", "MdshmError", "ModelInput", "Series", "Subscription", "UniversalDataStream",
    "adapt", "consumers", "dtype", "errors", "flags", "slot_dtype", "tensors", "universal",
] + [c.__name__ for c in errors.values()]
