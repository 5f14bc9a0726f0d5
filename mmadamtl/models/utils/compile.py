"""``torch.compile`` for the captured modes: compiled functions that own
their graphs and fail loudly instead of falling back to eager code."""
import contextlib
import types
from typing import Callable, Optional

import torch


def compile_static(fn: Callable, backend: Optional[str] = None) -> Callable:
    """``torch.compile`` with static shapes and no guards on the modules'
    attributes and parameters. The captured modes compile a function per
    block, stage or head set of one model, and build them anew for
    another task set, device, dtype or autocast state
    (``AdaptiveSwinTransformer.captured_pieces``); a module's structure
    does not change in inference. Dynamo's guards on every parameter and
    attribute would cost more than a small block's kernels on every call;
    the guards on the inputs (shapes, dtypes, devices, the bucket size)
    and the global state (grad mode, autocast) stay: they choose among a
    function's graphs. ``backend``: dynamo's (default: ``torch.compile``'s;
    tests count the graphs with their own)."""
    extra = {} if backend is None else dict(backend=backend)
    return torch.compile(fn, dynamic=False, options=dict(
        guard_filter_fn=torch.compiler.skip_guard_on_all_nn_modules_unsafe),
        **extra)


def compiled_copy(fn: Callable, compiler: Optional[Callable] = None
                  ) -> Callable:
    """``compiler`` (default: :func:`compile_static`) applied to a copy of
    ``fn`` with a code object of its own: dynamo keeps the graphs it
    compiles, and counts recompilations, per code object, so each copy's
    graphs and limit are its own (two models in one process share
    neither)."""
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__,
                             fn.__name__, fn.__defaults__, fn.__closure__)
    own.__doc__, own.__qualname__ = fn.__doc__, fn.__qualname__
    return (compiler or compile_static)(own)


class CapturedLimitError(RuntimeError):
    """A captured mode needed more compiled graphs than its bound: inputs
    of another size or batch, or other controls, than it was built
    for."""


@contextlib.contextmanager
def strict_recompiles(limit: Optional[int] = None, what: str = 'graphs'):
    """A context in which a compiled function that would need more than
    ``limit`` graphs (default: dynamo's ``recompile_limit``) raises
    :class:`CapturedLimitError`, naming ``what`` was exceeded, instead of
    running eager code silently."""
    patch = dict(fail_on_recompile_limit_hit=True)
    if limit is not None:
        patch['recompile_limit'] = limit
    try:
        with torch._dynamo.config.patch(**patch):
            yield
    except torch._dynamo.exc.FailOnRecompileLimitHit as e:
        raise CapturedLimitError(
            f'captured mode needed {what} beyond its limit '
            f'({limit or torch._dynamo.config.recompile_limit}); it runs '
            'inputs of one size and batch: run others eagerly') from e
