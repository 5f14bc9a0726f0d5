"""Offline measurements of a controllable model: the lookup table of the
deployment search, per encoder sub-network and decoder width."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import Evaluator
from mmseg.models.utils import resize

from mmadamtl.utils import TASKS
from mmadamtl.utils.cli import progress

from ..models.utils.controllable_search import LookupTable


@torch.no_grad()
def measure_configs(model, batches: Sequence[dict], evaluator_cfg: dict,
                    dataset_meta: dict,
                    encoders: Optional[Sequence] = None) -> dict:
    """Every task's main metric and mean (weighted) loss for each encoder
    sub-network in ``encoders`` (default: the stage-uniform ones) and each
    decoder width, over ``batches`` (raw collated test-pipeline batches
    with ground truth).

    A task's output depends only on the encoder and its own decoder's
    width, so the encoder runs once per batch and every decoder at every
    width on its features; predictions go through the model's own
    post-processing and ``evaluator_cfg``'s metric, as ``tools/test.py``
    would compute them.

    Returns:
        dict: ``encoders`` (canonical), ``widths``, ``metrics[task][e][d]``
        and ``losses[task][e][d]``, ``gflops`` (``encoders``: per encoder,
        ``decoders``: per task and width) at ``img_size``.
    """
    model.eval()
    encoders = [model.backbone.check_config(e) for e in (
        encoders if encoders is not None else
        model.backbone.uniform_configs())]
    widths = list(model.widths)
    tasks = list(model.tasks)
    metrics = {t: [] for t in tasks}
    losses = {t: [] for t in tasks}
    saved = model.subnet
    img_hw = None
    try:
        for enc in progress(encoders, 'encoder configurations'):
            evaluators = []
            for _ in widths:
                ev = Evaluator(dict(evaluator_cfg))
                ev.dataset_meta = dataset_meta
                evaluators.append(ev)
            loss_sum = {t: [0.0] * len(widths) for t in tasks}
            count = 0
            model.set_subnet(enc)
            for batch in batches:
                data = model.data_preprocessor(batch, False)
                inputs, samples = data['inputs'], data['data_samples']
                img_hw = tuple(inputs.shape[2:])
                feats = model.extract_feat(inputs)
                for d, width in enumerate(widths):
                    model.set_subnet(enc, {t: width for t in tasks})
                    outs = model.decode_head(feats, tasks)
                    outs = {t: resize(o, size=inputs.shape[2:],
                                      mode='bilinear',
                                      align_corners=model.align_corners)
                            for t, o in outs.items()}
                    preds = model.postprocess_result(
                        outs, [s.clone() for s in samples])
                    evaluators[d].process(preds, batch)
                    parts = model.decode_head.loss(feats, samples, tasks)
                    for key, value in parts.items():
                        loss_sum[key.split('.')[0]][d] += \
                            float(value) * len(samples)
                count += len(samples)
            for d, ev in enumerate(evaluators):
                result = ev.evaluate(count)
                for t in tasks:
                    if d == 0:
                        metrics[t].append([])
                        losses[t].append([])
                    # A task the images cannot evaluate has no value:
                    # NaN, which LookupTable refuses, naming it.
                    metrics[t][-1].append(
                        float(result.get(TASKS[t].main_key, float('nan'))))
                    losses[t][-1].append(loss_sum[t][d] / count)
    finally:
        model.set_subnet(saved['encoder'], saved['decoders'])
    return dict(
        encoders=[[list(s) for s in e] for e in encoders], widths=widths,
        metrics=metrics, losses=losses, img_size=list(img_hw),
        gflops=dict(
            encoders=[model.backbone.encoder_flops(img_hw, config=e) / 1e9
                      for e in encoders],
            decoders={t: [model.decoder_flops(t, w, img_hw) / 1e9
                          for w in widths] for t in tasks}))


def lookup_table(measured: dict, source: Optional[dict] = None
                 ) -> LookupTable:
    """The :class:`LookupTable` of :func:`measure_configs`' results; the
    reference of each task is its metric at the widest configuration
    (the widest encoder must be among the measured ones)."""
    encoders = [tuple(tuple(s) for s in e) for e in measured['encoders']]
    top = tuple(tuple(max(e[s][k] for e in encoders) for k in range(2))
                for s in range(len(encoders[0])))
    if top not in encoders:
        raise ValueError('lookup table: the widest encoder was not measured')
    widest = encoders.index(top)
    full = len(measured['widths']) - 1
    reference = {t: rows[widest][full]
                 for t, rows in measured['metrics'].items()}
    return LookupTable(
        tasks=list(measured['metrics']), widths=measured['widths'],
        encoders=measured['encoders'], metrics=measured['metrics'],
        reference=reference, gflops=measured['gflops'],
        img_size=measured['img_size'], source=dict(source or {}))


def config_metrics(measured: dict, encoder, decoders: Dict[str, float],
                   key: str = 'metrics') -> Dict[str, float]:
    """Each running task's measured ``key`` (``metrics`` or ``losses``)
    for one configuration, read from :func:`measure_configs`' results."""
    encoders = [tuple(tuple(float(v) for v in s) for s in e)
                for e in measured['encoders']]
    e = encoders.index(tuple(tuple(float(v) for v in s) for s in encoder))
    return {t: measured[key][t][e][measured['widths'].index(w)]
            for t, w in decoders.items() if w}


def main_metrics(measured: dict, encoder, decoders) -> Dict[str, float]:
    """``{'<task>/<main metric>': value}`` of one configuration."""
    return {TASKS[t].main_key: v for t, v in config_metrics(
        measured, encoder, decoders).items()}


__all__: List[str] = ['measure_configs', 'lookup_table', 'config_metrics',
                      'main_metrics']
