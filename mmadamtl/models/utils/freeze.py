"""Freeze parts of a model by ``requires_grad=False``."""
import fnmatch
from typing import List, Sequence

import torch.nn as nn
from mmengine.logging import MMLogger


def _is_pattern(path: str) -> bool:
    return any(c in path for c in '*?[')


def _matches(name: str, paths: Sequence[str]) -> int:
    """Length of the longest path ``name`` falls under; 0 when none. A
    path is a module path (``backbone.policy``) or a glob pattern over
    parameter names and their module paths (``backbone.*norm*``)."""
    best = 0
    for p in paths:
        if name == p or name.startswith(p + '.') or (
                _is_pattern(p) and
                (fnmatch.fnmatchcase(name, p) or
                 fnmatch.fnmatchcase(name, p + '.*'))):
            best = max(best, len(p))
    return best


def freeze_parameters(model: nn.Module, frozen: Sequence[str],
                      trainable: Sequence[str] = (),
                      where: str = 'train_cfg.frozen') -> List[str]:
    """Set ``requires_grad=False`` on the parameters under the module
    paths ``frozen`` except those under a longer path of ``trainable``
    (``frozen=['backbone'], trainable=['backbone.policy']`` trains the
    policy alone). A path may be a glob pattern (``*``, ``?``, ``[...]``)
    matching parameter names or module paths; its length counts as the
    pattern's (``trainable=['backbone.*norm*']`` trains every norm of a
    frozen backbone). Frozen parameters get no gradient: no backward through
    their weights, no all-reduce, no optimizer state, and nothing in the
    gradient-clipping norm; no learning-rate schedule can move them.

    Raises:
        ValueError: Naming a path (not a pattern) that matches no
            parameter.

    Returns:
        The names of the frozen parameters (also logged).
    """
    names = [n for n, _ in model.named_parameters()]
    for key, paths in (('frozen', frozen), ('trainable', trainable)):
        for p in paths:
            # A literal path must exist; a pattern may match nothing (the
            # adapters of a variant that has none).
            if not _is_pattern(p) and not any(
                    _matches(n, [p]) for n in names):
                raise ValueError(
                    f'{where}: {key} path {p!r} matches no parameter of '
                    f'{type(model).__name__}')
    done = []
    for name, param in model.named_parameters():
        if _matches(name, frozen) > _matches(name, trainable):
            param.requires_grad_(False)
            done.append(name)
    frozen_names = set(done)
    count = sum(p.numel() for n, p in model.named_parameters()
                if n in frozen_names)
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    MMLogger.get_current_instance().info(
        f'frozen (requires_grad=False): {list(frozen)} except '
        f'{list(trainable)}: {len(done)} tensors, {count:,} parameters; '
        f'{train:,} of {total:,} parameters train '
        f'({100 * train / max(total, 1):.1f}%)')
    return done
