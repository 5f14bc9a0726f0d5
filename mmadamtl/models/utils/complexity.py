"""FLOPs of static sub-modules, counted once per input shape."""
from typing import Dict, Hashable, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmseg.models.backbones import SwinTransformer

from .precision import full_precision
from .swin_cost import swin_cost


def _like_params(inputs, dtype):
    """Floating tensors of ``inputs`` (nested lists/tuples) in ``dtype``."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(dtype) if inputs.is_floating_point() else inputs
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(_like_params(x, dtype) for x in inputs)
    return inputs


def counted_flops(module: nn.Module, inputs) -> float:
    """Multiply-adds of ``module(inputs)`` by mmengine's counter.

    Traced with autocast off and the inputs in the module's parameter
    dtype (a count depends on shapes only, and the tracer cannot take
    autocast's casts of the weights as constants)."""
    if not isinstance(inputs, tuple):
        inputs = (inputs, )
    param = next(module.parameters(), None)
    if param is not None:
        inputs = _like_params(inputs, param.dtype)
    with full_precision(param.device if param is not None else 'cpu'):
        analyzer = FlopAnalyzer(module, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        return float(analyzer.total())


def _shapes(inputs) -> Tuple:
    if isinstance(inputs, torch.Tensor):
        return tuple(inputs.shape)
    return tuple(_shapes(x) for x in inputs)


class ComplexityCounter:
    """Caches the multiply-adds of modules whose cost depends only on the
    shape of their input (a Swin encoder run in full, a task decoder).

    A Swin encoder is counted in closed form (``swin_cost``); anything
    else is traced once per input shape by mmengine's counter.
    """

    def __init__(self) -> None:
        self._cache: Dict[Hashable, float] = {}

    def module_flops(self, module: nn.Module, inputs, name: str) -> float:
        key = (name, _shapes(inputs))
        if key not in self._cache:
            if isinstance(module, SwinTransformer):
                flops = swin_cost(module, inputs.shape[2:]).total
            else:
                with torch.no_grad():
                    flops = counted_flops(module, inputs)
            self._cache[key] = flops
        return self._cache[key]
