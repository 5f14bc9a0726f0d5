"""NYUD-v2 in the multi-task layout."""
from mmseg.registry import DATASETS

from .base_mt import BaseMTDataset


@DATASETS.register_module()
class NYUDMTDataset(BaseMTDataset):
    """NYUD-v2 multi-task dataset.

    Layout under ``data_root``::

        images/<id>.jpg
        gt_sets/{train,val}.txt
        segmentation/<id>.png    0 = ignore, then classes 1..40 -> 0..39
        depth/<id>.npy           metres, 0 = ignore
        normals/<id>.npy         HxWx3 in [-1, 1], all-zero = ignore
        edge/<id>.npy            0/1
    """
    SUPPORTED_TASKS = ('semseg', 'normals', 'edge', 'depth')
    METAINFO = dict(
        # Label files keep 0 for unlabelled pixels: written predictions
        # store class c as c + 1 (MultiTaskMetric.output_dir).
        zero_label_ignored=('semseg', ),
        classes=(
            'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
            'door', 'window', 'bookshelf', 'picture', 'counter', 'blinds',
            'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
            'floor mat', 'clothes', 'ceiling', 'books', 'refridgerator',
            'television', 'paper', 'towel', 'shower curtain', 'box',
            'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp',
            'bathtub', 'bag', 'otherstructure', 'otherfurniture', 'otherprop'))

    def split_file(self) -> str:
        return self._path('gt_sets', f'{self.split}.txt')

    def image_path(self, name: str) -> str:
        return self._path('images', f'{name}.jpg')

    def task_annotation(self, task: str, name: str) -> dict:
        if task == 'semseg':
            return dict(
                path=self._path('segmentation', f'{name}.png'),
                format='label_png',
                reduce_zero_label=True)
        folder = dict(normals='normals', edge='edge', depth='depth')[task]
        return dict(path=self._path(folder, f'{name}.npy'), format='npy')
