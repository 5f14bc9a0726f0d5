"""Shared logic of the multi-task datasets: split files, per-task file
records and up-front checks that every file exists."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset

from mmadamtl.utils import check_tasks


class BaseMTDataset(BaseDataset):
    """A dense multi-task dataset stored one file per image and task.

    Subclasses give the layout: :attr:`SUPPORTED_TASKS`, :meth:`split_file`,
    :meth:`image_path` and :meth:`task_annotation`, which returns
    ``dict(path=..., format=...)`` read by ``LoadMultiTaskAnnotations``.

    Args:
        tasks: Tasks to load; each must be one the dataset provides.
        split: Name of the split (``'train'``, ``'val'``).
        data_root: Root folder of the dataset.
        pipeline: Transforms.
        check_files: Check at construction that every file of the split
            exists, so a missing file fails at start-up, not hours later.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """
    SUPPORTED_TASKS: Sequence[str] = ()

    def __init__(self,
                 tasks: Sequence[str],
                 split: str = 'train',
                 data_root: str = '',
                 pipeline: Sequence = (),
                 check_files: bool = True,
                 **kwargs) -> None:
        self.tasks = check_tasks(
            tasks, self.SUPPORTED_TASKS, where=f'{type(self).__name__}.tasks')
        self.split = split
        self.check_files = check_files
        super().__init__(data_root=data_root, pipeline=pipeline, **kwargs)

    # -- layout, given by subclasses -------------------------------------
    def split_file(self) -> str:
        raise NotImplementedError

    def image_path(self, name: str) -> str:
        raise NotImplementedError

    def task_annotation(self, task: str, name: str) -> dict:
        raise NotImplementedError

    # ---------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return osp.join(self.data_root, *parts)

    def read_split(self) -> List[str]:
        path = self.split_file()
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{type(self).__name__}: split file for split '
                f'{self.split!r} not found: {path}')
        with open(path, encoding='utf-8') as f:
            names = [line.strip() for line in f if line.strip()]
        if not names:
            raise ValueError(f'{type(self).__name__}: split file {path} '
                             f'lists no image')
        return names

    def load_data_list(self) -> List[dict]:
        flip_pairs: Optional[Dict] = self.metainfo.get('flip_pairs')
        data_list, missing = [], []
        for name in self.read_split():
            info = dict(
                img_path=self.image_path(name),
                ann_info={
                    task: self.task_annotation(task, name)
                    for task in self.tasks
                })
            if flip_pairs:
                info['flip_pairs'] = flip_pairs
            if self.check_files:
                paths = [info['img_path']] + [
                    p for ann in info['ann_info'].values()
                    for k, p in ann.items() if k in ('path', 'label_map')
                ]
                missing += [p for p in paths if not osp.isfile(p)]
            data_list.append(info)
        if missing:
            shown = '\n  '.join(missing[:10])
            raise FileNotFoundError(
                f'{type(self).__name__} (split {self.split!r}, root '
                f'{self.data_root!r}): {len(missing)} file(s) missing, e.g.:'
                f'\n  {shown}')
        return data_list
