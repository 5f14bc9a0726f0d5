"""Log the executed compute of an adaptive model."""
from typing import Optional

from mmengine.hooks import Hook, LoggerHook
from mmseg.registry import HOOKS

from mmadamtl.evaluation.complexity import (image_complexity,
                                            summarize_complexity)

from .budget_schedule_hook import _unwrap


@HOOKS.register_module()
class ComplexityLoggerHook(Hook):
    """Logs mean executed GFLOPs and per-stage keep rates.

    Training: every ``interval`` iterations (by default the
    ``LoggerHook``'s, so the figures land in its log lines), from the
    backbone's ``last_stats`` (the decisions of that iteration), as
    ``train/encoder_gflops``, ``train/block_keep_s<i>`` and
    ``train/token_keep_s<i>``. Validation and test: what every prediction
    executed (``mmadamtl.evaluation.image_complexity``), averaged and
    logged at the end of the loop as ``val/...`` or ``test/...``.
    """
    priority = 'BELOW_NORMAL'

    def __init__(self, interval: Optional[int] = None) -> None:
        self.interval = interval
        self._eval = []

    def before_train(self, runner) -> None:
        if self.interval is None:
            loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
            self.interval = loggers[0].interval if loggers else 50

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
            record = image_complexity(sample)
            if record:
                self._eval.append(record)

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
        for key, mean in summarize_complexity(self._eval).items():
            if isinstance(mean, float):
                parts.append(f'{key}={mean:.4f}')
                runner.message_hub.update_scalar(f'{prefix}/{key}', mean)
            else:
                for i, v in enumerate(mean):
                    runner.message_hub.update_scalar(f'{prefix}/{key}_s{i}',
                                                     v)
                parts.append(f'{key}=' + '/'.join(f'{v:.2f}' for v in mean))
        runner.logger.info(f'{prefix} executed compute (per image): ' +
                           ', '.join(parts))
        self._eval.clear()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._flush(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._flush(runner, 'test')
