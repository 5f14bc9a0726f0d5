"""Bad files are named, never silently read (issue: lose nothing, fake
nothing; points 5, 7, 8, 9, 11 and 12)."""
import shutil

import numpy as np
import pytest
from PIL import Image

from mmadamtl.datasets import SyntheticMTDataset, make_synthetic_dataset
from mmadamtl.datasets.transforms import LoadMultiTaskAnnotations

PIPE = [dict(type='LoadImageFromFile'), dict(type='LoadMultiTaskAnnotations')]
TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'edge', 'depth']


@pytest.fixture()
def root(tiny_synthetic, tmp_path):
    dst = tmp_path / 'synthetic'
    shutil.copytree(tiny_synthetic, dst)
    return dst


def _dataset(root, split='val', **kw):
    return SyntheticMTDataset(tasks=TASKS, split=split, data_root=str(root),
                              pipeline=PIPE, test_mode=True, **kw)


def _split(root, text, split='val'):
    path = root / 'ImageSets' / 'Context' / f'{split}.txt'
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_nan_in_ground_truth_array_is_named(root):
    """Point 5: one NaN pixel in a depth .npy."""
    path = root / 'depth' / 'val_00001.npy'
    depth = np.load(path)
    depth[3, 4] = np.nan
    np.save(path, depth)
    ds = _dataset(root)
    ds[0]
    with pytest.raises(ValueError, match=r'val_00001.npy has 1 NaN'):
        ds[1]


def test_npz_named_npy_is_named(root):
    """Point 11."""
    path = root / 'depth' / 'val_00000.npy'
    depth = np.load(path)
    with open(path, 'wb') as f:
        np.savez(f, depth=depth)
    with pytest.raises(ValueError, match=r'val_00000.npy is an .npz'):
        _dataset(root)[0]


def test_huge_declared_image_is_refused_before_decoding(root):
    """Point 8: a PNG declaring 30000 x 30000 (a few hundred KB on disk)
    fails at construction, naming the file and its size, unless the limit
    is raised."""
    big = Image.new('L', (30000, 30000))
    big.save(root / 'JPEGImages' / 'val_00002.jpg', format='PNG')
    with pytest.raises(ValueError,
                       match=r'val_00002.jpg declares 30000x30000 = 900 '
                       r'megapixels, above the limit of 100'):
        _dataset(root)
    with pytest.raises(ValueError, match='max_pixels'):
        _dataset(root, max_pixels=1000)


@pytest.mark.parametrize('content,match', [
    (b'', r'val_00000.jpg \(0 bytes\) is not a readable image'),
    ('tiny', r'val_00000.jpg is 300x1: each side must be at least 8'),
])
def test_empty_and_degenerate_images_are_named(root, content, match):
    """Point 11: a zero-byte image and a 1 x 300 one."""
    path = root / 'JPEGImages' / 'val_00000.jpg'
    if content == 'tiny':
        Image.new('RGB', (300, 1)).save(path, format='JPEG')
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        _dataset(root)


def test_16_bit_label_png_is_refused(root):
    """Point 9: 40000 would wrap to class 64."""
    path = root / 'semseg' / 'VOC12' / 'val_00000.png'
    label = np.array(Image.open(path)).astype(np.uint16)
    label[0, 0] = 40000
    Image.fromarray(label).save(path)
    with pytest.raises(ValueError, match=r'val_00000.png is a uint16 image; '
                       r'label PNGs must be 8-bit'):
        _dataset(root)[0]


def test_float_and_one_bit_saliency(root, tmp_path):
    """Point 9: a float image is refused; a 1-bit PNG is read as the mask
    it is."""
    load = LoadMultiTaskAnnotations(tasks=['saliency'])
    path = tmp_path / 'sal.tiff'
    Image.fromarray(np.ones((16, 16), np.float32)).save(path)
    ann = dict(saliency=dict(path=str(path), format='saliency_png'))
    with pytest.raises(ValueError, match=r'sal.tiff is a float32 image'):
        load(dict(ann_info=ann, ori_shape=(16, 16)))
    mask = np.zeros((16, 16), bool)
    mask[4:8] = True
    Image.fromarray(mask).save(tmp_path / 'sal.png')
    ann['saliency']['path'] = str(tmp_path / 'sal.png')
    out = load(dict(ann_info=ann, ori_shape=(16, 16)))
    assert np.array_equal(out['gt_saliency'], mask.astype(np.uint8))


def test_split_file_encodings(root):
    """Point 11: a BOM is skipped; bytes that are not UTF-8 are named with
    their line."""
    _split(root, '\ufeffval_00000\nval_00001\n'.encode('utf-8'))
    ds = _dataset(root)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [
        'val_00000', 'val_00001']
    path = _split(root, b'val_00000\nval_\xff0001\n')
    with pytest.raises(ValueError,
                       match=rf'{path}: line 2 is not UTF-8 text'):
        _dataset(root)


@pytest.mark.parametrize('bad', ['/elsewhere/stolen', '../stolen',
                                 'sub/../../stolen'])
def test_ids_outside_the_root_are_refused(root, bad):
    """Point 12."""
    path = _split(root, f'val_00000\n{bad}\n')
    with pytest.raises(ValueError, match=rf'{path}, line 2: image id '
                       rf'{bad!r} must be a name inside the data root'):
        _dataset(root)


@pytest.mark.parametrize('again', ['val_00000', './val_00000'])
def test_duplicate_ids_are_refused(root, again):
    """Point 12."""
    _split(root, f'val_00000\nval_00001\n{again}\n')
    with pytest.raises(ValueError, match=rf"line 3: image id '{again}' "
                       r'repeats line 1'):
        _dataset(root)


def test_generator_refuses_a_non_empty_folder(tmp_path):
    """Point 7."""
    folder = tmp_path / 'mine'
    folder.mkdir()
    (folder / 'meta.json').write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match='is not empty'):
        make_synthetic_dataset(str(folder), num_train=1, num_val=1, size=32)
    assert (folder / 'meta.json').read_text() == '{"mine": 1}'
    make_synthetic_dataset(str(folder), num_train=1, num_val=1, size=32,
                           overwrite=True)
    assert 'version' in (folder / 'meta.json').read_text()
