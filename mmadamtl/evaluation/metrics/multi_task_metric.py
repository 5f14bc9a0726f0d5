"""Per-task dense metrics and the multi-task Δm."""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmseg.registry import METRICS

from mmadamtl.utils import TASKS, check_tasks

from ..complexity import (COMPLEXITY_KEYS, POLICY_KEYS, image_complexity,
                          summarize_complexity)

# Per-image scalars the metric averages (and the policy's, when present).
_SCALARS = COMPLEXITY_KEYS + POLICY_KEYS

# Metric names (after 'task/') where lower is better.
LOWER_IS_BETTER = ('mean', 'median', 'rmse', 'abs_rel')
NORMAL_THRESHOLDS = (11.25, 22.5, 30.)
NORMAL_BIN = 0.1  # degrees per histogram bin (resolution of the median)


def _field(sample, name: str) -> Optional[np.ndarray]:
    value = sample.get(name) if isinstance(sample, dict) else getattr(
        sample, name, None)
    if value is None:
        return None
    data = value['data'] if isinstance(value, dict) else value.data
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    return data


def seg_stats(pred: np.ndarray, gt: np.ndarray, num_classes: int,
              ignore: int = 255) -> dict:
    """Per-class intersection and union counts of one image."""
    valid = gt != ignore
    p, g = pred[valid].astype(np.int64), gt[valid].astype(np.int64)
    bad = p[(p < 0) | (p >= num_classes)]
    if bad.size or g.size and g.max() >= num_classes:
        raise ValueError(
            f'label out of range for {num_classes} classes (prediction '
            f'max {p.max() if p.size else None}, ground truth max '
            f'{g.max() if g.size else None}): the model and the dataset '
            f'disagree on the number of classes')
    inter = np.bincount(g[p == g], minlength=num_classes)
    area_p = np.bincount(p, minlength=num_classes)
    area_g = np.bincount(g, minlength=num_classes)
    return dict(inter=inter, union=area_p + area_g - inter)


def saliency_stats(prob: np.ndarray, gt: np.ndarray,
                   thresholds: np.ndarray, ignore: int = 255
                   ) -> Optional[dict]:
    """IoU, precision and recall of one image at each threshold."""
    valid = gt != ignore
    if not valid.any():
        return None
    p, g = prob[valid], gt[valid] == 1
    pred = p[None, :] > thresholds[:, None]
    tp = (pred & g).sum(1).astype(np.float64)
    fp = (pred & ~g).sum(1)
    fn = (~pred & g).sum(1)
    union = tp + fp + fn
    iou = np.where(union > 0, tp / np.maximum(union, 1), 1.)
    prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.)
    rec = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 1.)
    return dict(iou=iou, prec=prec, rec=rec)


def normals_stats(pred: np.ndarray, gt: np.ndarray) -> Optional[dict]:
    """Angular errors (degrees) of one image: sum, count, threshold counts
    and a histogram for the median."""
    valid = np.abs(gt).sum(0) > 0
    if not valid.any():
        return None
    p, g = pred[:, valid], gt[:, valid]
    p = p / np.maximum(np.linalg.norm(p, axis=0, keepdims=True), 1e-12)
    g = g / np.linalg.norm(g, axis=0, keepdims=True)
    err = np.degrees(np.arccos(np.clip((p * g).sum(0), -1, 1)))
    hist = np.bincount(
        np.minimum((err / NORMAL_BIN).astype(np.int64),
                   int(180 / NORMAL_BIN) - 1),
        minlength=int(180 / NORMAL_BIN))
    return dict(
        sum=float(err.sum()),
        count=int(err.size),
        within=np.array([(err < t).sum() for t in NORMAL_THRESHOLDS]),
        hist=hist)


def depth_stats(pred: np.ndarray, gt: np.ndarray,
                ignore: float = 0.) -> Optional[dict]:
    valid = gt != ignore
    if not valid.any():
        return None
    p, g = pred[valid].astype(np.float64), gt[valid].astype(np.float64)
    ratio = np.maximum(p / g, g / np.maximum(p, 1e-9))
    return dict(
        sq=float(((p - g)**2).sum()),
        abs_rel=float((np.abs(p - g) / g).sum()),
        delta1=int((ratio < 1.25).sum()),
        count=int(g.size))


def edge_stats(prob: np.ndarray, gt: np.ndarray, thresholds: np.ndarray,
               tolerance: float, ignore: int = 255) -> dict:
    """Matched and total edge pixels at each threshold.

    A predicted edge pixel counts as correct if a ground-truth edge lies
    within ``tolerance`` pixels, and a ground-truth edge pixel as found if
    a predicted one does (distance-transform matching, a one-to-many
    relaxation of the benchmark's one-to-one assignment; no thinning).
    """
    valid = gt != ignore
    g = (gt == 1) & valid
    # Distance of every pixel to the nearest ground-truth edge.
    dist_g = cv2.distanceTransform((~g).astype(np.uint8), cv2.DIST_L2, 5)
    out = np.zeros((len(thresholds), 4), np.int64)
    for i, t in enumerate(thresholds):
        p = (prob >= t) & valid
        dist_p = cv2.distanceTransform((~p).astype(np.uint8), cv2.DIST_L2, 5)
        out[i] = ((p & (dist_g <= tolerance)).sum(), p.sum(),
                  (g & (dist_p <= tolerance)).sum(), g.sum())
    return dict(counts=out)


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Metrics of every dense task, and Δm against single-task references.

    - semseg, human_parts: mIoU (%) over the dataset's classes (background
      included), from dataset-level intersections and unions.
    - saliency: ``maxIoU`` (%), the max over 15 thresholds (0.2..0.9) of the
      image-averaged IoU; ``maxF`` (%), the max over the same thresholds of
      F-beta (beta^2 = 0.3) of the image-averaged precision and recall.
    - normals: mean and median angular error (degrees; the median to
      0.1 degree) and % of pixels within 11.25/22.5/30 degrees.
    - depth: RMSE and abs-rel over all valid pixels, % with
      max(p/g, g/p) < 1.25.
    - edge: ``odsF`` (%), the best F over ``edge_thresholds`` of dataset-level
      precision and recall with a match tolerance of
      ``edge_tolerance * image diagonal`` pixels (see :func:`edge_stats`).
    - ``delta_m`` (%): Δm over the tasks in ``single_task_baselines``
      (semseg/parts mIoU, saliency maxIoU, normals mean error, edge odsF,
      depth RMSE; lower is better for normals and depth).
    - ``gflops``, ``encoder_gflops``: mean per image of the executed
      GFLOPs the segmentor records in each prediction's metainfo; with an
      adaptive model also ``block_fraction`` (mean executed share of the
      blocks' compute), ``encoder_share`` (mean executed encoder GFLOPs
      over the static encoder's) and ``encoder_share_max`` (its largest
      value over the images).

    Args:
        tasks: Tasks to evaluate; None means every task predicted.
        num_classes: Classes per label task; by default
            ``len(dataset_meta['classes'])`` for semseg and
            ``len(dataset_meta['part_classes'])`` for human_parts.
        single_task_baselines: Main metric of each task's single-task model.
        edge_thresholds: Number of thresholds for the edge ODS F.
        edge_tolerance: Match tolerance as a fraction of the diagonal.
    """
    # No prefix: keys stay '<task>/<metric>' (e.g. 'semseg/mIoU').
    default_prefix: Optional[str] = ''

    def __init__(self,
                 tasks: Optional[Sequence[str]] = None,
                 num_classes: Optional[Dict[str, int]] = None,
                 single_task_baselines: Optional[Dict[str, float]] = None,
                 edge_thresholds: int = 25,
                 edge_tolerance: float = 0.0075,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tasks = None if tasks is None else check_tasks(
            tasks, where='MultiTaskMetric.tasks')
        self.num_classes = dict(num_classes or {})
        self.baselines = dict(single_task_baselines or {})
        if self.baselines:
            check_tasks(self.baselines,
                        where='MultiTaskMetric.single_task_baselines')
        self.sal_thresholds = np.linspace(0.2, 0.9, 15)
        self.edge_thresholds = np.linspace(0.02, 0.98, edge_thresholds)
        self.edge_tolerance = edge_tolerance

    def _classes(self, task: str) -> int:
        if task in self.num_classes:
            return self.num_classes[task]
        key = TASKS[task].classes_key
        meta = self.dataset_meta or {}
        if key not in meta:
            raise KeyError(f'MultiTaskMetric: number of classes of {task!r} '
                           f'unknown; set num_classes={{{task!r}: N}} or '
                           f'use a dataset with {key!r} in its metainfo')
        return len(meta[key])

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            stats = {}
            tasks = self.tasks or [
                t for t, s in TASKS.items()
                if _field(sample, s.pred_field) is not None
            ]
            for task in tasks:
                spec = TASKS[task]
                pred = _field(sample, spec.pred_field)
                gt = _field(sample, spec.gt_field)
                if pred is None or gt is None:
                    raise KeyError(
                        f'MultiTaskMetric: task {task!r} needs '
                        f'{spec.pred_field} and {spec.gt_field} in every '
                        f'sample')
                if pred.shape[-2:] != gt.shape[-2:]:
                    raise ValueError(
                        f'task {task!r}: prediction {pred.shape} and ground '
                        f'truth {gt.shape} differ in size; load the ground '
                        f'truth after the Resize of the test pipeline')
                stats[task] = self._stats(task, pred, gt)
            complexity = image_complexity(sample)
            stats.update(
                {k: complexity[k]
                 for k in _SCALARS if k in complexity})
            self.results.append(stats)

    def _stats(self, task: str, pred: np.ndarray, gt: np.ndarray):
        """Per-image statistics, by the task's ``TaskSpec.metric``."""
        return getattr(self, f'_{TASKS[task].metric}_stats')(task, pred, gt)

    def _reduce(self, task: str, items: List[dict]) -> Dict[str, float]:
        """Dataset-level metrics from the per-image statistics."""
        return getattr(self, f'_{TASKS[task].metric}_reduce')(items)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        per_task = defaultdict(list)
        complexity = []
        for stats in results:
            complexity.append(
                {k: v for k, v in stats.items() if k in _SCALARS})
            for task, s in stats.items():
                if task not in _SCALARS and s is not None:
                    per_task[task].append(s)
        metrics = {}
        for task, items in per_task.items():
            for name, value in self._reduce(task, items).items():
                metrics[f'{task}/{name}'] = float(value)
        delta = self.delta_m(metrics)
        if delta is not None:
            metrics['delta_m'] = delta
        # Mean executed GFLOPs per image (set by the segmentor's predict).
        metrics.update(summarize_complexity(complexity))
        shares = [c['encoder_share'] for c in complexity
                  if 'encoder_share' in c]
        if shares:
            metrics['encoder_share_max'] = float(max(shares))
        MMLogger.get_current_instance().info(
            'multi-task metrics: ' +
            ', '.join(f'{k}={v:.4g}' for k, v in metrics.items()))
        return metrics

    # One pair of methods per TaskSpec.metric.
    def _miou_stats(self, task, pred, gt):
        try:
            return seg_stats(pred[0], gt[0], self._classes(task))
        except ValueError as e:
            raise ValueError(f'task {task!r}: {e}') from None

    @staticmethod
    def _miou_reduce(items):
        inter = np.sum([s['inter'] for s in items], 0)
        union = np.sum([s['union'] for s in items], 0)
        present = union > 0
        return dict(mIoU=100 * np.mean(inter[present] / union[present]))

    def _saliency_stats(self, task, pred, gt):
        return saliency_stats(pred[0], gt[0], self.sal_thresholds)

    @staticmethod
    def _saliency_reduce(items):
        iou = np.mean([s['iou'] for s in items], 0)
        prec = np.mean([s['prec'] for s in items], 0)
        rec = np.mean([s['rec'] for s in items], 0)
        beta2 = 0.3
        f = (1 + beta2) * prec * rec / np.maximum(beta2 * prec + rec, 1e-12)
        return dict(maxIoU=100 * iou.max(), maxF=100 * f.max())

    def _normals_stats(self, task, pred, gt):
        return normals_stats(pred, gt)

    @staticmethod
    def _normals_reduce(items):
        count = sum(s['count'] for s in items)
        hist = np.sum([s['hist'] for s in items], 0)
        median_bin = int(np.searchsorted(np.cumsum(hist), count / 2))
        within = np.sum([s['within'] for s in items], 0)
        out = dict(
            mean=sum(s['sum'] for s in items) / count,
            median=(median_bin + 0.5) * NORMAL_BIN)
        for t, n in zip(NORMAL_THRESHOLDS, within):
            out[f'within_{t:g}'] = 100 * n / count
        return out

    def _depth_stats(self, task, pred, gt):
        return depth_stats(pred[0], gt[0])

    @staticmethod
    def _depth_reduce(items):
        count = sum(s['count'] for s in items)
        return dict(
            rmse=np.sqrt(sum(s['sq'] for s in items) / count),
            abs_rel=sum(s['abs_rel'] for s in items) / count,
            delta1=100 * sum(s['delta1'] for s in items) / count)

    def _edge_stats(self, task, pred, gt):
        h, w = gt.shape[-2:]
        tol = max(1., self.edge_tolerance * float(np.hypot(h, w)))
        return edge_stats(pred[0], gt[0], self.edge_thresholds, tol)

    @staticmethod
    def _edge_reduce(items):
        counts = np.sum([s['counts'] for s in items], 0).astype(np.float64)
        prec = counts[:, 0] / np.maximum(counts[:, 1], 1)
        rec = counts[:, 2] / np.maximum(counts[:, 3], 1)
        f = 2 * prec * rec / np.maximum(prec + rec, 1e-12)
        return dict(odsF=100 * f.max())

    def delta_m(self, metrics: Dict[str, float]) -> Optional[float]:
        """Δm (%) over the tasks with both a baseline and a result."""
        return delta_m(metrics, self.baselines)


def delta_m(metrics: Dict[str, float],
            baselines: Dict[str, float]) -> Optional[float]:
    """Δm (%) of ``metrics`` against ``baselines`` (task -> main metric),
    over the tasks that have both; None if there are none."""
    terms = [
        relative_gain(task, metrics[TASKS[task].main_key], ref)
        for task, ref in baselines.items() if TASKS[task].main_key in metrics
    ]
    return 100 * float(np.mean(terms)) if terms else None


def relative_gain(task: str, value: float, ref: float) -> float:
    """One task's term of Δm: ``(value - ref) / ref``, negated for a
    lower-is-better metric (a fraction, not %)."""
    sign = -1 if TASKS[task].lower_is_better else 1
    return sign * (value - ref) / ref
