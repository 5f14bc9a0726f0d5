"""Importance re-ordering of a Swin encoder's attention heads and MLP
neurons, before it is slimmed.

A slimmable Swin (``layers/slimmable.py``) runs prefixes: its first
``h`` heads and first ``m`` MLP neurons. A pretrained encoder's order is
arbitrary, so the prefixes would drop important units as readily as
unimportant ones. As DynaBERT's rewiring does (Hou et al., NeurIPS
2020), :func:`reorder_by_importance` permutes every block's heads and
neurons by decreasing importance, so that narrow prefixes keep the
important ones. The importance here is read from the weights alone (no
data, no gradient):

- a head's: the L1 norm of its ``qkv`` rows (its q, k and v blocks)
  times the L1 norm of its ``proj`` input columns;
- an MLP neuron's: the L1 norm of its ``fc1`` row times the L1 norm of
  its ``fc2`` column.

A permutation moves every weight of a unit together (a head's ``qkv``
rows in mmseg's (3, heads, head_dim) layout, its column of the
relative-position-bias table and its ``proj`` columns; a neuron's
``fc1`` row and bias and its ``fc2`` column), so the full-width block
computes what it computed before (up to the order of float sums).
"""
from typing import List, Tuple

import torch
import torch.nn as nn

from .slimmable import head_dim, qkv_heads


def head_importance(w_msa: nn.Module) -> torch.Tensor:
    """Per head of mmseg's ``WindowMSA``: L1 norm of its ``qkv`` rows x L1
    norm of its ``proj`` input columns, shape (num_heads, )."""
    heads, d = w_msa.num_heads, head_dim(w_msa)
    qkv = w_msa.qkv.weight.detach().view(3, heads, d, -1)
    proj = w_msa.proj.weight.detach().view(-1, heads, d)
    return qkv.abs().sum(dim=(0, 2, 3)) * proj.abs().sum(dim=(0, 2))


def neuron_importance(ffn: nn.Module) -> torch.Tensor:
    """Per hidden neuron of mmcv's ``FFN``: L1 norm of its ``fc1`` row x
    L1 norm of its ``fc2`` column, shape (hidden, )."""
    fc1, fc2 = ffn.layers[0][0], ffn.layers[1]
    return fc1.weight.detach().abs().sum(dim=1) * \
        fc2.weight.detach().abs().sum(dim=0)


@torch.no_grad()
def permute_heads(w_msa: nn.Module, order: torch.Tensor) -> None:
    """Reorder ``w_msa``'s heads in place: head ``i`` becomes the old
    head ``order[i]``."""
    heads, d = w_msa.num_heads, head_dim(w_msa)
    weight, bias = qkv_heads(w_msa, order)
    w_msa.qkv.weight.copy_(weight)
    if bias is not None:
        w_msa.qkv.bias.copy_(bias)
    proj = w_msa.proj
    table = w_msa.relative_position_bias_table
    table.copy_(table[:, order])
    proj.weight.copy_(proj.weight.view(-1, heads, d)[:, order].reshape(
        -1, heads * d))


@torch.no_grad()
def permute_neurons(ffn: nn.Module, order: torch.Tensor) -> None:
    """Reorder ``ffn``'s hidden neurons in place: neuron ``i`` becomes the
    old neuron ``order[i]``."""
    fc1, fc2 = ffn.layers[0][0], ffn.layers[1]
    fc1.weight.copy_(fc1.weight[order])
    if fc1.bias is not None:
        fc1.bias.copy_(fc1.bias[order])
    fc2.weight.copy_(fc2.weight[:, order])


def _decreasing(scores: torch.Tensor) -> torch.Tensor:
    # Stable: equal scores keep their order.
    return torch.sort(scores, descending=True, stable=True).indices


def reorder_by_importance(encoder: nn.Module
                          ) -> List[List[Tuple[List[int], List[int]]]]:
    """Permute every block of a Swin encoder (mmseg's layout:
    ``stages[i].blocks[j].attn.w_msa`` and ``.ffn``) so that its heads and
    MLP neurons come by decreasing importance (see the module), in place.

    Returns:
        list: Per stage, per block, the ``(head order, neuron order)``
        applied (new position -> old index).
    """
    orders = []
    for stage in encoder.stages:
        stage_orders = []
        for block in stage.blocks:
            heads = _decreasing(head_importance(block.attn.w_msa))
            neurons = _decreasing(neuron_importance(block.ffn))
            permute_heads(block.attn.w_msa, heads)
            permute_neurons(block.ffn, neurons)
            stage_orders.append((heads.tolist(), neurons.tolist()))
        orders.append(stage_orders)
    return orders
