"""Log the executed compute of an adaptive model."""
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmadamtl.evaluation.complexity import (image_complexity,
                                            summarize_complexity)

from .budget_schedule_hook import _unwrap


@HOOKS.register_module()
class ComplexityLoggerHook(Hook):
    """Logs mean executed GFLOPs and per-stage keep rates.

    Training: every ``interval`` iterations (default: every iteration,
    as the losses are, so the ``LoggerHook``'s window mean covers the same
    iterations as the losses'), from the backbone's ``last_stats`` (the
    decisions of that iteration), as ``train/encoder_gflops``,
    ``train/block_keep_s<i>`` and ``train/token_keep_s<i>``. Validation
    and test: what every prediction executed
    (``mmadamtl.evaluation.image_complexity``), averaged and logged at the
    end of the loop as ``val/...`` or ``test/...``, in the loop's epoch
    record. Under distributed training the figures are over all ranks
    (training: the mean of the ranks' batches; evaluation: every rank's
    images).

    Runs before the ``LoggerHook`` (priority ``NORMAL`` against its
    ``BELOW_NORMAL``), so a log line shows its own iteration's figures.
    """
    priority = 'NORMAL'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'ComplexityLoggerHook: interval must be >= 1, '
                             f'got {interval!r}')
        self.interval = interval
        self._eval = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        stats = getattr(_unwrap(runner.model).backbone, 'last_stats', None)
        if stats is None:
            return
        values = torch.cat([
            (stats.encoder_flops.detach().mean() / 1e9).view(1),
            stats.block_keep.mean(0), stats.token_keep.mean(0)
        ]).float()
        if dist.get_world_size() > 1:
            dist.all_reduce(values, op='mean')
        values = values.tolist()
        stages = stats.block_keep.shape[1]
        hub = runner.message_hub
        hub.update_scalar('train/encoder_gflops', values[0])
        for i in range(stages):
            hub.update_scalar(f'train/block_keep_s{i}', values[1 + i])
            hub.update_scalar(f'train/token_keep_s{i}',
                              values[1 + stages + i])

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
        records = self._eval
        if dist.get_world_size() > 1:
            records = [r for part in dist.all_gather_object(records)
                       for r in part]
        if not records:
            return
        parts = []
        for key, mean in summarize_complexity(records).items():
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

    # The LoggerHook writes the epoch record in its own after_val_epoch /
    # after_test_epoch; this hook's NORMAL priority puts the scalars in the
    # message hub before that.
    def after_val_epoch(self, runner, metrics=None) -> None:
        self._flush(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._flush(runner, 'test')
