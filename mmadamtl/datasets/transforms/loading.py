"""Reading multi-task annotations in the public on-disk encodings.

Every reader names the file it refuses: a header declaring more than
``MAX_PIXELS`` (checked before decoding), a label PNG that is not 8-bit,
a saliency image that is not 8-bit, an array with NaN or infinity, an
``.npz`` archive named ``.npy``.
"""
import os.path as osp
import warnings
from typing import Callable, Dict, Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image

from mmadamtl.utils import TASKS

# PASCAL part names -> the 6 part labels (1 head, 2 torso, 3 upper arm,
# 4 lower arm/hand, 5 upper leg, 6 lower leg/foot).
PASCAL_PART_LABELS = {
    **dict.fromkeys(('hair', 'head', 'lear', 'lebrow', 'leye', 'mouth',
                     'nose', 'rear', 'rebrow', 'reye'), 1),
    **dict.fromkeys(('neck', 'torso'), 2),
    **dict.fromkeys(('luarm', 'ruarm'), 3),
    **dict.fromkeys(('llarm', 'rlarm', 'lhand', 'rhand'), 4),
    **dict.fromkeys(('luleg', 'ruleg'), 5),
    **dict.fromkeys(('llleg', 'rlleg', 'lfoot', 'rfoot'), 6),
}
PASCAL_PERSON_ID = 15


# Largest image or annotation (height x width) decoded; see
# BaseMTDataset.max_pixels.
MAX_PIXELS = 100_000_000


def check_image_header(path: str, max_pixels: int = MAX_PIXELS,
                       min_side: int = 1, what: str = 'image') -> tuple:
    """The (width, height) an image file declares, read from its header
    without decoding it.

    Raises:
        ValueError: Naming ``path``: not a readable image (e.g. zero bytes),
            more than ``max_pixels`` pixels, or a side below ``min_side``.
    """
    # PIL's own bomb check would refuse without saying the size: ours
    # reads the header only, so it is lifted while the header is read.
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
    except (OSError, SyntaxError, ValueError) as e:
        size = osp.getsize(path) if osp.isfile(path) else 0
        raise ValueError(f'{what} {path} ({size} bytes) is not a readable '
                         f'image: {e}') from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    if w * h > max_pixels:
        raise ValueError(
            f'{what} {path} declares {w}x{h} = {w * h / 1e6:.0f} megapixels, '
            f'above the limit of {max_pixels / 1e6:g} (the dataset\'s '
            f'max_pixels); it is not decoded')
    if min(w, h) < min_side:
        raise ValueError(f'{what} {path} is {w}x{h}: each side must be at '
                         f'least {min_side} pixels (the dataset\'s '
                         f'min_side)')
    return w, h


def _require(path: str, task: str) -> None:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{task}: annotation file not found: {path}')


def _loadmat(path: str, key: str, task: str):
    from scipy.io import loadmat
    _require(path, task)
    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises several types for corrupt files
        raise ValueError(
            f'{task}: cannot read MATLAB file {path}: {e}') from e
    if key not in mat:
        raise ValueError(f'{task}: MATLAB file {path} has no key {key!r} '
                         f'(keys: {sorted(k for k in mat if k[0] != "_")})')
    return mat[key]


def _read_png(path: str, task: str,
              max_pixels: int = MAX_PIXELS) -> np.ndarray:
    _require(path, task)
    check_image_header(path, max_pixels, what=f'{task}: annotation')
    try:
        with Image.open(path) as img:
            # PIL keeps palette indices (VOC label PNGs are palettised).
            return np.array(img)
    except Exception as e:
        raise ValueError(f'{task}: cannot read image {path}: {e}') from e


def _ann_png(ann: dict, task: str) -> np.ndarray:
    """The PNG of an annotation record, within its dataset's
    ``max_pixels``."""
    return _read_png(ann['path'], task, ann.get('max_pixels', MAX_PIXELS))


def _read_npy(path: str, task: str) -> np.ndarray:
    _require(path, task)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f'{task}: cannot read array {path}: {e}') from e
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise ValueError(f'{task}: {path} is an .npz archive, not one .npy '
                         f'array')
    if arr.dtype.kind == 'f':
        bad = int(np.size(arr) - np.isfinite(arr).sum())
        if bad:
            raise ValueError(f'{task}: {path} has {bad} NaN or infinite '
                             f'value(s); mark unannotated pixels with the '
                             f'dataset\'s ignore value instead')
    elif arr.dtype.kind not in 'biu':
        raise ValueError(f'{task}: {path} holds {arr.dtype} values, not '
                         f'numbers')
    return arr


def load_label_png(ann: dict, task: str, shape) -> np.ndarray:
    """Class-index PNG; ``reduce_zero_label`` maps 0 to ignore and shifts."""
    label = _ann_png(ann, task)
    if label.ndim != 2:
        raise ValueError(f'{task}: {ann["path"]} must be a single-channel '
                         f'label image, got shape {label.shape}')
    if label.dtype != np.uint8:
        # A 16-bit PNG's 40000 would wrap to class 64.
        raise ValueError(f'{task}: {ann["path"]} is a {label.dtype} image; '
                         f'label PNGs must be 8-bit class indices (mode L '
                         f'or P)')
    if ann.get('reduce_zero_label', False):
        label = label.astype(np.int16) - 1
        label[label < 0] = 255
        label = label.astype(np.uint8)
    return label


def load_pascal_parts(ann: dict, task: str, shape) -> np.ndarray:
    """PASCAL-Part ``anno`` struct -> 6-part label map, 255 if no person."""
    anno = _loadmat(ann['path'], 'anno', task)
    try:
        objects = anno[0][0][1][0]
        target = None
        for obj in objects:
            parts = obj[3]
            if int(obj[1][0][0]) != PASCAL_PERSON_ID or len(parts) == 0:
                continue
            if target is None:
                target = np.zeros(obj[2].shape, dtype=np.uint8)
            for part in parts[0]:
                name = str(part[0][0])
                if name not in PASCAL_PART_LABELS:
                    raise ValueError(f'unknown part name {name!r}')
                target[part[1].astype(bool)] = PASCAL_PART_LABELS[name]
    except (IndexError, TypeError, ValueError) as e:
        raise ValueError(f'{task}: malformed PASCAL-Part file '
                         f'{ann["path"]}: {e}') from e
    if target is None:
        # No annotated person: the task is ignored on this image.
        target = np.full(shape, 255, dtype=np.uint8)
    return target


def load_saliency_png(ann: dict, task: str, shape) -> np.ndarray:
    sal = _ann_png(ann, task)
    if sal.dtype == bool:  # a 1-bit PNG: already the mask
        return sal.astype(np.uint8)
    if sal.dtype != np.uint8:
        # A float image in [0, 1] would read as all background.
        raise ValueError(f'{task}: {ann["path"]} is a {sal.dtype} image; '
                         f'saliency images must be 8-bit (0-255)')
    if sal.ndim == 3:
        sal = sal[..., 0]
    return (sal.astype(np.float32) / 255. > 0.5).astype(np.uint8)


def _label_map(path: str, task: str) -> np.ndarray:
    return np.asarray(_loadmat(path, 'LabelMap', task))


def load_pascal_normals(ann: dict, task: str, shape) -> np.ndarray:
    """Distilled normals PNG -> unit vectors; zero (ignored) off the
    NYU-compatible PASCAL-Context classes listed in ``valid_ids``."""
    png = _ann_png(ann, task)
    if png.ndim != 3 or png.shape[2] < 3:
        raise ValueError(f'{task}: {ann["path"]} must be an RGB image, got '
                         f'shape {png.shape}')
    normals = 2. * png[..., :3].astype(np.float32) / 255. - 1.
    label_map = _label_map(ann['label_map'], task)
    if label_map.shape != normals.shape[:2]:
        raise ValueError(f'{task}: {ann["label_map"]} has shape '
                         f'{label_map.shape}, {ann["path"]} has '
                         f'{normals.shape[:2]}')
    valid = np.isin(label_map, np.asarray(ann['valid_ids']))
    normals[~valid] = 0
    return normals


def load_pascal_edge(ann: dict, task: str, shape) -> np.ndarray:
    """Edges of the PASCAL-Context ``LabelMap``: thinned |Laplacian| > 0."""
    from skimage.morphology import thin
    label_map = _label_map(ann['path'], task).astype(np.float64)
    lap = cv2.Laplacian(label_map, cv2.CV_64F)
    return thin(np.abs(lap) > 0).astype(np.uint8)


def load_npy(ann: dict, task: str, shape) -> np.ndarray:
    """NYUD ``.npy`` maps (depth, normals HxWx3, edges)."""
    arr = _read_npy(ann['path'], task).astype(np.float32)
    if task == 'edge':
        return (arr > 0.5).astype(np.uint8)
    return arr


DECODERS: Dict[str, Callable] = dict(
    label_png=load_label_png,
    pascal_parts_mat=load_pascal_parts,
    saliency_png=load_saliency_png,
    pascal_normals_png=load_pascal_normals,
    pascal_edge_mat=load_pascal_edge,
    npy=load_npy,
)


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(BaseTransform):
    """Load every task's ground truth named in ``results['ann_info']``.

    Each dataset records, per task, the file and its encoding
    (``dict(path=..., format=...)``, see :data:`DECODERS`). The maps are
    stored under the task's ``gt_*`` key and listed in
    ``results['task_fields']`` so the multi-task transforms find them.

    Required Keys:

    - ann_info (per task: ``path`` and ``format``)
    - ori_shape

    Added Keys:

    - one ``gt_*`` key per task (see ``mmadamtl.utils.TASKS``)
    - task_fields

    Args:
        tasks: Tasks to load; ``None`` loads all the dataset provides.
    """

    def __init__(self, tasks: Optional[Sequence[str]] = None) -> None:
        self.tasks = None if tasks is None else list(tasks)

    def transform(self, results: dict) -> dict:
        ann_info = results['ann_info']
        tasks = list(ann_info) if self.tasks is None else self.tasks
        shape = tuple(results['ori_shape'][:2])
        fields = []
        for task in tasks:
            if task not in ann_info:
                raise KeyError(f'task {task!r} has no annotation in sample '
                               f'{results.get("img_path")}; it has '
                               f'{list(ann_info)}')
            ann = ann_info[task]
            gt = DECODERS[ann['format']](ann, task, shape)
            if gt.shape[:2] != shape:
                raise ValueError(
                    f'{task}: {ann["path"]} has size {gt.shape[:2]}, but '
                    f'the image {results.get("img_path")} has {shape}')
            key = TASKS[task].gt_field
            results[key] = gt
            fields.append(key)
        results['task_fields'] = fields
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(tasks={self.tasks})'
