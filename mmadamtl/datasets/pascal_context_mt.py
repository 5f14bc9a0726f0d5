"""PASCAL-Context in the multi-task layout ("PASCAL_MT")."""
import os.path as osp

from mmseg.registry import DATASETS

from .base_mt import BaseMTDataset

# PASCAL-Context (459-class LabelMap) ids whose surface normals are valid:
# the NYU-compatible classes plus tvmonitor (427).
PASCAL_NORMALS_VALID_IDS = (
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38,
    39, 41, 43, 46, 49, 50, 51, 53, 55, 56, 59, 61, 62, 65, 66, 68, 69, 72,
    73, 78, 83, 84, 85, 87, 88, 95, 96, 101, 104, 105, 107, 111, 113, 115,
    122, 124, 135, 141, 142, 143, 146, 150, 154, 157, 158, 159, 165, 172,
    174, 181, 183, 184, 191, 193, 195, 197, 199, 202, 213, 215, 216, 219,
    220, 223, 225, 228, 230, 232, 233, 238, 239, 242, 243, 246, 250, 251,
    252, 255, 260, 261, 263, 269, 272, 273, 275, 281, 283, 284, 285, 286,
    287, 288, 290, 291, 292, 293, 295, 304, 307, 309, 310, 314, 315, 319,
    323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355, 357, 368,
    370, 371, 374, 379, 380, 383, 384, 397, 401, 403, 405, 407, 408, 411,
    412, 413, 414, 417, 419, 421, 423, 429, 430, 432, 440, 441, 442, 443,
    444, 446, 454, 457, 427)

PART_CLASSES = ('background', 'head', 'torso', 'upper arm', 'lower arm/hand',
                'upper leg', 'lower leg/foot')


@DATASETS.register_module()
class PascalContextMTDataset(BaseMTDataset):
    """PASCAL-Context multi-task dataset.

    Layout under ``data_root``::

        JPEGImages/<id>.jpg
        ImageSets/Context/{train,val}.txt
        semseg/VOC12/<id>.png           (or semseg/pascal-context/<id>.png)
        human_parts/<id>.mat            key 'anno' (PASCAL-Part struct)
        sal_distill/<id>.png
        normals_distill/<id>.png
        pascal-context/trainval/<id>.mat   key 'LabelMap' (edges, normals mask)

    Semseg: 21 classes, 0 = background, 255 = ignore. Parts: 6 parts +
    background, 255 on images without an annotated person. Saliency: /255 >
    0.5. Normals: ``2 * v / 255 - 1``, ignored off
    :data:`PASCAL_NORMALS_VALID_IDS`. Edges: thinned ``|Laplacian| > 0`` of
    the LabelMap. The 6 part labels have no sides, so no flip pairs.
    """
    SUPPORTED_TASKS = ('semseg', 'human_parts', 'saliency', 'normals', 'edge')
    METAINFO = dict(
        classes=('background', 'aeroplane', 'bicycle', 'bird', 'boat',
                 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
                 'diningtable', 'dog', 'horse', 'motorbike', 'person',
                 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'),
        part_classes=PART_CLASSES)
    NORMALS_VALID_IDS = PASCAL_NORMALS_VALID_IDS

    def split_file(self) -> str:
        return self._path('ImageSets', 'Context', f'{self.split}.txt')

    def image_path(self, name: str) -> str:
        return self._path('JPEGImages', f'{name}.jpg')

    def _label_map_path(self, name: str) -> str:
        return self._path('pascal-context', 'trainval', f'{name}.mat')

    def task_annotation(self, task: str, name: str) -> dict:
        if task == 'semseg':
            path = self._path('semseg', 'VOC12', f'{name}.png')
            if not osp.isfile(path):
                fallback = self._path('semseg', 'pascal-context',
                                      f'{name}.png')
                path = fallback if osp.isfile(fallback) else path
            return dict(path=path, format='label_png')
        if task == 'human_parts':
            return dict(
                path=self._path('human_parts', f'{name}.mat'),
                format='pascal_parts_mat')
        if task == 'saliency':
            return dict(
                path=self._path('sal_distill', f'{name}.png'),
                format='saliency_png')
        if task == 'normals':
            return dict(
                path=self._path('normals_distill', f'{name}.png'),
                label_map=self._label_map_path(name),
                valid_ids=self.NORMALS_VALID_IDS,
                format='pascal_normals_png')
        if task == 'edge':
            return dict(
                path=self._label_map_path(name), format='pascal_edge_mat')
        if task == 'depth':
            return dict(
                path=self._path('depth', f'{name}.npy'), format='npy')
        raise KeyError(task)
