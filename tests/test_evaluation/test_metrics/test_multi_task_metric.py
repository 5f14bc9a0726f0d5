import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mmadamtl.evaluation import MultiTaskMetric


def _sample(**fields):
    return {k: dict(data=torch.as_tensor(v)) for k, v in fields.items()}


def _metric(**kw):
    m = MultiTaskMetric(**kw)
    m.dataset_meta = dict(classes=('a', 'b', 'c'),
                          part_classes=('bg', 'p'))
    return m


def test_miou_matches_hand_count():
    gt = np.array([[[0, 0, 1, 1], [2, 2, 255, 1]]])
    pred = np.array([[[0, 1, 1, 1], [2, 0, 2, 1]]])
    m = _metric(tasks=['semseg'])
    m.process(None, [_sample(gt_sem_seg=gt, pred_sem_seg=pred)])
    res = m.compute_metrics(m.results)
    # class 0: inter 1, union 3 ; class 1: inter 3, union 4 ;
    # class 2: inter 1, union 2
    assert res['semseg/mIoU'] == pytest.approx(100 * (1 / 3 + 3 / 4 + 1 / 2)
                                               / 3)


def test_class_count_mismatch_is_an_error():
    m = _metric(tasks=['semseg'])
    with pytest.raises(ValueError, match="'semseg'.*3 classes"):
        m.process(None, [_sample(gt_sem_seg=np.zeros((1, 2, 2), int),
                                 pred_sem_seg=np.full((1, 2, 2), 5))])


def test_saliency_max_iou_and_f():
    gt = np.array([[[1, 1, 0, 0]]])
    prob = np.array([[[0.95, 0.5, 0.4, 0.1]]])
    m = _metric(tasks=['saliency'])
    m.process(None, [_sample(gt_saliency=gt, pred_saliency=prob)])
    res = m.compute_metrics(m.results)
    # At a threshold in (0.4, 0.5) the prediction is exact.
    assert res['saliency/maxIoU'] == pytest.approx(100.)
    assert res['saliency/maxF'] == pytest.approx(100.)
    m2 = _metric(tasks=['saliency'])
    m2.process(None, [_sample(gt_saliency=gt,
                              pred_saliency=np.array([[[0.95, 0.1, 0.95,
                                                        0.1]]]))])
    # Best: {0, 2} predicted: tp 1, fp 1, fn 1 -> IoU 1/3; P = R = 1/2.
    res2 = m2.compute_metrics(m2.results)
    assert res2['saliency/maxIoU'] == pytest.approx(100 / 3)
    assert res2['saliency/maxF'] == pytest.approx(50.)


def test_normals_angles():
    gt = np.zeros((3, 1, 4))
    gt[2] = 1                      # all pointing up
    gt[:, 0, 3] = 0                # ignored
    pred = np.zeros((3, 1, 4))
    angles = [0., 10., 40.]
    for i, a in enumerate(angles):
        pred[0, 0, i] = math.sin(math.radians(a)) * 3
        pred[2, 0, i] = math.cos(math.radians(a)) * 3
    pred[:, 0, 3] = [1, 0, 0]
    m = _metric(tasks=['normals'])
    m.process(None, [_sample(gt_normals=gt, pred_normals=pred)])
    res = m.compute_metrics(m.results)
    assert res['normals/mean'] == pytest.approx(50 / 3, abs=1e-3)
    assert res['normals/median'] == pytest.approx(10., abs=0.1)
    assert res['normals/within_11.25'] == pytest.approx(200 / 3)
    assert res['normals/within_30'] == pytest.approx(200 / 3)


def test_depth_rmse():
    gt = np.array([[[1., 2., 0., 4.]]])
    pred = np.array([[[2., 2., 9., 2.]]])
    m = _metric(tasks=['depth'])
    m.process(None, [_sample(gt_depth=gt, pred_depth=pred)])
    res = m.compute_metrics(m.results)
    assert res['depth/rmse'] == pytest.approx(math.sqrt(5 / 3))
    assert res['depth/abs_rel'] == pytest.approx((1 + 0 + 0.5) / 3)
    assert res['depth/delta1'] == pytest.approx(100 / 3)


def test_edge_distance_approximation_with_tolerance():
    """edge_protocol='distance': the old one-to-many approximation."""
    gt = np.zeros((1, 20, 20), np.int64)
    gt[0, :, 10] = 1
    prob = np.zeros((1, 20, 20))
    prob[0, :, 11] = 0.9             # one pixel off: within tolerance 1
    m = _metric(tasks=['edge'], edge_protocol='distance')
    m.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    res = m.compute_metrics(m.results)
    assert res['edge/odsF'] == pytest.approx(100.)
    assert 'edge/oisF' not in res    # only the benchmark reports these
    prob2 = np.zeros((1, 20, 20))
    prob2[0, :10, 15] = 0.9          # far away: no match
    prob2[0, 10:, 10] = 0.9          # half the edge found exactly
    m2 = _metric(tasks=['edge'], edge_protocol='distance')
    m2.process(None, [_sample(gt_edge=gt, pred_edge=prob2)])
    # P = 10/20; R = 11/20 (gt row 9 lies 1 px from the prediction).
    f = 2 * 0.5 * 0.55 / (0.5 + 0.55)
    assert m2.compute_metrics(m2.results)['edge/odsF'] == pytest.approx(
        100 * f)


def _doubled_edge():
    """A 20-pixel ground-truth edge (row 20) and a prediction that draws
    it twice, on rows 20 and 22 (both within 2.8 px = 0.05 x diagonal)."""
    gt = np.zeros((1, 40, 40), np.int64)
    gt[0, 20, 10:30] = 1
    prob = np.zeros((1, 40, 40))
    prob[0, 20, 10:30] = 0.8
    prob[0, 22, 10:30] = 0.8
    return gt, prob


def test_edge_benchmark_counts_a_doubled_edge_once():
    gt, prob = _doubled_edge()
    m = _metric(tasks=['edge'], edge_tolerance=0.05, edge_nms=False)
    m.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    res = m.compute_metrics(m.results)
    # By hand: one-to-one matching pairs each of the 20 ground-truth pixels
    # with one predicted pixel. At every threshold <= 0.8: P = 20/40,
    # R = 20/20, F = 2/3; above 0.8 nothing is predicted (P = R = 0).
    assert res['edge/odsF'] == pytest.approx(100 * 2 / 3)
    assert res['edge/oisF'] == pytest.approx(100 * 2 / 3)
    # AP: the PR curve through (R=0, P=0) and (R=1, P=0.5), sampled at
    # R = 0, 0.01, .., 1: sum(0.5 R) / 100 = 0.5 * 50.5 / 100.
    assert res['edge/AP'] == pytest.approx(100 * 0.5 * 50.5 / 100)
    # The approximation matches every predicted pixel: it reads F = 1.
    approx = _metric(tasks=['edge'], edge_tolerance=0.05,
                     edge_protocol='distance')
    approx.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    assert approx.compute_metrics(approx.results)['edge/odsF'] == \
        pytest.approx(100.)


def test_edge_benchmark_tolerance_and_ignore():
    gt, prob = _doubled_edge()
    prob[0, 20] = 0                  # keep only the copy 2 px away
    tight = _metric(tasks=['edge'], edge_tolerance=0.01, edge_nms=False)
    tight.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    assert tight.compute_metrics(tight.results)['edge/odsF'] == 0.
    loose = _metric(tasks=['edge'], edge_tolerance=0.05, edge_nms=False)
    loose.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    # Every pixel lies 2 px from its match: F = 100, except that the
    # benchmark's assignment draws its outlier edges at random (BSDS
    # correspondPixels, seeded from the clock) and now and then leaves a
    # pixel or two unmatched (53 runs in 3000 lost one of the 20 here).
    assert loose.compute_metrics(loose.results)['edge/odsF'] >= 90.
    # Predictions on ignored pixels are neither right nor wrong.
    gt[0, 22, :] = 255
    ignored = _metric(tasks=['edge'], edge_tolerance=0.05, edge_nms=False)
    ignored.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    res = ignored.compute_metrics(ignored.results)
    assert res['edge/odsF'] == 0. and res['edge/AP'] == 0.


def test_edge_benchmark_nms_thins_a_blurred_edge():
    """A 5-pixel-wide ridge across a vertical edge: suppressed to its
    crest, it is found with full precision away from the border."""
    gt = np.zeros((1, 48, 48), np.int64)
    gt[0, :, 24] = 1
    prob = np.zeros((1, 48, 48))
    for dx, v in zip(range(-2, 3), (0.3, 0.6, 0.9, 0.6, 0.3)):
        prob[0, :, 24 + dx] = v
    m = _metric(tasks=['edge'], edge_tolerance=0.02)
    m.process(None, [_sample(gt_edge=gt, pred_edge=prob)])
    counts = m.results[0]['edge']['counts']
    # At threshold 0.25 the band is 5 px wide before suppression (one-to-
    # one matching would leave 4 of 5 pixels unmatched, precision 0.2);
    # after it every predicted pixel lies on the edge. The assignment's
    # random outlier graph leaves a pixel or two unmatched now and then
    # (52 runs in 1000 lost one or two of 44), so precision >= 0.9.
    i = int(np.searchsorted(m.edge_thresholds, 0.25))
    assert counts[i, 1] > 0 and counts[i, 0] >= 0.9 * counts[i, 1]
    assert counts[i, 1] <= 48        # one pixel per row at most


def test_edge_options_checked():
    with pytest.raises(ValueError, match='edge_protocol'):
        MultiTaskMetric(edge_protocol='seism')
    with pytest.raises(ValueError, match='edge_tolerance'):
        MultiTaskMetric(edge_tolerance=2)
    with pytest.raises(ValueError, match='edge_thresholds'):
        MultiTaskMetric(edge_thresholds=0)


def test_delta_m():
    m = _metric(single_task_baselines=dict(semseg=50., normals=20.))
    d = m.delta_m({'semseg/mIoU': 55., 'normals/mean': 22.})
    # (+10% - 10%) / 2
    assert d == pytest.approx(0.)
    d = m.delta_m({'semseg/mIoU': 55., 'normals/mean': 18.})
    assert d == pytest.approx(10.)
    with pytest.raises(ValueError, match="unknown task 'seg'"):
        MultiTaskMetric(single_task_baselines=dict(seg=1.))


def test_size_mismatch_named():
    m = _metric(tasks=['depth'])
    with pytest.raises(ValueError, match="'depth'.*differ in size"):
        m.process(None, [_sample(gt_depth=np.ones((1, 4, 4)),
                                 pred_depth=np.ones((1, 2, 2)))])


def test_baselines_from_file(tmp_path):
    path = tmp_path / 'baselines.json'
    path.write_text(json.dumps(dict(baselines=dict(
        semseg=dict(value=50., metric='semseg/mIoU'),
        normals=dict(value=20., metric='normals/mean')))))
    m = _metric(single_task_baselines=str(path))
    assert m.delta_m({'semseg/mIoU': 55., 'normals/mean': 18.}) == \
        pytest.approx(10.)
    with pytest.raises(FileNotFoundError, match='missing.json.*'
                       'single_task_baselines.py'):
        MultiTaskMetric(single_task_baselines=str(tmp_path / 'missing.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"semseg": 50')
    with pytest.raises(ValueError, match='bad.json.*not a baselines file'):
        MultiTaskMetric(single_task_baselines=str(bad))
    wrong = tmp_path / 'wrong.json'
    wrong.write_text(json.dumps(dict(baselines=dict(surface=dict(value=1.)))))
    with pytest.raises(ValueError, match="unknown task 'surface'"):
        MultiTaskMetric(single_task_baselines=str(wrong))
    with pytest.raises(ValueError, match='positive'):
        MultiTaskMetric(single_task_baselines=dict(semseg=0.))


def test_unknown_options_and_format_only_checked():
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['outdir'\]"):
        MultiTaskMetric(outdir='x')
    with pytest.raises(ValueError, match='format_only needs output_dir'):
        MultiTaskMetric(format_only=True)


def test_predictions_written_in_dataset_encodings(tmp_path):
    n = np.zeros((3, 2, 2))
    n[2] = 1.
    n[:, 0, 0] = (1., 0., 0.)
    sample = dict(img_path='/data/JPEGImages/2008_000123.jpg',
                  **_sample(pred_sem_seg=np.array([[[0, 1], [2, 0]]]),
                            pred_normals=n,
                            pred_edge=np.array([[[0., 0.5], [1., 0.2]]]),
                            pred_depth=np.array([[[1.5, 2.], [3., 4.]]])))
    m = _metric(output_dir=str(tmp_path), format_only=True)
    m.dataset_meta = dict(m.dataset_meta, zero_label_ignored=('semseg', ))
    m.process(None, [sample])       # no ground truth needed
    assert m.compute_metrics(m.results) == {}
    # NYUD-style labels: class c written as c + 1 (0 = unlabelled).
    label = np.asarray(Image.open(tmp_path / 'semseg' / '2008_000123.png'))
    assert label.tolist() == [[1, 2], [3, 1]]
    edge = np.asarray(Image.open(tmp_path / 'edge' / '2008_000123.png'))
    assert edge.tolist() == [[0, 128], [255, 51]]
    rgb = np.asarray(Image.open(tmp_path / 'normals' / '2008_000123.png'))
    assert rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [255, 128, 128]   # (n + 1) / 2 * 255
    assert rgb[1, 1].tolist() == [128, 128, 255]
    depth = np.load(tmp_path / 'depth' / '2008_000123.npy',
                    allow_pickle=False)
    assert depth.dtype == np.float32
    assert depth.tolist() == [[1.5, 2.], [3., 4.]]


def test_task_without_annotation_is_not_evaluable_never_nan():
    """Point 2: a split with no annotated person gives no human_parts
    mIoU (not NaN), and no Δm that would silently drop the task."""
    gt_parts = np.full((1, 2, 4), 255)
    gt = np.array([[[0, 0, 1, 1], [2, 2, 1, 1]]])
    m = _metric(tasks=['semseg', 'human_parts'],
                single_task_baselines=dict(semseg=50., human_parts=40.))
    m.process(None, [_sample(gt_sem_seg=gt, pred_sem_seg=gt,
                             gt_human_parts=gt_parts,
                             pred_human_parts=np.zeros((1, 2, 4)))])
    res = m.compute_metrics(m.results)
    assert res['semseg/mIoU'] == 100.
    assert 'human_parts/mIoU' not in res and 'delta_m' not in res
    assert all(math.isfinite(v) for v in res.values())


def test_baselines_file_metric_field_checked(tmp_path):
    """Point 12: a baseline measured with another metric is refused."""
    path = tmp_path / 'b.json'
    path.write_text(json.dumps(dict(baselines=dict(
        depth=dict(value=0.5, metric='depth/abs_rel')))))
    with pytest.raises(ValueError, match=r"the depth baseline is "
                       r"'depth/abs_rel', but .* 'depth/rmse'"):
        MultiTaskMetric(single_task_baselines=str(path))
    path.write_text(json.dumps(dict(baselines=dict(
        depth=dict(value=float('nan'), metric='depth/rmse')))))
    with pytest.raises(ValueError, match='must be a positive number'):
        MultiTaskMetric(single_task_baselines=str(path))


def _pred_sample(img_id, img_path):
    return dict(img_id=img_id, img_path=img_path,
                **_sample(pred_depth=np.ones((1, 2, 2))))


def test_prediction_ids_with_subfolders_stay_distinct(tmp_path):
    """Point 10: ``a/x`` and ``b/x`` are two files."""
    m = _metric(output_dir=str(tmp_path), format_only=True)
    m.process(None, [_pred_sample('a/x', '/d/images/a/x.jpg'),
                     _pred_sample('b/x', '/d/images/b/x.jpg')])
    assert (tmp_path / 'depth' / 'a' / 'x.npy').is_file()
    assert (tmp_path / 'depth' / 'b' / 'x.npy').is_file()
    # A second run into the same folder does not replace them silently.
    with pytest.raises(FileExistsError, match=r'x.npy exists'):
        m.process(None, [_pred_sample('a/x', '/d/images/a/x.jpg')])
    m2 = _metric(output_dir=str(tmp_path), format_only=True, overwrite=True)
    m2.process(None, [_pred_sample('a/x', '/d/images/a/x.jpg')])


def test_predictions_never_follow_a_link_out_of_the_folder(tmp_path):
    """Point 10: links planted in the output folder are not followed."""
    out, outside = tmp_path / 'out', tmp_path / 'outside'
    outside.mkdir()
    (out / 'depth').mkdir(parents=True)
    os.symlink(outside, out / 'depth' / 'a')
    m = _metric(output_dir=str(out), format_only=True)
    with pytest.raises(ValueError, match=r'depth/a is a symbolic link'):
        m.process(None, [_pred_sample('a/x', '/d/a/x.jpg')])
    # The task folder itself linked to a dataset's ground truth: refused
    # even with overwrite, and nothing is made out there.
    gt = tmp_path / 'data' / 'depth'
    gt.mkdir(parents=True)
    np.save(gt / 'z.npy', np.full(1, 7.))
    out2 = tmp_path / 'out2'
    out2.mkdir()
    os.symlink(gt, out2 / 'depth')
    m = _metric(output_dir=str(out2), format_only=True, overwrite=True)
    for img_id in ('z', 'sub/z'):
        with pytest.raises(ValueError, match=r'out2/depth is a symbolic'):
            m.process(None, [_pred_sample(img_id, '/d/z.jpg')])
    assert np.load(gt / 'z.npy').tolist() == [7.]
    assert sorted(p.name for p in gt.iterdir()) == ['z.npy']
    # A link at the file itself is replaced, its target untouched.
    victim = outside / 'victim.npy'
    np.save(victim, np.zeros(1))
    os.symlink(victim, out / 'depth' / 'y.npy')
    m = _metric(output_dir=str(out), format_only=True, overwrite=True)
    m.process(None, [_pred_sample('y', '/d/y.jpg')])
    assert np.load(victim).tolist() == [0.]
    assert not (out / 'depth' / 'y.npy').is_symlink()
    assert list(outside.iterdir()) == [victim]
