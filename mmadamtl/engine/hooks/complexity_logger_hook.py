"""Log the executed compute of an adaptive model."""
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmadamtl.evaluation.complexity import (image_complexity,
                                            summarize_complexity)


@HOOKS.register_module()
class ComplexityLoggerHook(Hook):
    """Logs mean executed GFLOPs and per-stage keep rates.

    Training: the segmentor's ``loss`` returns what each batch executed
    as logged values (``encoder_gflops``, ``block_keep_s<i>``,
    ``token_keep_s<i>``; see ``training_complexity``), which mmengine's
    ``RuntimeInfoHook`` puts in the message hub as ``train/...``; under
    distributed training this hook first averages them over the ranks,
    in the iteration's outputs, every ``interval`` iterations (default:
    every one). Validation and test: what every prediction executed
    (``mmadamtl.evaluation.image_complexity``), averaged and logged at the
    end of the loop as ``val/...`` or ``test/...``, in the loop's epoch
    record, over every rank's images.

    Runs before the ``RuntimeInfoHook`` and the ``LoggerHook`` (priority
    ``HIGHEST``), so the figures logged are the averaged ones.
    """
    priority = 'HIGHEST'

    def __init__(self, interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'ComplexityLoggerHook: interval must be >= 1, '
                             f'got {interval!r}')
        self.interval = interval
        self._eval = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not outputs or dist.get_world_size() == 1 or \
                not self.every_n_train_iters(runner, self.interval):
            return
        keys = [k for k in outputs if k == 'encoder_gflops' or
                k.startswith(('block_keep_s', 'token_keep_s'))]
        if not keys:
            return
        values = torch.stack([outputs[k].detach().float() for k in keys])
        dist.all_reduce(values, op='mean')
        outputs.update(zip(keys, values.unbind()))

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
