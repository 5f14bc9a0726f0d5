import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmadamtl.datasets import SyntheticMTDataset, make_synthetic_dataset
from mmadamtl.datasets.synthetic import (SYNTHETIC_CLASSES,
                                         SYNTHETIC_LABEL_MAP_IDS, render_scene)

ALL = ['semseg', 'human_parts', 'saliency', 'normals', 'edge', 'depth']
PIPE = [dict(type='LoadImageFromFile'), dict(type='LoadMultiTaskAnnotations')]


def test_layout_and_determinism(tiny_synthetic, tmp_path):
    for sub in ('JPEGImages/train_00000.jpg', 'ImageSets/Context/train.txt',
                'ImageSets/Context/val.txt', 'semseg/VOC12/val_00003.png',
                'human_parts/train_00000.mat', 'sal_distill/train_00000.png',
                'normals_distill/train_00000.png',
                'pascal-context/trainval/train_00000.mat',
                'depth/train_00000.npy', 'meta.json'):
        assert osp.isfile(osp.join(tiny_synthetic, sub)), sub
    again = str(tmp_path / 'again')
    make_synthetic_dataset(again, num_train=6, num_val=4, size=64, seed=1)
    for sub in ('semseg/VOC12/train_00004.png', 'depth/val_00001.npy'):
        a = osp.join(tiny_synthetic, sub)
        b = osp.join(again, sub)
        if sub.endswith('.npy'):
            np.testing.assert_array_equal(np.load(a), np.load(b))
        else:
            np.testing.assert_array_equal(
                np.array(Image.open(a)), np.array(Image.open(b)))


def test_scenes_vary_in_object_count():
    rng = np.random.default_rng(0)
    counts = [render_scene(48, rng)['num_objects'] for _ in range(40)]
    assert min(counts) <= 1 and max(counts) >= 6


def test_render_scene_geometry():
    scene = render_scene(64, np.random.default_rng(3), max_objects=8)
    n = scene['normals']
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-5)
    # Orthographic camera: depth = camera height - height field, so depth
    # is smaller on objects than on the surrounding ground on average.
    fg = scene['label'] > 0
    if fg.any() and (~fg).any():
        assert scene['depth'][fg].mean() < scene['depth'][~fg].mean()
    # Parts exist only on persons.
    person = scene['label'] == SYNTHETIC_CLASSES.index('person')
    assert not (scene['parts'][~person] > 0).any()


def test_loader_reads_generated_maps(tiny_synthetic):
    ds = SyntheticMTDataset(
        tasks=ALL, split='train', data_root=tiny_synthetic, pipeline=PIPE)
    assert len(ds) == 6
    meta = json.load(open(osp.join(tiny_synthetic, 'meta.json')))
    saw_person = saw_empty = False
    for i in range(len(ds)):
        r = ds[i]
        name = osp.basename(r['img_path'])[:-4]
        sem = r['gt_sem_seg']
        assert sem.shape == (64, 64) and sem.max() < len(SYNTHETIC_CLASSES)
        # Saliency is the foreground of the semantic map.
        np.testing.assert_array_equal(r['gt_saliency'], (sem > 0))
        # Normals are valid everywhere (the LabelMap ids are NYU-valid).
        norm = np.linalg.norm(r['gt_normals'], axis=-1)
        np.testing.assert_allclose(norm, 1, atol=0.02)
        # Edges lie on class boundaries only.
        edge = r['gt_edge'].astype(bool)
        if meta['num_objects'][name] == 0 or len(np.unique(sem)) == 1:
            assert not edge.any()
        else:
            assert edge.any()
        parts = r['gt_human_parts']
        if (sem == 1).any():
            saw_person = True
            assert parts.max() <= 6 and (parts[sem == 1] > 0).mean() > 0.9
            assert (parts[sem != 1] == 0).all()
        else:
            saw_empty = True
            assert (parts == 255).all()
        assert (r['gt_depth'] > 0).all()
    assert saw_person or saw_empty


def test_label_map_ids_are_normals_valid():
    from mmadamtl.datasets.pascal_context_mt import PASCAL_NORMALS_VALID_IDS
    assert set(SYNTHETIC_LABEL_MAP_IDS) <= set(PASCAL_NORMALS_VALID_IDS)
    assert len(SYNTHETIC_LABEL_MAP_IDS) == len(SYNTHETIC_CLASSES)


def test_unknown_task_and_missing_split(tiny_synthetic, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        SyntheticMTDataset(
            tasks=['segmentation'], data_root=tiny_synthetic, pipeline=PIPE)
    with pytest.raises(FileNotFoundError, match='test.txt'):
        SyntheticMTDataset(
            tasks=['semseg'], split='test', data_root=tiny_synthetic,
            pipeline=PIPE)
