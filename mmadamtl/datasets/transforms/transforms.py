"""Geometric transforms that keep the image and every task map aligned."""
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.registry import TRANSFORMS

from mmadamtl.utils import TASK_BY_FIELD


def _task_fields(results: dict) -> List[str]:
    return list(results.get('task_fields', []))


@TRANSFORMS.register_module()
class MultiTaskResize(BaseTransform):
    """Resize the image bilinearly and every task map with nearest
    neighbour (labels and ignore marks must not blend).

    Required Keys:

    - img
    - task_fields (the ``gt_*`` keys of the task maps)

    Modified Keys:

    - img, img_shape
    - every key in task_fields

    Added Keys:

    - scale_factor, keep_ratio

    Args:
        scale: Target ``(w, h)``; with ``keep_ratio`` the image is rescaled
            to fit inside it (mmcv's ``rescale`` rule).
        ratio_range: If set, ``scale`` is multiplied by a factor drawn
            uniformly from this range for each image (random rescale).
        keep_ratio: Keep the aspect ratio.
    """

    def __init__(self,
                 scale: Tuple[int, int],
                 ratio_range: Optional[Tuple[float, float]] = None,
                 keep_ratio: bool = True) -> None:
        self.scale = tuple(scale)
        self.ratio_range = ratio_range
        self.keep_ratio = keep_ratio

    @cache_randomness
    def _target_scale(self) -> Tuple[int, int]:
        if self.ratio_range is None:
            return self.scale
        ratio = np.random.uniform(*self.ratio_range)
        return int(self.scale[0] * ratio), int(self.scale[1] * ratio)

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        scale = self._target_scale()
        if self.keep_ratio:
            new_w, new_h = mmcv.rescale_size((w, h), scale)
        else:
            new_w, new_h = scale
        results['img'] = mmcv.imresize(img, (new_w, new_h),
                                       interpolation='bilinear')
        for key in _task_fields(results):
            results[key] = mmcv.imresize(results[key], (new_w, new_h),
                                         interpolation='nearest')
        results['img_shape'] = (new_h, new_w)
        results['scale_factor'] = (new_w / w, new_h / h)
        results['keep_ratio'] = self.keep_ratio
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'ratio_range={self.ratio_range}, '
                f'keep_ratio={self.keep_ratio})')


@TRANSFORMS.register_module()
class MultiTaskRandomCrop(BaseTransform):
    """Crop the image and every task map at the same random window.

    Required Keys:

    - img
    - task_fields

    Modified Keys:

    - img, img_shape
    - every key in task_fields

    Args:
        crop_size: ``(h, w)`` of the crop; smaller images are left whole
            (the data preprocessor pads the batch).
    """

    def __init__(self, crop_size: Tuple[int, int]) -> None:
        assert crop_size[0] > 0 and crop_size[1] > 0
        self.crop_size = tuple(crop_size)

    @cache_randomness
    def _crop_box(self, h: int, w: int) -> Tuple[int, int, int, int]:
        ch, cw = min(self.crop_size[0], h), min(self.crop_size[1], w)
        y0 = np.random.randint(0, h - ch + 1)
        x0 = np.random.randint(0, w - cw + 1)
        return y0, y0 + ch, x0, x0 + cw

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        y0, y1, x0, x1 = self._crop_box(h, w)
        results['img'] = results['img'][y0:y1, x0:x1]
        for key in _task_fields(results):
            results[key] = results[key][y0:y1, x0:x1]
        results['img_shape'] = (y1 - y0, x1 - x0)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(crop_size={self.crop_size})'


@TRANSFORMS.register_module()
class MultiTaskRandomFlip(BaseTransform):
    """Horizontal flip of the image and every task map.

    Surface normals are vectors, so their x component changes sign. Label
    maps whose classes come in left/right pairs swap them: a dataset lists
    them as ``results['flip_pairs'] = {task: [(left, right), ...]}`` (or
    pass ``flip_pairs`` here to override).

    Required Keys:

    - img
    - task_fields
    - flip_pairs (optional)

    Modified Keys:

    - img
    - every key in task_fields

    Added Keys:

    - flip, flip_direction

    Args:
        prob: Probability of flipping.
        flip_pairs: Per-task left/right label pairs.
    """

    def __init__(self,
                 prob: float = 0.5,
                 flip_pairs: Optional[Dict[str, Sequence[Tuple[int,
                                                               int]]]] = None
                 ) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob
        self.flip_pairs = flip_pairs

    @cache_randomness
    def _do_flip(self) -> bool:
        return np.random.rand() < self.prob

    def transform(self, results: dict) -> dict:
        flip = self._do_flip()
        results['flip'] = flip
        results['flip_direction'] = 'horizontal' if flip else None
        if not flip:
            return results
        results['img'] = np.ascontiguousarray(results['img'][:, ::-1])
        pairs = self.flip_pairs
        if pairs is None:
            pairs = results.get('flip_pairs') or {}
        for key in _task_fields(results):
            spec = TASK_BY_FIELD[key]
            gt = np.ascontiguousarray(results[key][:, ::-1])
            if spec.kind == 'normals':
                gt[..., 0] *= -1
            for left, right in pairs.get(spec.name, ()):
                is_left, is_right = gt == left, gt == right
                gt[is_left], gt[is_right] = right, left
            results[key] = gt
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'flip_pairs={self.flip_pairs})')
