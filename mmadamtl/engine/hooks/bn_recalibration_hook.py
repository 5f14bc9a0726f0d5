"""Test a controllable model's sub-network with its BatchNorm statistics
re-estimated for it (``tools/test.py --recalibrate-bn N``)."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .budget_schedule_hook import _unwrap


@HOOKS.register_module()
class BNRecalibrationHook(Hook):
    """Before the test loop, re-estimate the BatchNorm statistics of the
    sub-network the controllable model runs on the test images
    (:func:`~mmadamtl.apis.bn_recalibration.recalibrate_bn` on
    ``num_images`` training images through the training pipeline, as
    ``tools/deploy.py --recalibrate-bn`` does for the narrow model), load
    them for the test, and put the trained statistics back after it.

    The sub-network is the one the model's settings (budget and
    preference through its lookup table, or a fixed sub-network) give for
    the first test batch's input size; a later batch that would run
    another one (another input size under a budget) stops the test with
    an error rather than be measured with another sub-network's
    statistics (the trained statistics put back first; after another
    error in the test loop the model keeps the re-estimated ones, which
    ``tools/test.py`` does not use further).

    Args:
        num_images: Training images to re-estimate on (>= 1).
        batch_size: Images per forward (default: the
            ``train_dataloader``'s).
        seed: Seed of the training pipeline's augmentations.
    """
    priority = 'LOW'

    def __init__(self, num_images: int = 256,
                 batch_size: Optional[int] = None, seed: int = 0) -> None:
        if isinstance(num_images, bool) or not isinstance(num_images, int) \
                or num_images < 1:
            raise ValueError(f'BNRecalibrationHook: num_images must be an '
                             f'int >= 1, got {num_images!r}')
        if batch_size is not None and (
                isinstance(batch_size, bool) or
                not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f'BNRecalibrationHook: batch_size must be an '
                             f'int >= 1 or None, got {batch_size!r}')
        self.num_images, self.batch_size, self.seed = \
            num_images, batch_size, seed
        self._control = None
        self._saved = None

    @staticmethod
    def _model(runner):
        from mmadamtl.models.segmentors import ControllableEncoderDecoder
        model = _unwrap(runner.model)
        if not isinstance(model, ControllableEncoderDecoder):
            raise TypeError(f'BNRecalibrationHook needs a controllable model '
                            f'(ControllableEncoderDecoder), got '
                            f'{type(model).__name__}')
        return model

    @staticmethod
    def _control_of(model, data_batch):
        with torch.no_grad():
            inputs = model.data_preprocessor(data_batch, False)['inputs']
        return model.control(tuple(inputs.shape[2:])), tuple(
            inputs.shape[2:])

    def before_test(self, runner) -> None:
        from mmadamtl.apis.bn_recalibration import (recalibrate_bn,
                                                    train_batches)
        model = self._model(runner)
        first = next(iter(runner.test_dataloader), None)
        if first is None:
            raise ValueError('BNRecalibrationHook: the test set is empty')
        self._control, size = self._control_of(model, first)
        batches = train_batches(runner.cfg, self.num_images,
                                self.batch_size, self.seed)
        stats = recalibrate_bn(model, batches, self._control)
        state = model.state_dict()
        self._saved = {k: state[k].clone() for k in stats}
        model.load_state_dict(stats, strict=False)
        layers = sum(k.endswith('.running_mean') for k in stats)
        runner.logger.info(
            f'BatchNorm statistics of {layers} layers re-estimated on '
            f'{self.num_images} training images for the sub-network run at '
            f'input size {size[0]}x{size[1]}: {self._control}')

    def before_test_iter(self, runner, batch_idx: int,
                         data_batch=None) -> None:
        if self._control is None or data_batch is None:
            return
        control, size = self._control_of(self._model(runner), data_batch)
        if control != self._control:
            self.after_test(runner)
            raise ValueError(
                f'BNRecalibrationHook: test batch {batch_idx} (input size '
                f'{size[0]}x{size[1]}) runs another sub-network than the '
                f'first batch, whose statistics were re-estimated; test at '
                f'one input size or with a fixed sub-network')

    def after_test(self, runner) -> None:
        if self._saved is not None:
            self._model(runner).load_state_dict(self._saved, strict=False)
        self._saved, self._control = None, None
