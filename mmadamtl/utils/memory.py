"""Training memory of one step, counted from the tensors (device-free)."""
from typing import Callable, Dict

import torch
import torch.nn as nn


def training_memory(model: nn.Module, loss_fn: Callable[[], torch.Tensor],
                    optimizer_states: int = 2) -> Dict[str, int]:
    """Bytes one training step holds at its peak, by kind: the model's
    parameters and buffers, the gradients of the parameters that train,
    ``optimizer_states`` tensors per trained parameter (AdamW: 2), and the
    activations autograd saves for the backward pass during
    ``loss_fn()`` (each storage once; parameters not counted again).

    The same on every device, so it compares methods on CPU, where no
    allocator reports a peak; a GPU adds its allocator's fragmentation
    and workspaces on top.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = set(params)
    saved = 0

    def pack(t):
        nonlocal saved
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            saved += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    del loss
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    trained = sum(p.numel() * p.element_size() for p in model.parameters()
                  if p.requires_grad)
    return dict(weights=weights, gradients=trained,
                optimizer=optimizer_states * trained, activations=saved,
                total=weights + trained * (1 + optimizer_states) + saved)
