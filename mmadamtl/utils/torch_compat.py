"""Let mmengine checkpoints load under torch >= 2.6's ``weights_only``.

torch 2.6 made ``torch.load(weights_only=True)`` the default; mmengine
0.10.x calls ``torch.load`` without the argument, and its checkpoints hold
a ``HistoryBuffer`` (message hub) and numpy arrays and scalars, so resume,
``load_from`` and test fail. Registering these types as safe globals keeps
the safe loader on and needs no environment variable.
"""
import numpy as np
import torch


def _numpy_globals() -> list:
    items = [np.ndarray, np.dtype]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    items += [_reconstruct, scalar]
    # The dtype classes (numpy.dtypes.Float64DType, ...) pickled with arrays.
    items += [type(np.dtype(t)) for t in np.sctypeDict.values()]
    return items


def register_safe_globals() -> None:
    """Allow the non-tensor objects of mmengine checkpoints."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads everything anyway
        return
    import codecs

    from mmengine.logging import HistoryBuffer

    # HistoryBuffer pickles its statistics methods as
    # getattr(HistoryBuffer, 'min'), and numpy arrays their bytes through
    # codecs.encode. Allowing getattr stays safe: the loader still calls
    # only allow-listed callables, so an attribute fetched this way cannot
    # be invoked.
    add([HistoryBuffer, getattr, codecs.encode] + _numpy_globals())
