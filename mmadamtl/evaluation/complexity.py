"""The executed compute the segmentor records in every prediction, read in
one place: by ``MultiTaskMetric``, ``ComplexityLoggerHook`` and the tools.

``MultiTaskEncoderDecoder.predict`` sets per image ``metainfo['gflops']``
(encoder and the heads that ran), ``['encoder_gflops']`` and, with an
adaptive backbone, ``['policy']`` (the policy's own GFLOPs and its
decisions).
"""
from typing import Dict, Iterable, List, Union

import numpy as np

# Scalars of every prediction (static models included).
COMPLEXITY_KEYS = ('gflops', 'encoder_gflops')
# Scalars of a prediction of an adaptive model: the executed share of the
# blocks' compute (what a budget asks for) and the executed encoder
# multiply-adds over the static encoder's (what budget_mode='cap' bounds).
POLICY_KEYS = ('block_fraction', 'encoder_share')

Record = Dict[str, Union[float, List[float]]]


def image_complexity(sample) -> Record:
    """What one image executed: ``gflops``, ``encoder_gflops`` and, when a
    policy ran, ``policy_gflops``, ``block_fraction``, ``encoder_share``
    and the per-stage ``block_keep`` and ``token_keep`` (captured mode:
    ``run_encoder_gflops`` too, the bucket padding counted). Empty if the
    prediction carries none.

    Args:
        sample: A ``SegDataSample``, or the dict mmengine's evaluator hands
            to metrics (metainfo keys at the top level).
    """
    meta = sample if isinstance(sample, dict) else sample.metainfo
    record: Record = {k: float(meta[k]) for k in COMPLEXITY_KEYS if k in meta}
    policy = meta.get('policy')
    if policy:
        record.update(
            policy_gflops=float(policy['policy_gflops']),
            block_fraction=float(policy['block_fraction']),
            encoder_share=float(policy['encoder_share']),
            block_keep=list(policy['block_keep']),
            token_keep=list(policy['token_keep']))
        if 'run_encoder_gflops' in policy:
            # Captured mode: what the encoder really ran, padding in.
            record['run_encoder_gflops'] = float(
                policy['run_encoder_gflops'])
    return record


def summarize_complexity(records: Iterable[Record]) -> Record:
    """Mean over images of every key of ``records``; per-stage lists are
    averaged stage by stage."""
    values: Dict[str, list] = {}
    for record in records:
        for key, value in record.items():
            values.setdefault(key, []).append(value)
    out: Record = {}
    for key, items in values.items():
        mean = np.mean(np.asarray(items, dtype=np.float64), axis=0)
        out[key] = float(mean) if np.ndim(mean) == 0 else mean.tolist()
    return out
