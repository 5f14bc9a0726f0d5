"""Offline measurements of a controllable model: the lookup table of the
deployment search, per encoder sub-network and decoder width."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from mmseg.models.utils import resize

from mmadamtl.datasets import BaseMTDataset
from mmadamtl.utils import TASKS
from mmadamtl.utils.cli import progress

from ..models.backbones import Control
from ..models.utils.controllable_search import LookupTable, evolution_search
from .inference import collate_batches


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
    img_hw = None
    for enc in progress(encoders, 'encoder configurations'):
        evaluators = []
        for _ in widths:
            ev = Evaluator(dict(evaluator_cfg))
            ev.dataset_meta = dataset_meta
            evaluators.append(ev)
        loss_sum = {t: [0.0] * len(widths) for t in tasks}
        count = 0
        for batch in batches:
            data = model.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            img_hw = tuple(inputs.shape[2:])
            feats = model.extract_feat(inputs, Control(subnet=enc))
            for d, width in enumerate(widths):
                at = {t: width for t in tasks}
                outs = model.decode_head(feats, tasks, at)
                outs = {t: resize(o, size=inputs.shape[2:],
                                  mode='bilinear',
                                  align_corners=model.align_corners)
                        for t, o in outs.items()}
                preds = model.postprocess_result(
                    outs, [s.clone() for s in samples])
                evaluators[d].process(preds, batch)
                parts = model.decode_head.loss(feats, samples, tasks, at)
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
    return dict(
        encoders=[[list(s) for s in e] for e in encoders], widths=widths,
        metrics=metrics, losses=losses, img_size=list(img_hw),
        gflops=dict(
            encoders=[model.backbone.encoder_flops(img_hw, config=e) / 1e9
                      for e in encoders],
            decoders={t: [model.width_flops(t, w, img_hw) / 1e9
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


def heldout_batches(model, batch_size: int = 4):
    """The config's ``lookup_dataloader`` dataset (held out of training),
    collated."""
    cfg = model.cfg
    if 'lookup_dataloader' not in cfg:
        raise KeyError(f'{cfg.filename}: no lookup_dataloader (the held-out '
                       f'split the lookup table is measured on)')
    init_default_scope('mmseg')
    dataset = DATASETS.build(cfg.lookup_dataloader.dataset)
    size = cfg.lookup_dataloader.get('batch_size', batch_size)
    return dataset, collate_batches(dataset, None, size)


def build_table(model, dataset, batches, per_stage: bool = False,
                budgets=(0.5, 0.75), population: int = 16,
                generations: int = 4, seed: int = 0) -> LookupTable:
    """Measure the table (see the module); ``per_stage`` adds the
    evolutionary search's encoders."""
    cfg = model.cfg
    measured = measure_configs(model, batches, cfg.test_evaluator,
                               dataset.metainfo)
    split = 'lookup_dataloader'
    if isinstance(dataset, BaseMTDataset):
        # Named in the table, and in its error if a task is not
        # evaluable on these images.
        split += f' ({dataset.split_file()}, {len(dataset)} images)'
    source = dict(config=cfg.filename, images=len(dataset), split=split)
    if per_stage:
        table = lookup_table(measured, source)
        hw = measured['img_size']
        full = {t: model.widths[-1] for t in model.tasks}
        cache = {}

        def fitness(enc):
            m = measure_configs(model, batches, cfg.test_evaluator,
                                dataset.metainfo, [enc])
            cache[enc] = m
            return sum(table.gain(t, m['metrics'][t][0][-1])
                       for t in model.tasks) / len(model.tasks)

        found, skipped = [], []
        for budget in budgets:
            limit = budget * model.max_flops(hw)
            if all(model.subnet_flops(hw, e, full) > limit
                   for e in table.encoders):
                # Not even the narrowest encoder fits with every decoder
                # at its widest: nothing to search at this budget.
                skipped.append(budget)
                continue
            best, _ = evolution_search(
                model.backbone.stage_choices(), len(model.backbone.stages),
                fitness, lambda e: model.subnet_flops(hw, e, full), limit,
                population=population, generations=generations, seed=seed,
                init=[e for e in table.encoders
                      if model.subnet_flops(hw, e, full) <= limit])
            if best not in table.encoders and best not in found:
                found.append(best)
        for enc in found:
            extra = cache[enc]
            measured['encoders'].append(extra['encoders'][0])
            measured['gflops']['encoders'] += extra['gflops']['encoders']
            for key in ('metrics', 'losses'):
                for t in model.tasks:
                    measured[key][t].append(extra[key][t][0])
        source['per_stage'] = dict(budgets=list(budgets),
                                   population=population,
                                   generations=generations, added=len(found),
                                   skipped_budgets=skipped)
    table = lookup_table(measured, source)
    table.source['losses'] = measured['losses']
    return table


__all__: List[str] = ['measure_configs', 'lookup_table', 'config_metrics',
                      'heldout_batches', 'build_table',
                      'main_metrics']
