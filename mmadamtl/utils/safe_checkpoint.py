"""Load mmengine checkpoints with torch's weights-only unpickler, safely.

torch >= 2.6 loads with ``weights_only=True`` by default. mmengine 0.10.x
checkpoints hold, besides tensors, the message hub's ``HistoryBuffer``
(its statistics methods pickled as ``getattr(HistoryBuffer, 'min')``,
since ``torch.save`` uses pickle protocol 2) and numpy arrays, so resume,
``load_from`` and test fail under that loader unless these globals are
allowed.

What is allowed, and only while :func:`load_checkpoint_file` reads a file
(``torch.serialization.safe_globals``, not a process-wide registration):

- ``HistoryBuffer`` (the class itself, to build it and restore its state);
- ``builtins.getattr`` **replaced** by :func:`history_buffer_getattr`, which
  returns only ``HistoryBuffer.min/max/current/mean`` and refuses every
  other (object, attribute) pair. The real ``getattr`` must never be
  allowed: torch's own allow-listed ``_rebuild_from_type_v2(func, ...)``
  calls any ``func`` on the unpickler's stack, so a ``getattr`` that reaches
  ``__builtins__`` reaches ``eval``;
- numpy's array and dtype reconstruction (``_reconstruct``, ``ndarray``,
  ``dtype`` and the dtype classes, ``scalar``), under both the numpy 1
  (``numpy.core``) and numpy 2 (``numpy._core``) names. They build arrays
  and scalars from bytes and never call a function given to them.

Importing ``mmadamtl`` registers :func:`load_checkpoint_file` as mmengine's
loader of local files (``CheckpointLoader``, empty prefix), so the Runner
(``load_from``, ``--resume``, test), ``Pretrained`` init and our tools read
through it; any other ``torch.load`` in the process keeps torch's default
allow-list. Load only checkpoints you trust all the same: the weights-only
unpickler limits what a file can do, it does not vouch for its weights.
"""
import os.path as osp
import pickle
import zipfile
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

SafeGlobal = Union[Callable, Tuple[Callable, str]]

# The attributes mmengine's pickles fetch with getattr: HistoryBuffer's
# statistics methods (HistoryBuffer.__getstate__ stores them).
HISTORY_BUFFER_ATTRIBUTES = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for the unpickler: only ``HistoryBuffer.<statistic>``."""
    if obj is HistoryBuffer and name in HISTORY_BUFFER_ATTRIBUTES:
        return getattr(obj, name)
    allowed = ', '.join(f'getattr(HistoryBuffer, {a!r})'
                        for a in HISTORY_BUFFER_ATTRIBUTES)
    raise pickle.UnpicklingError(
        f'refused getattr({_describe(obj)}, {name!r}) in a checkpoint: the '
        f'only attribute look-ups allowed are {allowed}')


def _describe(obj: Any) -> str:
    name = getattr(obj, '__qualname__', None) or type(obj).__qualname__
    return f'<{name}>'


def _numpy_globals() -> List[SafeGlobal]:
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    out: List[SafeGlobal] = []
    for fn in (_reconstruct, scalar):
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            out.append((fn, f'{module}.{fn.__name__}'))
    out += [np.ndarray, np.dtype]
    # BUILD restores a dtype's state only if its class is allowed.
    out += sorted({type(np.dtype(t)) for t in np.sctypeDict.values()},
                  key=lambda t: t.__name__)
    return out


def checkpoint_safe_globals() -> List[SafeGlobal]:
    """The extra globals :func:`load_checkpoint_file` allows (see the
    module docstring)."""
    return [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def load_checkpoint_file(filename: str, map_location=None) -> Any:
    """``torch.load(filename, weights_only=True)`` with the globals of
    mmengine checkpoints allowed for this call only.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        pickle.UnpicklingError: The file holds something the weights-only
            unpickler refuses (named in the message, with the file).
        ValueError: The file is truncated or not a torch checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    if not _looks_like_torch_file(filename):
        raise ValueError(f'checkpoint {filename} is unreadable: it is '
                         f'neither a zip archive (torch.save) nor a pickle')
    try:
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f'checkpoint {filename} was refused by the weights-only '
            f'loader: {e}') from None
    except Exception as e:  # zip, EOF, struct and storage errors
        raise ValueError(
            f'checkpoint {filename} is unreadable (truncated, corrupt or '
            f'not a torch checkpoint): {type(e).__name__}: {e}') from None


def _looks_like_torch_file(filename: str) -> bool:
    """torch.save writes a zip archive (or, in its legacy format, a pickle
    starting with the PROTO opcode)."""
    if zipfile.is_zipfile(filename):
        return True
    with open(filename, 'rb') as f:
        return f.read(1) == pickle.PROTO


def load_from_local_weights_only(filename: str, map_location=None) -> Any:
    """mmengine's loader of local files once :func:`register_checkpoint_loader`
    ran (mmengine logs it as the ``local_weights_only`` backend)."""
    return load_checkpoint_file(filename, map_location)


def register_checkpoint_loader() -> None:
    """Make :func:`load_checkpoint_file` mmengine's loader of local
    files (every path without a registered scheme such as ``http://``)."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_weights_only, force=True)
