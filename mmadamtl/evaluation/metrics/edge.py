"""Edge detection metrics: the BSDS/SEISM benchmark, and a fast
approximation kept as a named option.

The benchmark every multi-task paper reports (Martin et al., PAMI 2004, as
implemented by the BSDS500 benchmark, Dollár's ``edgesEvalImg`` and SEISM,
Pont-Tuset & Marques, CVPR 2016) evaluates each probability map at many
thresholds; at each one the binary map is thinned to one-pixel edges and
its pixels are put in one-to-one correspondence with the ground truth's
within ``max_dist`` x the image diagonal (a minimum-cost bipartite
assignment). Multi-task papers (MTI-Net, ATRC, AdaMTL, MTLoRA) first apply
the structured-edge non-maximum suppression to the predictions, and use
``max_dist`` 0.0075 on PASCAL-Context and 0.011 on NYUD-v2.

The assignment, the thinning and the suppression are those of
``pyEdgeEval`` (PyPI ``pyedgeeval``; C++ ``correspondPixels`` of the BSDS
benchmark and ``edgesNmsMex`` of Dollár's toolbox, built with Cython).
Like the BSDS original, the assignment adds randomly drawn outlier edges
(its generator is seeded from the clock), so a run can leave a pixel or
two unmatched that another matches: scores vary in the last digits.
"""
import contextlib
import io
from typing import Dict, List

import cv2
import numpy as np

EDGE_PROTOCOLS = ('bsds', 'distance')


def _pyedgeeval():
    """``(correspond_pixels, binary_thin, fast_nms)`` of pyEdgeEval."""
    try:
        # Its import prints a warning about MATLAB v7.3 files (h5py).
        with contextlib.redirect_stdout(io.StringIO()):
            from pyEdgeEval._lib import correspond_pixels
            from pyEdgeEval.preprocess import binary_thin, fast_nms
    except ImportError as e:  # pragma: no cover - installed by setup
        raise ImportError(
            "the edge benchmark (edge_protocol='bsds') needs pyEdgeEval: "
            "pip install pyedgeeval==0.2.8 (tools/setup_env.sh installs "
            "it); edge_protocol='distance' is the approximation without "
            f'it ({e})') from None
    return correspond_pixels, binary_thin, fast_nms


def default_thresholds(n: int) -> np.ndarray:
    """The benchmark's ``n`` thresholds, ``1/(n+1) .. n/(n+1)`` (99 in
    BSDS500 and SEISM's HED parameters: 0.01 .. 0.99)."""
    if int(n) < 1:
        raise ValueError(f'edge_thresholds must be >= 1, got {n}')
    n = int(n)
    return np.linspace(1. / (n + 1), 1. - 1. / (n + 1), n)


def edge_nms(prob: np.ndarray) -> np.ndarray:
    """Structured-edge non-maximum suppression (Dollár's ``edgesNms`` with
    the parameters of the BSDS evaluation: r=1, s=5, m=1.01)."""
    _, _, fast_nms = _pyedgeeval()
    return fast_nms(np.ascontiguousarray(prob, dtype=np.float64),
                    r=1, s=5, m=1.01)


def bsds_edge_counts(prob: np.ndarray, gt: np.ndarray,
                     thresholds: np.ndarray, max_dist: float,
                     nms: bool = True, ignore: int = 255) -> np.ndarray:
    """Per threshold: matched predicted, predicted, matched ground-truth
    and ground-truth edge pixels of one image, shape (T, 4).

    Args:
        prob: Edge probability (H, W) in [0, 1].
        gt: Ground truth (H, W): 1 edge, 0 not, ``ignore`` ignored.
        thresholds: Increasing thresholds; a pixel is an edge if
            ``prob >= t``.
        max_dist: Match tolerance as a fraction of the image diagonal.
        nms: Suppress non-maxima first (as the multi-task papers do).
    """
    correspond_pixels, binary_thin, _ = _pyedgeeval()
    prob = np.asarray(prob, dtype=np.float64)
    if nms:
        prob = edge_nms(prob)
    valid = gt != ignore
    g = (gt == 1) & valid
    prob = np.where(valid, prob, 0.)
    g_float = g.astype(np.float64)
    out = np.zeros((len(thresholds), 4), np.int64)
    previous = None
    for i, t in enumerate(thresholds):
        p = binary_thin(prob >= t)
        n_p = int(p.sum())
        if previous is not None and previous[0] == n_p and \
                np.array_equal(previous[1], p):
            out[i] = out[i - 1]  # the same edges as at the last threshold
            continue
        previous = (n_p, p)
        if n_p and g.any():
            match_p, match_g, _, _ = correspond_pixels(
                p.astype(np.float64), g_float, max_dist)
            out[i] = ((match_p > 0).sum(), n_p, (match_g > 0).sum(),
                      g.sum())
        else:
            out[i] = (0, n_p, 0, g.sum())
    return out


def distance_edge_counts(prob: np.ndarray, gt: np.ndarray,
                         thresholds: np.ndarray, tolerance: float,
                         ignore: int = 255) -> np.ndarray:
    """The fast approximation (``edge_protocol='distance'``): the same
    four counts, a predicted pixel correct if a ground-truth edge lies
    within ``tolerance`` pixels and a ground-truth pixel found if a
    predicted one does. One-to-many, no thinning and no suppression, so it
    reads higher than the benchmark."""
    valid = gt != ignore
    g = (gt == 1) & valid
    dist_g = cv2.distanceTransform((~g).astype(np.uint8), cv2.DIST_L2, 5)
    out = np.zeros((len(thresholds), 4), np.int64)
    for i, t in enumerate(thresholds):
        p = (prob >= t) & valid
        dist_p = cv2.distanceTransform((~p).astype(np.uint8), cv2.DIST_L2, 5)
        out[i] = ((p & (dist_g <= tolerance)).sum(), p.sum(),
                  (g & (dist_p <= tolerance)).sum(), g.sum())
    return out


def _prf(counts: np.ndarray):
    """Precision, recall and F of counts (..., 4) as the benchmark
    computes them (0 where nothing is predicted or nothing to find)."""
    counts = counts.astype(np.float64)
    prec = counts[..., 0] / np.maximum(counts[..., 1], 1)
    rec = counts[..., 2] / np.maximum(counts[..., 3], 1)
    return prec, rec, _f(prec, rec)


def _f(prec, rec):
    return np.where(prec + rec > 0,
                    2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.)


def edge_scores(per_image: List[np.ndarray]) -> Dict[str, float]:
    """ODS F, OIS F and AP (%) from each image's (T, 4) counts.

    - ``odsF``: the best F of the dataset-level precision and recall,
      interpolated between neighbouring thresholds (100 steps, as the
      benchmark's ``findBestRPF``).
    - ``oisF``: F of the counts summed at each image's own best threshold.
    - ``AP``: the area under the dataset's precision-recall curve,
      precision interpolated at recall 0, 0.01, .., 1 within the measured
      recall range (the BSDS benchmark's ``edgesEvalDir``).
    """
    counts = np.stack(per_image).astype(np.float64)  # (N, T, 4)
    prec, rec, _ = _prf(counts.sum(0))
    d = np.linspace(0, 1, 101)[:, None]
    r = rec[1:] * d + rec[:-1] * (1 - d)
    p = prec[1:] * d + prec[:-1] * (1 - d)
    ods = max(float(_f(prec, rec).max()),
              float(_f(p, r).max()) if len(rec) > 1 else 0.)
    _, _, f_img = _prf(counts)
    best = f_img.argmax(1)
    ois_counts = counts[np.arange(len(counts)), best].sum(0)
    ois = float(_prf(ois_counts)[2])
    rec_u, idx = np.unique(rec, return_index=True)
    grid = np.linspace(0, 1, 101)
    inside = (grid >= rec_u[0]) & (grid <= rec_u[-1])
    ap = float(np.interp(grid[inside], rec_u, prec[idx]).sum() / 100)
    return dict(odsF=100 * ods, oisF=100 * ois, AP=100 * ap)
