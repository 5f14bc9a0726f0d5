"""``torch.compile`` for the captured modes: compiled functions that own
their graphs and fail loudly instead of falling back to eager code."""
import types
from typing import Callable, Optional

import torch


def compiled_copy(fn: Callable, compiler: Optional[Callable] = None
                  ) -> Callable:
    """``compiler`` (default: ``torch.compile`` with static shapes) applied
    to a copy of ``fn`` with a code object of its own: dynamo keeps the
    graphs it compiles, and counts recompilations, per code object, so
    each copy's graphs and limit are its own (two models in one process
    share neither)."""
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__,
                             fn.__name__, fn.__defaults__, fn.__closure__)
    own.__doc__, own.__qualname__ = fn.__doc__, fn.__qualname__
    compiler = compiler or (lambda f: torch.compile(f, dynamic=False))
    return compiler(own)


def strict_recompiles(limit: Optional[int] = None):
    """A context in which a compiled function that would need more than
    ``limit`` graphs (default: dynamo's ``recompile_limit``) raises
    instead of running eager code silently."""
    patch = dict(fail_on_recompile_limit_hit=True)
    if limit is not None:
        patch['recompile_limit'] = limit
    return torch._dynamo.config.patch(**patch)
