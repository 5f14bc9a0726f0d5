"""mmengine's CheckpointHook, with writes that a kill cannot corrupt."""
import glob
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from mmadamtl.utils.safe_io import write_text


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that never leaves a work dir
    without a usable checkpoint.

    mmengine's hook deletes the oldest checkpoint *before* writing the new
    one and writes both the checkpoint and ``last_checkpoint`` in place:
    with ``max_keep_ckpts=1`` a kill during the write leaves no usable
    checkpoint. Here (local paths) the checkpoint is written to a
    temporary file and renamed, ``last_checkpoint`` is replaced
    atomically, and only then is the oldest checkpoint removed.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        # Temporary files a killed save left behind.
        if is_main_process() and isinstance(self.file_backend,
                                            LocalBackend):
            for path in glob.glob(osp.join(self.out_dir, '.*.pth.part')):
                os.remove(path)

    def _save_checkpoint_with_step(self, runner, step, meta):
        drop = []
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                drop.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        local = isinstance(self.file_backend, LocalBackend)
        written = f'.{filename}.part' if local else filename
        runner.save_checkpoint(
            self.out_dir,
            written,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        if local:
            os.replace(osp.join(self.out_dir, written), self.last_ckpt)
        write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                   self.last_ckpt, overwrite=True)
        for old in drop:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
