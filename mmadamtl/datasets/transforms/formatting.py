"""Pack an image and its task maps into inputs and a SegDataSample."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import PixelData
from mmseg.registry import TRANSFORMS
from mmseg.structures import SegDataSample

from mmadamtl.utils import TASK_BY_FIELD


def map_to_tensor(gt: np.ndarray, kind: str) -> torch.Tensor:
    """HxW or HxWxC array -> CxHxW tensor (long for labels)."""
    if gt.ndim == 2:
        gt = gt[None]
    else:
        gt = gt.transpose(2, 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(gt))
    return tensor.long() if kind in ('seg', 'binary') else tensor.float()


@TRANSFORMS.register_module()
class PackMultiTaskInputs(BaseTransform):
    """Pack the image as a CxHxW tensor and every task map as a
    ``gt_<task>`` :class:`PixelData` of a :class:`SegDataSample`.

    Unlike mmseg's ``PackSegInputs`` no task field is dropped.

    Required Keys:

    - img
    - task_fields
    - the ``meta_keys`` present

    Added Keys:

    - inputs, data_samples (with one ``gt_*`` field per task)

    Args:
        meta_keys: Keys copied into the data sample's metainfo.
    """

    def __init__(self,
                 meta_keys: Sequence[str] = (
                     'img_path', 'ori_shape', 'img_shape', 'pad_shape',
                     'scale_factor', 'flip', 'flip_direction', 'sample_idx',
                     'task_names', 'img_id')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        img = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = SegDataSample()
        names = []
        for key in results.get('task_fields', []):
            spec = TASK_BY_FIELD[key]
            sample.set_field(
                PixelData(data=map_to_tensor(results[key], spec.kind)), key)
            names.append(spec.name)
        results['task_names'] = names
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(inputs=img, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
