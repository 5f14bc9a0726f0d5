"""A shared encoder with one decoder per dense task."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptConfigType, OptMultiConfig, OptSampleList

from mmadamtl.models.backbones.swin_checkpoint import check_pretrained_backbone
from mmadamtl.utils import TASKS, check_tasks


@MODELS.register_module()
class MultiTaskEncoderDecoder(BaseSegmentor):
    """Multi-task encoder-decoder segmentor.

    ``loss`` returns every task's loss keyed ``<task>.<loss name>``;
    ``predict`` fills one ``pred_<task>`` field per active task, resized to
    the original image and un-flipped (normals' x flips sign);
    ``_forward`` runs every head so FLOPs counters see the whole model.

    Args:
        backbone: Encoder config (e.g. mmseg's ``SwinTransformer``).
        decode_head: A ``MultiTaskHead`` config.
        neck: Optional neck.
        train_cfg: Unused, kept for mmseg's interface.
        test_cfg: ``dict(tasks=[...])`` restricts the tasks predicted.
        data_preprocessor: Usually ``MultiTaskDataPreProcessor``.
    """

    def __init__(self,
                 backbone: dict,
                 decode_head: dict,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners
        self.tasks = list(self.decode_head.tasks)
        self.train_cfg = train_cfg
        self.test_cfg = dict(test_cfg or {})
        self.set_active_tasks(self.test_cfg.get('tasks'))

    def set_active_tasks(self, tasks: Optional[Sequence[str]]) -> None:
        """Restrict inference to ``tasks`` (None: every task); heads of the
        other tasks do not run."""
        self.active_tasks = self.tasks if tasks is None else check_tasks(
            tasks, self.tasks, where='active tasks')

    def init_weights(self) -> None:
        check_pretrained_backbone(self.backbone)
        super().init_weights()

    def extract_feat(self, inputs: torch.Tensor) -> List[torch.Tensor]:
        x = self.backbone(inputs)
        if self.with_neck:
            x = self.neck(x)
        return x

    def encode_decode(self, inputs: torch.Tensor,
                      batch_img_metas: List[dict]) -> Dict[str, torch.Tensor]:
        """Raw outputs of the active tasks at the input's size."""
        outs = self.decode_head(self.extract_feat(inputs), self.active_tasks)
        return {
            task: resize(out, size=inputs.shape[2:], mode='bilinear',
                         align_corners=self.align_corners)
            for task, out in outs.items()
        }

    def loss(self, inputs: torch.Tensor,
             data_samples: List[SegDataSample]) -> dict:
        return self.decode_head.loss(self.extract_feat(inputs), data_samples)

    def predict(self,
                inputs: torch.Tensor,
                data_samples: OptSampleList = None) -> List[SegDataSample]:
        if data_samples is None:
            data_samples = [
                SegDataSample(metainfo=dict(
                    ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:]))
                for _ in range(inputs.shape[0])
            ]
        outs = self.encode_decode(inputs,
                                  [s.metainfo for s in data_samples])
        return self.postprocess_result(outs, data_samples)

    def _forward(self,
                 inputs: torch.Tensor,
                 data_samples: OptSampleList = None
                 ) -> Dict[str, torch.Tensor]:
        return self.decode_head(self.extract_feat(inputs), self.tasks)

    def postprocess_result(self, outs: Dict[str, torch.Tensor],
                           data_samples: List[SegDataSample]
                           ) -> List[SegDataSample]:
        """Crop the padding, undo a flip, resize to the original image and
        turn each task's raw output into its prediction."""
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            h, w = meta.get('img_shape', meta['ori_shape'])[:2]
            flip = meta.get('flip', False)
            direction = meta.get('flip_direction')
            for task, out in outs.items():
                spec = TASKS[task]
                x = out[i:i + 1, :, :h, :w]
                if flip:
                    if direction != 'horizontal':
                        raise ValueError(
                            f'only horizontal flips can be undone, got '
                            f'{direction!r}')
                    x = x.flip(-1)
                    if spec.kind == 'normals':
                        x = x * x.new_tensor([-1., 1., 1.]).view(1, 3, 1, 1)
                x = resize(x, size=meta['ori_shape'][:2], mode='bilinear',
                           align_corners=self.align_corners)[0]
                sample.set_field(PixelData(data=self._activate(spec, x)),
                                 spec.pred_field)
        return data_samples

    @staticmethod
    def _activate(spec, x: torch.Tensor) -> torch.Tensor:
        if spec.kind == 'seg':
            return x.argmax(dim=0, keepdim=True)
        if spec.kind == 'binary':
            return x.sigmoid()
        if spec.kind == 'normals':
            return F.normalize(x, p=2, dim=0)
        return x
