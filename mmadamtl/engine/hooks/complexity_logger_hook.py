"""Log the executed compute of an adaptive model."""
from collections import defaultdict

import numpy as np
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from .budget_schedule_hook import _unwrap


@HOOKS.register_module()
class ComplexityLoggerHook(Hook):
    """Logs mean executed GFLOPs and per-stage keep rates.

    Training: every ``interval`` iterations, from the backbone's
    ``last_stats`` (the decisions of that iteration), as
    ``train/encoder_gflops``, ``train/block_keep_s<i>`` and
    ``train/token_keep_s<i>``. Validation and test: averaged over all the
    predictions' ``metainfo`` and logged at the end of the loop as
    ``val/...`` or ``test/...``.
    """
    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 50) -> None:
        self.interval = interval
        self._eval = defaultdict(list)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        stats = getattr(_unwrap(runner.model).backbone, 'last_stats', None)
        if stats is None:
            return
        hub = runner.message_hub
        hub.update_scalar('train/encoder_gflops',
                          float(stats.encoder_flops.mean()) / 1e9)
        for i, v in enumerate(stats.block_keep.mean(0).tolist()):
            hub.update_scalar(f'train/block_keep_s{i}', v)
        for i, v in enumerate(stats.token_keep.mean(0).tolist()):
            hub.update_scalar(f'train/token_keep_s{i}', v)

    def _collect(self, outputs) -> None:
        for sample in outputs or []:
            meta = sample.metainfo
            if 'gflops' in meta:
                self._eval['gflops'].append(meta['gflops'])
                self._eval['encoder_gflops'].append(meta['encoder_gflops'])
            policy = meta.get('policy')
            if policy:
                self._eval['block_keep'].append(policy['block_keep'])
                self._eval['token_keep'].append(policy['token_keep'])

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._collect(outputs)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self._collect(outputs)

    def _flush(self, runner, prefix: str) -> None:
        if not self._eval:
            return
        parts = []
        for key, values in self._eval.items():
            mean = np.mean(np.asarray(values, dtype=np.float64), axis=0)
            if np.ndim(mean) == 0:
                parts.append(f'{key}={mean:.4f}')
                runner.message_hub.update_scalar(f'{prefix}/{key}',
                                                 float(mean))
            else:
                for i, v in enumerate(mean):
                    runner.message_hub.update_scalar(
                        f'{prefix}/{key}_s{i}', float(v))
                parts.append(f'{key}=' + '/'.join(f'{v:.2f}' for v in mean))
        runner.logger.info(f'{prefix} executed compute (per image): ' +
                           ', '.join(parts))
        self._eval.clear()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._flush(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._flush(runner, 'test')
