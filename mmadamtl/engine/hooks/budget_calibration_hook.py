"""Measure the policy's budget curve whenever a checkpoint is saved."""
import copy
from typing import Optional

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmseg.registry import DATASETS, HOOKS

from mmadamtl.apis.inference import collate_batches
from mmadamtl.models.policies import calibrate_budget

from .budget_schedule_hook import _unwrap


def calibration_dataset(cfg, dataset: Optional[dict] = None):
    """The images a budget curve is measured on: ``dataset`` (a dataset
    config), or by default ``cfg``'s train dataset read through its test
    pipeline (no augmentation)."""
    if dataset is not None:
        ds_cfg = copy.deepcopy(dataset)
    else:
        ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
        ds_cfg['pipeline'] = copy.deepcopy(
            cfg.test_dataloader.dataset.pipeline)
    return DATASETS.build(ds_cfg)


def calibration_batches(dataset, num_images: int, batch_size: int) -> list:
    """The first ``num_images`` items of ``dataset`` in collated batches
    (``collate_batches``); an empty dataset is an error."""
    if len(dataset) == 0:
        raise ValueError('budget calibration: the calibration dataset is '
                         'empty')
    return collate_batches(dataset, num_images, batch_size)


@HOOKS.register_module()
class BudgetCalibrationHook(Hook):
    """Keeps an adaptive model's ``policy.budget_curve`` current, so that
    ``budget_mode='target'`` (and ``'cap'``) meets the requested share of
    block compute.

    The curve is measured (``calibrate_budget``) on the first
    ``num_images`` images of the training set, read through the test
    pipeline (no augmentation, no random state touched, so a resumed run
    trains exactly as an uninterrupted one), after the training iterations
    at which the ``CheckpointHook`` saves (this hook runs before it, so
    the checkpoint holds the curve) and before every validation whose
    iteration has no curve yet.

    Args:
        num_images: Training images to calibrate on.
        batch_size: Images per forward pass.
        dataset: A dataset config to calibrate on instead (e.g. a
            held-out split); default: the train dataset with the test
            dataloader's pipeline.
    """
    # Before CheckpointHook (VERY_LOW) saves the iteration's checkpoint.
    priority = 'LOW'

    def __init__(self, num_images: int = 64, batch_size: int = 8,
                 dataset: Optional[dict] = None) -> None:
        if num_images < 1 or batch_size < 1:
            raise ValueError(f'BudgetCalibrationHook: num_images and '
                             f'batch_size must be >= 1, got {num_images}, '
                             f'{batch_size}')
        self.num_images, self.batch_size = num_images, batch_size
        self.dataset_cfg = dataset
        self._batches = None
        self._done_at = None

    def _inputs(self, runner, model):
        if self._batches is None:
            self._batches = calibration_batches(
                calibration_dataset(runner.cfg, self.dataset_cfg),
                self.num_images, self.batch_size)
        device = next(model.parameters()).device
        for batch in self._batches:
            yield model.data_preprocessor(batch, False)['inputs'].to(device)

    def calibrate(self, runner, at: int) -> None:
        """Measure the curve; ``at``: the iterations trained so far."""
        model = _unwrap(runner.model)
        if not getattr(model, 'adaptive', False):
            raise RuntimeError('BudgetCalibrationHook needs a model with an '
                               'adaptive backbone')
        with torch.no_grad():
            curve = calibrate_budget(model.backbone,
                                     self._inputs(runner, model),
                                     model.tasks)
        self._done_at = at
        points = ', '.join(f'{b:g}->{curve[i]:.3f}'
                           for b, i in ((0.02, 0), (0.26, 12), (0.5, 24),
                                        (0.76, 37), (1.0, 49)))
        runner.logger.info(f'budget curve (input -> executed share of '
                           f'block compute): {points}')

    def _checkpoint_interval(self, runner) -> Optional[int]:
        hooks = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
        return hooks[0].interval if hooks else None

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        interval = self._checkpoint_interval(runner)
        if (interval and self.every_n_train_iters(runner, interval)) or \
                self.is_last_train_iter(runner):
            self.calibrate(runner, runner.iter + 1)

    def before_val_epoch(self, runner) -> None:
        if self._done_at != runner.iter:
            self.calibrate(runner, runner.iter)
