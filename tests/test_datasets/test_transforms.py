import numpy as np
import pytest
import torch

from mmadamtl.datasets.transforms import (MultiTaskRandomCrop,
                                          MultiTaskRandomFlip, MultiTaskResize,
                                          PackMultiTaskInputs)


def _results(h=8, w=10):
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return dict(
        img=rng.integers(0, 255, (h, w, 3), np.uint8),
        gt_sem_seg=rng.integers(0, 5, (h, w)).astype(np.uint8),
        gt_human_parts=rng.integers(0, 7, (h, w)).astype(np.uint8),
        gt_normals=normals,
        gt_depth=rng.uniform(1, 5, (h, w)).astype(np.float32),
        task_fields=['gt_sem_seg', 'gt_human_parts', 'gt_normals',
                     'gt_depth'],
        img_shape=(h, w), ori_shape=(h, w))


def test_flip_negates_normals_x_and_mirrors_maps():
    r = _results()
    orig = {k: v.copy() for k, v in r.items() if isinstance(v, np.ndarray)}
    out = MultiTaskRandomFlip(prob=1.0)(r)
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(out['img'], orig['img'][:, ::-1])
    np.testing.assert_array_equal(out['gt_sem_seg'],
                                  orig['gt_sem_seg'][:, ::-1])
    expected = orig['gt_normals'][:, ::-1].copy()
    expected[..., 0] *= -1
    np.testing.assert_array_equal(out['gt_normals'], expected)
    np.testing.assert_array_equal(out['gt_normals'][..., 1:],
                                  orig['gt_normals'][:, ::-1, 1:])


def test_flip_swaps_left_right_pairs():
    r = _results()
    parts = r['gt_human_parts'].copy()
    r['flip_pairs'] = dict(human_parts=[(3, 4)])
    out = MultiTaskRandomFlip(prob=1.0)(r)
    mirrored = parts[:, ::-1]
    expected = mirrored.copy()
    expected[mirrored == 3] = 4
    expected[mirrored == 4] = 3
    np.testing.assert_array_equal(out['gt_human_parts'], expected)
    # semseg has no pairs: a plain mirror.
    assert not np.array_equal(out['gt_human_parts'], mirrored)


def test_flip_prob_zero_and_bad_prob():
    r = _results()
    img = r['img'].copy()
    out = MultiTaskRandomFlip(prob=0.0)(r)
    assert not out['flip']
    np.testing.assert_array_equal(out['img'], img)
    with pytest.raises(ValueError, match='prob'):
        MultiTaskRandomFlip(prob=1.5)


def test_resize_keeps_labels_and_alignment():
    r = _results(8, 10)
    labels = set(np.unique(r['gt_sem_seg']))
    out = MultiTaskResize(scale=(20, 16), keep_ratio=False)(r)
    assert out['img'].shape == (16, 20, 3)
    for key in out['task_fields']:
        assert out[key].shape[:2] == (16, 20)
    # Nearest neighbour: no blended labels, a 2x upscale repeats pixels.
    assert set(np.unique(out['gt_sem_seg'])) <= labels
    np.testing.assert_array_equal(out['gt_sem_seg'][::2, ::2],
                                  _results(8, 10)['gt_sem_seg'])
    assert out['scale_factor'] == (2.0, 2.0)


def test_random_crop_aligned():
    r = _results(16, 16)
    # Encode the position in the maps to check alignment.
    r['gt_depth'] = np.arange(256, dtype=np.float32).reshape(16, 16)
    r['img'][..., 0] = (np.arange(256) % 251).reshape(16, 16)
    out = MultiTaskRandomCrop(crop_size=(8, 6))(r)
    assert out['img'].shape == (8, 6, 3) and out['gt_depth'].shape == (8, 6)
    y0, x0 = divmod(int(out['gt_depth'][0, 0]), 16)
    np.testing.assert_array_equal(out['img'][..., 0],
                                  ((np.arange(256) % 251).reshape(16, 16)
                                   [y0:y0 + 8, x0:x0 + 6]))


def test_pack():
    r = _results()
    out = PackMultiTaskInputs()(r)
    sample = out['data_samples']
    assert out['inputs'].shape == (3, 8, 10)
    assert sample.gt_sem_seg.data.shape == (1, 8, 10)
    assert sample.gt_sem_seg.data.dtype == torch.long
    assert sample.gt_normals.data.shape == (3, 8, 10)
    torch.testing.assert_close(
        sample.gt_normals.data[:, 2, 3],
        torch.from_numpy(r['gt_normals'][2, 3]))
    assert sample.task_names == ['semseg', 'human_parts', 'normals', 'depth']
