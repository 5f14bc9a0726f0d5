"""Training memory counted from the tensors."""
import torch
import torch.nn as nn

from mmadamtl.utils.memory import training_memory


def test_training_memory_counts_saved_activations_and_states():
    """A 2-layer MLP by hand: its weights, the trained layer's gradient
    and AdamW states, and the activations saved for backward."""
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    model[0].requires_grad_(False)
    x = torch.rand(5, 8)
    mem = training_memory(model, lambda: model(x).sum())
    assert mem['weights'] == 4 * (8 * 16 + 16 + 16 * 4 + 4)
    assert mem['gradients'] == 4 * (16 * 4 + 4)
    assert mem['optimizer'] == 2 * mem['gradients']
    # The second Linear saves its input (the ReLU output, 5 x 16), which
    # the ReLU also saves (the same storage, counted once); the frozen
    # first layer needs nothing saved.
    assert mem['activations'] == 4 * 5 * 16
    assert mem['total'] == sum(v for k, v in mem.items() if k != 'total')
