"""Model-side randomness that a resumed run reproduces."""
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class IterSeedHook(Hook):
    """Seeds torch's global generator from ``(seed, rank, iteration)``
    before every training iteration.

    What a training step draws from it (AdaMTL's Gumbel noise, drop path,
    dropout) then depends on the iteration alone, so a run resumed from a
    checkpoint draws exactly what the uninterrupted run drew, with no
    generator state to save; ranks draw differently. The base seed is the
    runner's (``randomness.seed``, saved in every checkpoint's meta and
    restored by ``--resume``).

    Data augmentation is seeded by the dataloader workers (mmengine's
    ``worker_init_fn``), whose sequence the resumed run replays.
    """
    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        torch.manual_seed(self.seed(runner.seed, get_rank(), runner.iter))

    @staticmethod
    def seed(base: int, rank: int, it: int) -> int:
        return (((int(base) * 1000003 + rank) * 1000003 + it) % (2**63))
