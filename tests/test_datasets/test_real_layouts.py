"""Loaders on tiny fixtures written in the real PASCAL_MT and NYUD layouts."""
import os

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from mmadamtl.datasets import NYUDMTDataset, PascalContextMTDataset

H, W = 12, 16
PIPE = [dict(type='LoadImageFromFile'), dict(type='LoadMultiTaskAnnotations')]


def _anno(objects):
    """A PASCAL-Part 'anno' struct; objects: (class_ind, mask, parts)."""
    odt = [('class', 'O'), ('class_ind', 'O'), ('mask', 'O'), ('parts', 'O')]
    pdt = [('part_name', 'O'), ('mask', 'O')]
    arr = np.zeros((1, len(objects)), dtype=odt)
    for j, (cls, mask, parts) in enumerate(objects):
        parr = np.zeros((1, len(parts)) if parts else (0, 0), dtype=pdt)
        for k, (name, pmask) in enumerate(parts):
            parr[0, k] = (name, pmask.astype(np.uint8))
        arr[0, j] = ('obj', np.array([[cls]], np.uint8),
                     mask.astype(np.uint8), parr)
    return {'imname': 'x', 'objects': arr}


@pytest.fixture()
def pascal_root(tmp_path):
    root = tmp_path / 'PASCAL_MT'
    for sub in ('JPEGImages', 'ImageSets/Context', 'semseg/VOC12',
                'semseg/pascal-context', 'human_parts', 'sal_distill',
                'normals_distill', 'pascal-context/trainval'):
        os.makedirs(root / sub)
    (root / 'ImageSets/Context/val.txt').write_text('a\nb\n')
    rng = np.random.default_rng(0)
    for name in 'ab':
        Image.fromarray(rng.integers(0, 255, (H, W, 3), np.uint8)).save(
            root / 'JPEGImages' / f'{name}.jpg')
    # Image a: VOC12 semseg as a palettised PNG with an ignore region.
    sem = np.zeros((H, W), np.uint8)
    sem[2:6, 3:9] = 15
    sem[0, :] = 255
    img = Image.fromarray(sem, mode='P')
    img.putpalette([i % 256 for i in range(768)])
    img.save(root / 'semseg/VOC12/a.png')
    # Image b only has the pascal-context fallback.
    Image.fromarray(np.full((H, W), 7, np.uint8)).save(
        root / 'semseg/pascal-context/b.png')
    # Parts: a has a person (class 15) with head and left foot, plus a
    # car (class 7) that must be ignored; b has no person.
    person = np.zeros((H, W), bool)
    person[2:10, 3:9] = True
    head = np.zeros((H, W), bool)
    head[2:4, 4:8] = True
    foot = np.zeros((H, W), bool)
    foot[8:10, 3:5] = True
    car = np.zeros((H, W), bool)
    car[10:, 10:] = True
    savemat(root / 'human_parts/a.mat',
            {'anno': _anno([(7, car, []),
                            (15, person, [('head', head),
                                          ('lfoot', foot)])])})
    savemat(root / 'human_parts/b.mat', {'anno': _anno([(7, car, [])])})
    sal = np.zeros((H, W), np.uint8)
    sal[:, :8] = 200
    sal[:, 8:] = 100
    for name in 'ab':
        Image.fromarray(sal).save(root / f'sal_distill/{name}.png')
    normals = np.zeros((H, W, 3), np.uint8)
    normals[..., 0] = 255
    normals[..., 1] = 0
    normals[..., 2] = 128
    label_map = np.full((H, W), 3, np.uint16)  # 3: valid class
    label_map[:, :4] = 1                       # 1: not NYU-compatible
    label_map[6:, 4:] = 4                      # another valid class
    for name in 'ab':
        Image.fromarray(normals).save(root / f'normals_distill/{name}.png')
        savemat(root / f'pascal-context/trainval/{name}.mat',
                {'LabelMap': label_map})
    return root


def test_pascal_loader(pascal_root):
    ds = PascalContextMTDataset(
        tasks=['semseg', 'human_parts', 'saliency', 'normals', 'edge'],
        split='val', data_root=str(pascal_root), pipeline=PIPE)
    a, b = ds[0], ds[1]
    assert a['gt_sem_seg'][3, 4] == 15 and a['gt_sem_seg'][0, 0] == 255
    assert (b['gt_sem_seg'] == 7).all()
    parts = a['gt_human_parts']
    assert (parts[2:4, 4:8] == 1).all()      # head -> 1
    assert (parts[8:10, 3:5] == 6).all()     # lfoot -> 6
    assert parts[5, 5] == 0                  # person, no part: background
    assert parts[11, 11] == 0                # the car is not a person
    assert (b['gt_human_parts'] == 255).all()
    np.testing.assert_array_equal(a['gt_saliency'][:, :8], 1)
    np.testing.assert_array_equal(a['gt_saliency'][:, 8:], 0)
    n = a['gt_normals']
    np.testing.assert_allclose(n[0, 5], [1, -1, 2 * 128 / 255 - 1],
                               atol=1e-6)
    assert (n[:, :4] == 0).all()             # invalid LabelMap class
    edge = a['gt_edge']
    assert edge.dtype == np.uint8 and set(np.unique(edge)) <= {0, 1}
    # Edges follow the LabelMap boundaries (columns 3/4 and rows 5/6).
    assert edge[:, 3:5].any() and edge[5:7, 6:].any()
    assert not edge[1:4, 7:12].any()


def test_pascal_missing_and_corrupt_files(pascal_root):
    os.remove(pascal_root / 'human_parts/b.mat')
    with pytest.raises(FileNotFoundError, match='human_parts/b.mat'):
        PascalContextMTDataset(
            tasks=['human_parts'], split='val',
            data_root=str(pascal_root), pipeline=PIPE)
    # Without the up-front check the loader still names the file.
    ds = PascalContextMTDataset(
        tasks=['human_parts'], split='val', data_root=str(pascal_root),
        pipeline=PIPE, check_files=False)
    with pytest.raises(FileNotFoundError, match='human_parts/b.mat'):
        ds[1]
    (pascal_root / 'sal_distill/a.png').write_bytes(b'not a png')
    ds = PascalContextMTDataset(
        tasks=['saliency'], split='val', data_root=str(pascal_root),
        pipeline=PIPE)
    with pytest.raises(ValueError, match='sal_distill/a.png'):
        ds[0]
    (pascal_root / 'pascal-context/trainval/a.mat').write_bytes(b'garbage')
    ds = PascalContextMTDataset(
        tasks=['edge'], split='val', data_root=str(pascal_root),
        pipeline=PIPE)
    with pytest.raises(ValueError, match='trainval/a.mat'):
        ds[0]


def test_corrupt_image_is_named(pascal_root):
    (pascal_root / 'JPEGImages/b.jpg').write_bytes(b'\xff\xd8 broken')
    # Found at construction (the image header is read), not mid-run.
    with pytest.raises(ValueError, match='JPEGImages/b.jpg.*not a readable'):
        PascalContextMTDataset(
            tasks=['semseg'], split='val', data_root=str(pascal_root),
            pipeline=PIPE, test_mode=True)
    ds = PascalContextMTDataset(
        tasks=['semseg'], split='val', data_root=str(pascal_root),
        pipeline=PIPE, test_mode=True, check_files=False)
    with pytest.raises(Exception, match='JPEGImages/b.jpg'):
        ds[1]


def test_pascal_rejects_depth(pascal_root):
    with pytest.raises(ValueError, match="unknown task 'depth'"):
        PascalContextMTDataset(
            tasks=['depth'], split='val', data_root=str(pascal_root),
            pipeline=PIPE)


def test_nyud_loader(tmp_path):
    root = tmp_path / 'NYUD'
    for sub in ('images', 'segmentation', 'depth', 'normals', 'edge',
                'gt_sets'):
        os.makedirs(root / sub)
    (root / 'gt_sets/train.txt').write_text('0001\n')
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(
        root / 'images/0001.jpg')
    seg = np.zeros((H, W), np.uint8)
    seg[:, 5:] = 1
    seg[:, 10:] = 40
    Image.fromarray(seg).save(root / 'segmentation/0001.png')
    depth = np.linspace(0, 3, H * W, dtype=np.float32).reshape(H, W)
    np.save(root / 'depth/0001.npy', depth)
    normals = np.zeros((H, W, 3), np.float32)
    normals[..., 2] = 1
    np.save(root / 'normals/0001.npy', normals)
    np.save(root / 'edge/0001.npy', (depth > 1.5).astype(np.float32))
    ds = NYUDMTDataset(
        tasks=['semseg', 'depth', 'normals', 'edge'], split='train',
        data_root=str(root), pipeline=PIPE)
    r = ds[0]
    assert len(ds.metainfo['classes']) == 40
    sem = r['gt_sem_seg']
    assert (sem[:, :5] == 255).all() and (sem[:, 5:10] == 0).all()
    assert (sem[:, 10:] == 39).all()
    np.testing.assert_array_equal(r['gt_depth'], depth)
    np.testing.assert_array_equal(r['gt_normals'], normals)
    np.testing.assert_array_equal(r['gt_edge'], depth > 1.5)
    with pytest.raises(ValueError, match="unknown task 'human_parts'"):
        NYUDMTDataset(tasks=['human_parts'], data_root=str(root))
