"""Cost accounting in full precision whatever the autocast dtype.

Executed multiply-adds reach 10^7-10^10 per image: float16 overflows at
65504 and bfloat16 keeps 3 significant digits, so every figure computed
from the policy's decisions (executed FLOPs, fractions, the budget loss,
the cap's allowance) is computed in float32 with autocast switched off.
The decisions themselves (0/1 values) are exact in any dtype.
"""
import contextlib
from typing import Iterator, Union

import torch


@contextlib.contextmanager
def full_precision(device: Union[str, torch.device, torch.Tensor]
                   ) -> Iterator[None]:
    """Switch autocast off for ``device`` (a device, its type, or a tensor
    on it) inside the ``with`` block; tensors made inside keep their own
    dtypes, so cast them with :func:`as_float32`."""
    if isinstance(device, torch.Tensor):
        device = device.device
    kind = device if isinstance(device, str) else device.type
    if not torch.is_autocast_enabled(kind):
        # Off already: no autocast region (an exported graph then has
        # none, which torch.export's pass over nested ``cond`` branches
        # trips on).
        yield
        return
    with torch.autocast(kind, enabled=False):
        yield


def as_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 (float64 stays float64), gradients kept."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()
