"""Normalise, pad and stack a multi-task batch."""
import math
from numbers import Number
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from mmadamtl.utils import TASKS


@MODELS.register_module()
class MultiTaskDataPreProcessor(SegDataPreProcessor):
    """:class:`SegDataPreProcessor` that pads every task field.

    mmseg's version pads only ``gt_sem_seg``/``gt_edge_map``/
    ``gt_depth_map`` and requires equal sizes at test time. Here images of
    any size are padded (right and bottom) to the largest in the batch,
    rounded up to ``size_divisor`` (or to ``size``), in training and
    testing alike, and each task map is padded with its ignore value (255
    for labels, 0 for normals and depth), so padding never enters a loss.

    Args: as :class:`SegDataPreProcessor`; ``test_cfg`` may override
        ``size``/``size_divisor`` for testing. ``seg_pad_val`` is not used:
        each task's own ignore value is.
    """

    def __init__(self,
                 mean: Sequence[Number] = None,
                 std: Sequence[Number] = None,
                 size: Optional[tuple] = None,
                 size_divisor: Optional[int] = None,
                 pad_val: Number = 0,
                 bgr_to_rgb: bool = False,
                 rgb_to_bgr: bool = False,
                 test_cfg: Optional[dict] = None) -> None:
        super().__init__(
            mean=mean,
            std=std,
            size=size,
            size_divisor=size_divisor,
            pad_val=pad_val,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            test_cfg=test_cfg)

    def _padded_size(self, inputs, training: bool):
        size, divisor = self.size, self.size_divisor
        if not training and self.test_cfg:
            size = self.test_cfg.get('size', size)
            divisor = self.test_cfg.get('size_divisor', divisor)
        h = max(x.shape[1] for x in inputs)
        w = max(x.shape[2] for x in inputs)
        if size is not None:
            h, w = max(h, size[0]), max(w, size[1])
        if divisor:
            h = int(math.ceil(h / divisor)) * divisor
            w = int(math.ceil(w / divisor)) * divisor
        return h, w

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        data = self.cast_data(data)
        inputs = data['inputs']
        data_samples = data.get('data_samples', None)
        if self.channel_conversion and inputs[0].size(0) == 3:
            inputs = [x[[2, 1, 0], ...] for x in inputs]
        inputs = [x.float() for x in inputs]
        if self._enable_normalize:
            inputs = [(x - self.mean) / self.std for x in inputs]

        h, w = self._padded_size(inputs, training)
        padded = []
        for i, x in enumerate(inputs):
            pad = (0, w - x.shape[2], 0, h - x.shape[1])
            padded.append(F.pad(x, pad, value=self.pad_val))
            if data_samples is None:
                continue
            sample = data_samples[i]
            for spec in TASKS.values():
                if spec.gt_field in sample:
                    gt = sample.get(spec.gt_field).data
                    sample.set_field(
                        PixelData(data=F.pad(gt, pad,
                                             value=spec.ignore_value)),
                        spec.gt_field)
            sample.set_metainfo(
                dict(pad_shape=(h, w), padding_size=[0, pad[1], 0, pad[3]]))
        return dict(inputs=torch.stack(padded), data_samples=data_samples)
