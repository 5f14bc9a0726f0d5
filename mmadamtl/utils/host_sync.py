"""Counting the operations that make the host wait for the device.

On CUDA, PyTorch queues work and returns at once, unless the host needs
a value or a shape that only the device's work gives: ``nonzero``,
``.item()``/``bool()``/``int()``, boolean-mask indexing, ``unique``, a
copy to the host (``.cpu()``, ``.tolist()``, ``.numpy()``). Each waits
for everything queued before it (a synchronisation). :class:`SyncCounter`
counts these on any device, so that a CPU test catches a new
synchronisation in code meant for the GPU; on a GPU,
``torch.cuda.set_sync_debug_mode`` reports the real ones.
"""
from collections import Counter
from typing import List

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
# aten operators whose output shape or value depends on the data.
DATA_DEPENDENT_OPS = {
    _aten.nonzero.default, _aten.nonzero_numpy.default,
    _aten._local_scalar_dense.default, _aten.masked_select.default,
    _aten.unique_consecutive.default, _aten._unique2.default,
    _aten.unique_dim.default, _aten.repeat_interleave.Tensor,
}
# Tensor methods that copy to the host (no aten operator on CPU).
HOST_METHODS = ('tolist', 'cpu', 'numpy')


def tracing() -> bool:
    """True while ``torch.compile`` or ``torch.export`` (the ONNX
    exporter's) traces the code: values are not known on the host then,
    so checks and warnings that read them are left out, and nothing made
    during the trace may be cached for later calls."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor)
               and i.dtype in (torch.bool, torch.uint8) for i in indices
               if i is not None)


class SyncCounter(TorchDispatchMode):
    """Count the host reads of device values inside a ``with`` block::

        with SyncCounter() as syncs:
            model(x)
        syncs.count, syncs.by_name

    Counted: the aten operators of ``DATA_DEPENDENT_OPS``, indexing and
    ``index_put_`` with a boolean mask, and calls of the tensor methods
    ``HOST_METHODS`` (counted on CPU tensors too: on CUDA they would
    wait). ``nonzero_static`` (its size given) and ``.numel()``/shapes are
    not reads.
    """

    def __init__(self) -> None:
        super().__init__()
        self.events: List[str] = []
        self._saved = {}

    @property
    def count(self) -> int:
        return len(self.events)

    @property
    def by_name(self) -> Counter:
        return Counter(self.events)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in DATA_DEPENDENT_OPS:
            self.events.append(str(func.overloadpacket))
        elif func in (_aten.index.Tensor, _aten.index_put_.default,
                      _aten.index_put.default) and _bool_index(args):
            self.events.append(f'{func.overloadpacket} (boolean mask)')
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        for name in HOST_METHODS:
            self._saved[name] = torch.Tensor.__dict__.get(name)
            method = getattr(torch.Tensor, name)

            def read(tensor, *args, _method=method, _name=name, **kwargs):
                self.events.append(f'Tensor.{_name}')
                return _method(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, read)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for name, saved in self._saved.items():
                if saved is None:
                    delattr(torch.Tensor, name)
                else:
                    setattr(torch.Tensor, name, saved)
            self._saved = {}
