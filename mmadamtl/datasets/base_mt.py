"""Shared logic of the multi-task datasets: split files, per-task file
records and up-front checks that every file exists and every image is of
a size that can be decoded."""
import os.path as osp
import posixpath
from typing import Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset

from mmadamtl.utils import check_tasks

# Images larger than MAX_PIXELS (declared in their header) are refused
# before decoding: a 30000 x 30000 PNG of 875 KB decodes to 3.5 GB.
from .transforms.loading import MAX_PIXELS, check_image_header


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
            exists and that every image's header declares a decodable size
            (at most ``max_pixels``, each side at least ``min_side``), so a
            bad file fails at start-up, naming it, not hours later.
        max_pixels: Largest image (height x width) accepted.
        min_side: Smallest image side accepted.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """
    SUPPORTED_TASKS: Sequence[str] = ()

    def __init__(self,
                 tasks: Sequence[str],
                 split: str = 'train',
                 data_root: str = '',
                 pipeline: Sequence = (),
                 check_files: bool = True,
                 max_pixels: int = MAX_PIXELS,
                 min_side: int = 8,
                 **kwargs) -> None:
        self.tasks = check_tasks(
            tasks, self.SUPPORTED_TASKS, where=f'{type(self).__name__}.tasks')
        self.split = split
        self.check_files = check_files
        self.max_pixels, self.min_side = int(max_pixels), int(min_side)
        super().__init__(data_root=data_root, pipeline=pipeline, **kwargs)

    def prepare_data(self, idx):
        """As mmengine's, after checking the image's header when
        construction did not (``check_files=False``): no image above
        ``max_pixels`` is ever decoded."""
        if not self.check_files:
            check_image_header(self.get_data_info(idx)['img_path'],
                               self.max_pixels, self.min_side)
        return super().prepare_data(idx)

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
        """The image ids of the split file: names relative to the data
        root's folders (UTF-8, a byte-order mark is skipped). An absolute
        id, one that leaves the root (``..``) and a repeated id are
        errors naming the file and the line."""
        path = self.split_file()
        where = f'{type(self).__name__}: split file {path}'
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{type(self).__name__}: split file for split '
                f'{self.split!r} not found: {path}')
        with open(path, 'rb') as f:
            raw = f.read()
        try:
            text = raw.decode('utf-8-sig')
        except UnicodeDecodeError as e:
            line = raw[:e.start].count(b'\n') + 1
            raise ValueError(f'{where}: line {line} is not UTF-8 text '
                             f'(byte {raw[e.start]:#04x}); save the file '
                             f'as UTF-8') from None
        names, seen = [], {}
        for i, line in enumerate(text.splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            parts = name.replace('\\', '/').split('/')
            if osp.isabs(name) or name.startswith(('/', '\\')) or \
                    '..' in parts or ':' in parts[0]:
                raise ValueError(
                    f'{where}, line {i}: image id {name!r} must be a name '
                    f'inside the data root (no absolute path, no "..")')
            # 'a/x', './a/x' and 'a//x' are one image.
            key = posixpath.normpath('/'.join(parts))
            if key in seen:
                raise ValueError(f'{where}, line {i}: image id {name!r} '
                                 f'repeats line {seen[key]}')
            seen[key] = i
            names.append(name)
        if not names:
            raise ValueError(f'{where} lists no image')
        return names

    def load_data_list(self) -> List[dict]:
        flip_pairs: Optional[Dict] = self.metainfo.get('flip_pairs')
        data_list, missing = [], []
        for name in self.read_split():
            info = dict(
                img_id=name,
                img_path=self.image_path(name),
                ann_info={
                    task: self.task_annotation(task, name)
                    for task in self.tasks
                })
            for ann in info['ann_info'].values():
                ann.setdefault('max_pixels', self.max_pixels)
            if flip_pairs:
                info['flip_pairs'] = flip_pairs
            if self.check_files:
                paths = [info['img_path']] + [
                    p for ann in info['ann_info'].values()
                    for k, p in ann.items() if k in ('path', 'label_map')
                ]
                missing += [p for p in paths if not osp.isfile(p)]
                if osp.isfile(info['img_path']):
                    check_image_header(info['img_path'], self.max_pixels,
                                       self.min_side)
            data_list.append(info)
        if missing:
            shown = '\n  '.join(missing[:10])
            raise FileNotFoundError(
                f'{type(self).__name__} (split {self.split!r}, root '
                f'{self.data_root!r}): {len(missing)} file(s) missing, e.g.:'
                f'\n  {shown}')
        return data_list
