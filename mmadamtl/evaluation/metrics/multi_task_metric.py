"""Per-task dense metrics and the multi-task Δm."""
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.utils import mkdir_or_exist
from mmseg.registry import METRICS
from PIL import Image

from mmadamtl.utils import TASKS, check_tasks
from mmadamtl.utils.safe_io import atomic_write, inside

from ..complexity import (COMPLEXITY_KEYS, POLICY_KEYS, image_complexity,
                          summarize_complexity)
from .edge import (EDGE_PROTOCOLS, bsds_edge_counts, default_thresholds,
                   distance_edge_counts, edge_scores)

# Per-image scalars the metric averages (and the policy's, when present).
_SCALARS = COMPLEXITY_KEYS + POLICY_KEYS

# Metric names (after 'task/') where lower is better.
LOWER_IS_BETTER = ('mean', 'median', 'rmse', 'abs_rel')
NORMAL_THRESHOLDS = (11.25, 22.5, 30.)
NORMAL_BIN = 0.1  # degrees per histogram bin (resolution of the median)
_WARNED_DISTANCE: List[bool] = []


def _meta(sample, name: str):
    return sample.get(name) if isinstance(sample, dict) else \
        sample.metainfo.get(name)


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
    - edge (``edge_protocol='bsds'``, the default): the BSDS/SEISM
      benchmark of the multi-task papers (see :mod:`.edge`): predictions
      suppressed to their maxima, then at each of ``edge_thresholds``
      thresholds thinned and matched one-to-one to the ground truth within
      ``edge_tolerance`` x the image diagonal; ``odsF`` (%, dataset-level
      best F), ``oisF`` (%, per-image best threshold) and ``AP`` (%).
      ``edge_protocol='distance'`` is a fast approximation (distance
      transform, one-to-many, no thinning; it reads higher) reporting
      ``odsF`` only: not comparable with published numbers.
    - ``delta_m`` (%): Δm over the tasks in ``single_task_baselines``
      (semseg/parts mIoU, saliency maxIoU, normals mean error, edge odsF,
      depth RMSE; lower is better for normals and depth).
    - ``gflops``, ``encoder_gflops``: mean per image of the executed
      GFLOPs the segmentor records in each prediction's metainfo; with an
      adaptive model also ``block_fraction`` (mean executed share of the
      blocks' compute), ``encoder_share`` (mean executed encoder GFLOPs
      over the static encoder's) and ``encoder_share_max`` (its largest
      value over the images).

    Predictions for offline evaluation (as mmseg's ``IoUMetric``; mmseg's
    ``tools/test.py --out DIR`` sets ``output_dir`` and ``keep_results``):
    with ``output_dir`` every image's prediction of every task is written
    to ``output_dir/<task>/<image name>`` in the dataset's encodings (see
    :func:`save_prediction`); ``format_only`` writes them without
    evaluating (no ground truth needed).

    Args:
        tasks: Tasks to evaluate; None means every task predicted.
        num_classes: Classes per label task; by default
            ``len(dataset_meta['classes'])`` for semseg and
            ``len(dataset_meta['part_classes'])`` for human_parts.
        single_task_baselines: Main metric of each task's single-task model:
            a dict, or the path of the JSON file that
            ``tools/single_task_baselines.py`` writes.
        edge_protocol: ``'bsds'`` (the benchmark) or ``'distance'`` (the
            approximation).
        edge_thresholds: Number of thresholds, ``1/(n+1) .. n/(n+1)``
            (the benchmark's 99 by default).
        edge_tolerance: Match tolerance as a fraction of the diagonal
            (0.0075 for PASCAL-Context, 0.011 for NYUD-v2 in the papers).
        edge_nms: Suppress non-maxima before thresholding (``'bsds'``).
        output_dir: Folder for the predictions; None writes nothing.
        format_only: Only write the predictions (needs ``output_dir``).
        keep_results: Accepted because mmseg's ``tools/test.py --out``
            sets it; the files in ``output_dir`` are always kept.
        overwrite: Replace prediction files already in ``output_dir``
            (else an existing file is an error naming it).
    """
    # No prefix: keys stay '<task>/<metric>' (e.g. 'semseg/mIoU').
    default_prefix: Optional[str] = ''

    def __init__(self,
                 tasks: Optional[Sequence[str]] = None,
                 num_classes: Optional[Dict[str, int]] = None,
                 single_task_baselines: Union[None, str, Dict[str,
                                                              float]] = None,
                 edge_protocol: str = 'bsds',
                 edge_thresholds: int = 99,
                 edge_tolerance: float = 0.0075,
                 edge_nms: bool = True,
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 keep_results: bool = False,
                 overwrite: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        if kwargs:
            raise TypeError(
                f'MultiTaskMetric: unknown option(s) {sorted(kwargs)}; it '
                f'takes tasks, num_classes, single_task_baselines, '
                f'edge_protocol, edge_thresholds, edge_tolerance, edge_nms, '
                f'output_dir, format_only, keep_results, overwrite, '
                f'collect_device, prefix')
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tasks = None if tasks is None else check_tasks(
            tasks, where='MultiTaskMetric.tasks')
        self.num_classes = dict(num_classes or {})
        self.baselines = load_baselines(single_task_baselines)
        if edge_protocol not in EDGE_PROTOCOLS:
            raise ValueError(f'MultiTaskMetric.edge_protocol must be one of '
                             f'{EDGE_PROTOCOLS}, got {edge_protocol!r}')
        if not 0 < edge_tolerance < 1:
            raise ValueError(f'MultiTaskMetric.edge_tolerance is a fraction '
                             f'of the image diagonal in (0, 1), got '
                             f'{edge_tolerance}')
        self.sal_thresholds = np.linspace(0.2, 0.9, 15)
        self.edge_protocol = edge_protocol
        self.edge_thresholds = default_thresholds(edge_thresholds)
        self.edge_tolerance = edge_tolerance
        self.edge_nms = bool(edge_nms)
        if format_only and not output_dir:
            raise ValueError('MultiTaskMetric.format_only needs output_dir '
                             '(where the predictions go)')
        self.output_dir = output_dir
        self.format_only = bool(format_only)
        self.keep_results = bool(keep_results)
        self.overwrite = bool(overwrite)
        if self.output_dir and is_main_process():
            mkdir_or_exist(self.output_dir)
        if edge_protocol == 'distance' and not _WARNED_DISTANCE:
            _WARNED_DISTANCE.append(True)  # once per process
            MMLogger.get_current_instance().warning(
                "MultiTaskMetric: edge_protocol='distance' is an "
                'approximation of the edge benchmark (no thinning, '
                'one-to-many matching; it reads higher): its edge/odsF is '
                'not comparable with published numbers')

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
                if pred is None:
                    raise KeyError(f'MultiTaskMetric: task {task!r} needs '
                                   f'{spec.pred_field} in every sample')
                if self.output_dir:
                    save_prediction(
                        task, pred, self.output_dir,
                        _meta(sample, 'img_path'), self.dataset_meta,
                        _meta(sample, 'img_id'), self.overwrite)
                if self.format_only:
                    continue
                gt = _field(sample, spec.gt_field)
                if gt is None:
                    raise KeyError(
                        f'MultiTaskMetric: task {task!r} needs '
                        f'{spec.gt_field} in every sample (or format_only '
                        f'to write predictions without evaluating)')
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
        logger = MMLogger.get_current_instance()
        if self.format_only:
            logger.info(f'predictions written to {self.output_dir} '
                        f'(format_only: not evaluated)')
            return {}
        if self.output_dir:
            logger.info(f'predictions written to {self.output_dir}')
        per_task = defaultdict(list)
        complexity = []
        for stats in results:
            complexity.append(
                {k: v for k, v in stats.items() if k in _SCALARS})
            for task, s in stats.items():
                if task not in _SCALARS and s is not None:
                    per_task[task].append(s)
        metrics = {}
        unevaluable = []
        for task in self.tasks or TASKS:
            if task in per_task or not any(task in s for s in results):
                continue
            # Every image's statistics were empty (e.g. no pixel of the
            # task annotated).
            unevaluable.append(task)
        for task, items in per_task.items():
            reduced = {f'{task}/{name}': float(value)
                       for name, value in self._reduce(task, items).items()}
            if all(np.isfinite(v) for v in reduced.values()):
                metrics.update(reduced)
            else:
                unevaluable.append(task)
        for task in unevaluable:
            logger.warning(
                f'MultiTaskMetric: {task} is not evaluable on these '
                f'{len(results)} images (no annotated pixel of it, e.g. '
                f'no person for human_parts): its metrics are left out, '
                f'never reported as NaN')
        missing = [t for t in self.baselines if t in unevaluable]
        delta = None if missing else self.delta_m(metrics)
        if missing:
            logger.warning(f'MultiTaskMetric: delta_m is not computed: '
                           f'{", ".join(missing)} not evaluable')
        if delta is not None:
            metrics['delta_m'] = delta
        # Mean executed GFLOPs per image (set by the segmentor's predict).
        metrics.update(summarize_complexity(complexity))
        shares = [c['encoder_share'] for c in complexity
                  if 'encoder_share' in c]
        if shares:
            metrics['encoder_share_max'] = float(max(shares))
        logger.info(
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
        if not present.any():
            # No class annotated or predicted on any image.
            return dict(mIoU=float('nan'))
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
        if self.edge_protocol == 'bsds':
            return dict(counts=bsds_edge_counts(
                pred[0], gt[0], self.edge_thresholds, self.edge_tolerance,
                nms=self.edge_nms))
        h, w = gt.shape[-2:]
        tol = max(1., self.edge_tolerance * float(np.hypot(h, w)))
        return dict(counts=distance_edge_counts(
            pred[0], gt[0], self.edge_thresholds, tol))

    def _edge_reduce(self, items):
        scores = edge_scores([s['counts'] for s in items])
        if self.edge_protocol == 'distance':
            return dict(odsF=scores['odsF'])
        return scores

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


def load_baselines(baselines: Union[None, str, Dict[str, float]]
                   ) -> Dict[str, float]:
    """``single_task_baselines`` as ``{task: main metric}``: a dict as it
    is, or read from the JSON file ``tools/single_task_baselines.py``
    writes (``{"baselines": {task: {"value": ..., ...}}}``)."""
    where = 'MultiTaskMetric.single_task_baselines'
    if baselines is None:
        return {}
    if isinstance(baselines, str):
        path = baselines
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{where}: file {path!r} not found; write it with '
                f'python tools/single_task_baselines.py '
                f'configs/single_task/<your set>_*.py --out {path}')
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
            entries = data['baselines']
            baselines = {t: float(e['value'] if isinstance(e, dict) else e)
                         for t, e in entries.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(
                f'{where}: {path!r} is not a baselines file (a JSON object '
                f'with "baselines": {{task: {{"value": number}}}}): '
                f'{type(e).__name__}: {e}') from None
        for task, entry in entries.items():
            metric = entry.get('metric') if isinstance(entry, dict) \
                else None
            spec = TASKS.get(task)
            if metric is not None and spec and metric != spec.main_key:
                raise ValueError(
                    f'{where}: {path!r}: the {task} baseline is '
                    f'{metric!r}, but Δm compares {task}\'s main metric '
                    f'{spec.main_key!r}')
    else:
        baselines = {t: float(v) for t, v in dict(baselines).items()}
    check_tasks(baselines, where=where)
    for task, value in baselines.items():
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f'{where}: {task} = {value}; a main metric '
                             f'must be a positive number')
    return baselines


def prediction_path(root: str, task: str, name: str, ext: str) -> str:
    """``root/<task>/<name><ext>`` for an image id ``name`` (subfolders
    kept: ``a/x`` and ``b/x`` stay distinct). Refuses an id, or a symbolic
    link anywhere below ``root`` (the task folder included), that would
    lead out of ``root``; checked before any folder is made."""
    parts = name.replace('\\', '/').split('/')
    if osp.isabs(name) or '..' in parts:
        raise ValueError(f'MultiTaskMetric.output_dir: image id {name!r} '
                         f'would write outside {root}')
    path = osp.join(root, task, *parts) + ext
    parent = osp.dirname(path)
    # Every folder on the way that exists, then the made ones, must stay
    # inside the output folder, with no link in between.
    step = root
    for part in [task] + parts[:-1]:
        step = osp.join(step, part)
        if osp.islink(step) or (osp.exists(step) and not inside(step, root)):
            raise ValueError(
                f'MultiTaskMetric.output_dir: {step} is a symbolic link (to '
                f'{osp.realpath(step)}); predictions stay inside {root} and '
                f'never follow a link out of it')
    os.makedirs(parent, exist_ok=True)
    return path


def save_prediction(task: str, pred: np.ndarray, root: str,
                    img_path: Optional[str],
                    dataset_meta: Optional[dict] = None,
                    img_id: Optional[str] = None,
                    overwrite: bool = False) -> str:
    """Write one image's prediction of ``task`` to ``root/<task>`` in the
    datasets' encodings, named after the image id (``img_id``, with its
    subfolders; else the image's file name); returns the path. Written
    atomically; an existing file is refused unless ``overwrite`` (a
    symbolic link there is replaced, never followed).

    - semseg, human_parts: class-index PNG (uint8); for a dataset whose
      label files keep 0 for unlabelled pixels (``zero_label_ignored`` in
      its metainfo, NYUD-v2's segmentation) class c is written as c + 1;
    - saliency, edge: probability x 255 as a grey PNG;
    - normals: RGB PNG of ``(n + 1) / 2 * 255`` (PASCAL's
      ``normals_distill`` encoding);
    - depth: float32 ``.npy`` (H, W), the NYUD-v2 encoding.
    """
    if not img_path:
        raise KeyError(f'MultiTaskMetric.output_dir: the {task} prediction '
                       f'has no img_path in its metainfo to name its file')
    name = img_id or osp.splitext(osp.basename(img_path))[0]
    kind = TASKS[task].kind
    write = dict(overwrite=overwrite, what='prediction')
    if kind == 'depth':
        path = prediction_path(root, task, name, '.npy')
        with atomic_write(path, **write) as tmp, open(tmp, 'wb') as f:
            np.save(f, np.asarray(pred[0], dtype=np.float32),
                    allow_pickle=False)
        return path
    path = prediction_path(root, task, name, '.png')
    if kind == 'seg':
        label = np.asarray(pred[0], dtype=np.int64)
        if task in (dataset_meta or {}).get('zero_label_ignored', ()):
            label = label + 1
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError(f'{task}: labels {label.min()}..{label.max()} '
                             f'do not fit a uint8 PNG')
        img = Image.fromarray(label.astype(np.uint8))
    elif kind == 'normals':
        rgb = (np.asarray(pred, dtype=np.float64).transpose(1, 2, 0) + 1) \
            / 2 * 255
        img = Image.fromarray(
            np.clip(np.round(rgb), 0, 255).astype(np.uint8), mode='RGB')
    else:
        img = Image.fromarray(
            np.clip(np.round(np.asarray(pred[0], np.float64) * 255), 0,
                    255).astype(np.uint8))
    with atomic_write(path, **write) as tmp:
        img.save(tmp, format='PNG')
    return path
