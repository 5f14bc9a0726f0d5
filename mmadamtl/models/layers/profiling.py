"""Runners that time, record and replay the Swin stage loop's work, for the
measuring tools (``tools/encoder_breakdown.py``). They plug in through the
encoders' public arguments (``SwinEncoder.run_stages(x, runner)``,
``AdaptiveSwinTransformer.encode(x, control, skip_runner=...)``); no
model attribute is set or patched."""
import time
from typing import Dict, List, Optional

import torch

from .adamtl_runners import SkipRunner, index_tensor, scatter_images
from .block_runner import BlockRunner, attention_residual, mlp_delta

# The policy's decision calls a timed skip runner books to 'policy'.
POLICY_CALLS = ('block_decisions', 'token_decisions', 'block_scores')


class TimedRunner(BlockRunner):
    """Runs every block in full (the same operations as mmseg's block),
    adding the seconds of its attention and of its MLP to
    ``times['attention']`` and ``times['MLP']``."""

    def __init__(self, times: Dict[str, float]) -> None:
        self.times = times

    def run_block(self, stage, index, block, x, hw_shape):
        start = time.perf_counter()
        x = attention_residual(block, x, hw_shape)
        mid = time.perf_counter()
        x = block.ffn(block.norm2(x), identity=x)
        self.times['attention'] += mid - start
        self.times['MLP'] += time.perf_counter() - mid
        return x


class _PolicyView:
    """The policy as the runner sees it: its decision calls (``calls``)
    go through ``wrap``; everything else is the policy's."""

    def __init__(self, policy, wrap, calls=POLICY_CALLS) -> None:
        self._policy = policy
        for name in calls:
            self.__dict__[name] = wrap(name, getattr(policy, name))

    def __getattr__(self, name):
        return getattr(self._policy, name)


class TimedSkipRunner(SkipRunner):
    """``SkipRunner`` whose stage starts (``times['plans']``) and block
    runs (``times['blocks']``) are timed; what the policy's decision
    calls take is booked to ``times['policy']`` instead. Pass it as
    ``encode(..., skip_runner=functools.partial(TimedSkipRunner,
    times=times))``."""

    def __init__(self, policy, *args, times: Dict[str, float],
                 **kwargs) -> None:
        self.times = times

        def timed(name, fn):
            def call(*a, **k):
                start = time.perf_counter()
                out = fn(*a, **k)
                times['policy'] += time.perf_counter() - start
                return out
            return call

        super().__init__(_PolicyView(policy, timed), *args, **kwargs)

    def _timed(self, key, fn, *args):
        policy = self.times['policy']
        start = time.perf_counter()
        out = fn(*args)
        self.times[key] += time.perf_counter() - start - (
            self.times['policy'] - policy)
        return out

    def start_stage(self, *args):
        return self._timed('plans', super().start_stage, *args)

    def run_block(self, *args):
        return self._timed('blocks', super().run_block, *args)


class RecordingSkipRunner(SkipRunner):
    """``SkipRunner`` that appends to ``plan``, per block, the work it
    executed: None (skipped by every image) or ``(images, rows)``, the
    image indices that ran it (None: all) and the flat (image, token) rows
    whose MLP ran (None: all), both on the device. Pass it as
    ``encode(..., skip_runner=functools.partial(RecordingSkipRunner,
    plan=plan))``; :class:`ReplayRunner` replays the plan."""

    def __init__(self, policy, *args, plan: List, **kwargs) -> None:
        self.plan = plan
        self._last_tokens: Optional[torch.Tensor] = None

        def recorded(name, fn):
            def call(*a, **k):
                self._last_tokens = fn(*a, **k)
                return self._last_tokens
            return call

        super().__init__(_PolicyView(policy, recorded, ('token_decisions', )),
                         *args, **kwargs)

    def run_block(self, stage, index, block, x, hw_shape):
        planned = list(self._images[index])
        self._last_tokens = None
        out = super().run_block(stage, index, block, x, hw_shape)
        keep, counts = self.keep_rows[-1], self.token_counts[-1]
        ran = [i for i, k in enumerate(keep) if k]
        if not ran:
            self.plan.append(None)
            return out
        images = None if len(ran) == len(keep) else index_tensor(ran, x)
        rows = None
        if any(counts[i] < x.shape[1] for i in ran):
            pos = index_tensor([planned.index(i) for i in ran], x)
            selected = self._last_tokens.index_select(0, pos)
            rows = selected.reshape(-1).nonzero().squeeze(1)
        self.plan.append((images, rows))
        return out


class ReplayRunner(BlockRunner):
    """Runs exactly the work of a recorded adaptive forward (the same
    attention sub-batches, MLP rows, gathers and scatters as
    ``SkipRunner``) with the decisions given: no policy, no read of the
    device, no bookkeeping. What no reduction of the adaptive path's
    overhead can go below."""

    def __init__(self, plan: List) -> None:
        self.plan = plan
        self.k = 0

    def run_block(self, stage, index, block, x, hw_shape):
        entry = self.plan[self.k]
        self.k += 1
        if entry is None:
            return x
        images, rows = entry
        sub = x if images is None else x.index_select(0, images)
        y = attention_residual(block, sub, hw_shape)
        if rows is None:
            y = y + mlp_delta(block, y)
        else:
            flat = y.view(-1, y.shape[-1])
            kept = flat.index_select(0, rows)
            flat.index_copy_(0, rows, kept + mlp_delta(block, kept))
        return y if images is None else scatter_images(x, images, y)
