"""The one way the package and its tools write files: atomically, never
over an input of the same command, never over an existing file unless
asked.

Every writer goes through :func:`atomic_write`: the content is written to
a temporary file in the target's directory and renamed over the target
(``os.replace``), so a failed or killed write (a full disk, a file-size
limit, Ctrl-C) leaves whatever was there before, never a truncated file.
"""
import contextlib
import json
import math
import os
import os.path as osp
import tempfile
from typing import Any, Iterable, Iterator, Optional

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _real(path: str) -> str:
    return osp.realpath(osp.abspath(osp.expanduser(str(path))))


def check_output(path: str, inputs: Iterable[Optional[str]] = (),
                 overwrite: bool = False, what: str = 'output') -> str:
    """Refuse to write ``path`` where that would lose data.

    Raises:
        ValueError: ``path`` is (or resolves to) one of ``inputs``, a file
            the same command reads; or it is a directory.
        FileExistsError: ``path`` exists and ``overwrite`` is False.

    Returns:
        str: ``path`` unchanged.
    """
    target = _real(path)
    for src in inputs:
        if src and _real(src) == target:
            raise ValueError(
                f'{what} {path} is the input {src} of this command: '
                f'writing it would destroy the input; choose another path')
    if osp.isdir(target):
        raise ValueError(f'{what} {path} is a directory; give a file path')
    if osp.lexists(path) and not overwrite:
        raise FileExistsError(
            f'{what} {path} exists; pass --overwrite to replace it (or '
            f'choose another path)')
    return path


@contextlib.contextmanager
def atomic_write(path: str, inputs: Iterable[Optional[str]] = (),
                 overwrite: bool = False, what: str = 'output'
                 ) -> Iterator[str]:
    """Yield a temporary path next to ``path``; once the ``with`` block
    ends without an error it is renamed to ``path``, otherwise removed.
    :func:`check_output` is applied first (``inputs``, ``overwrite``)."""
    check_output(path, inputs, overwrite, what)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.',
                               suffix='.part', dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp's file is owner-only: give it the replaced file's mode,
        # or what open() would have given a new file.
        if osp.isfile(path) and not osp.islink(path):
            mode = os.stat(path).st_mode & 0o777
        else:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        # A symlink at the target is replaced, not followed.
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str, **kwargs) -> str:
    """Write ``text`` (UTF-8) through :func:`atomic_write`."""
    with atomic_write(path, **kwargs) as tmp:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)
    return path


def check_finite_json(obj: Any, where: str, key: str = '') -> None:
    """Raise ValueError naming the first non-finite number in ``obj`` (a
    JSON-like structure of dicts, lists and numbers)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_finite_json(v, where, f'{key}.{k}' if key else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite_json(v, where, f'{key}[{i}]')
    elif isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        raise ValueError(f'{where}: {key or "value"} is {float(obj)}, not '
                         f'a finite number')


def write_json(path: str, obj: Any, indent: Optional[int] = 2,
               **kwargs) -> str:
    """Write ``obj`` as standard JSON (a NaN or infinity is an error naming
    its key, never the non-standard ``NaN`` token) through
    :func:`atomic_write`."""
    check_finite_json(obj, path)
    text = json.dumps(obj, indent=indent, allow_nan=False)
    return write_text(path, text + '\n', **kwargs)


def save_torch(obj: Any, path: str, **kwargs) -> str:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""
    import torch
    with atomic_write(path, **kwargs) as tmp:
        torch.save(obj, tmp)
    return path


def save_figure(fig, path: str, dpi=None, **kwargs) -> str:
    """``fig.savefig(path)`` (format from the extension) through
    :func:`atomic_write`."""
    fmt = osp.splitext(path)[1].lstrip('.') or 'png'
    with atomic_write(path, **kwargs) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``folder`` or a
    path below it."""
    p, f = _real(path), _real(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def data_roots(cfg) -> list:
    """``(dataloader key, data root)`` of every dataset a config reads."""
    roots = []
    for key, value in cfg.items():
        if key.endswith('_dataloader') and isinstance(value, dict):
            root = (value.get('dataset') or {}).get('data_root')
            if root:
                roots.append((key, root))
    return roots


def check_outside_data(path: str, cfg, what: str = 'output') -> None:
    """Refuse an output folder that is, or lies inside, a data root of
    ``cfg`` (predictions or figures would replace ground truth)."""
    for key, root in data_roots(cfg):
        if inside(path, root):
            raise ValueError(
                f'{what} {path} is inside the data root {root} of {key}: '
                f'files written there could replace its ground truth (e.g. '
                f'depth/<id>.npy); choose a folder outside the dataset')
