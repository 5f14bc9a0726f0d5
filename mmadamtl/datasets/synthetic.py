"""A small, deterministic multi-task dataset written in the PASCAL_MT layout.

Each scene is a height field seen from above: a tilted ground plane with 0
to ``max_objects`` objects (boxes, balls, cones, rings and jointed
"persons" with six body parts). Semantic labels, parts, saliency
(foreground), depth (distance to an orthographic camera) and surface normals
(from the height field's gradient) all come from the same geometry, the
image is the scene shaded under a random light, and the edges follow from
the class boundaries of the written LabelMap, as for PASCAL-Context.
Scenes really differ in complexity: the number of objects is drawn per
image and stored in ``meta.json``.
"""
import os
import os.path as osp
from typing import Dict, Tuple

import numpy as np
from mmseg.registry import DATASETS
from PIL import Image

from mmadamtl.utils.safe_io import atomic_write, write_json, write_text

from .pascal_context_mt import PART_CLASSES, PascalContextMTDataset

SYNTHETIC_CLASSES = ('background', 'person', 'box', 'ball', 'cone', 'ring')
# LabelMap ids written per class: PASCAL-Context ids whose normals are valid,
# so the PASCAL loader keeps the normals of every synthetic pixel.
SYNTHETIC_LABEL_MAP_IDS = (3, 4, 6, 9, 10, 11)
PERSON_CLASS_ID = 15  # class id of a person in PASCAL-Part's 'anno' struct
CAMERA_HEIGHT = 10.0
# Bumped whenever the generator's output changes, so stale data is noticed.
GENERATOR_VERSION = 2

# Person skeleton in body units: (part name, start, end, radius, label).
_PERSON = (
    ('head', (0, -3.0), (0, -3.0), 0.9),
    ('torso', (0, -2.0), (0, 1.0), 0.85),
    ('luarm', (-1.0, -1.8), (-1.8, -0.3), 0.35),
    ('ruarm', (1.0, -1.8), (1.8, -0.3), 0.35),
    ('llarm', (-1.8, -0.3), (-2.2, 1.2), 0.3),
    ('rlarm', (1.8, -0.3), (2.2, 1.2), 0.3),
    ('luleg', (-0.5, 1.0), (-0.7, 2.8), 0.45),
    ('ruleg', (0.5, 1.0), (0.7, 2.8), 0.45),
    ('llleg', (-0.7, 2.8), (-0.8, 4.6), 0.38),
    ('rlleg', (0.7, 2.8), (0.8, 4.6), 0.38),
)
_CLASS_PROBS = (1 / 3, ) + (2 / 3 / 4, ) * 4  # person, then the others
_PART_LABEL = dict(head=1, torso=2, luarm=3, ruarm=3, llarm=4, rlarm=4,
                   luleg=5, ruleg=5, llleg=6, rlleg=6)


def _capsule(yy, xx, p0, p1, radius):
    """Height of a capsule (half-round cross-section) over the grid."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    denom = max(float(d @ d), 1e-9)
    t = np.clip(((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / denom, 0, 1)
    dist2 = (xx - p0[0] - t * d[0])**2 + (yy - p0[1] - t * d[1])**2
    return np.sqrt(np.clip(radius**2 - dist2, 0, None))


def _object_height(kind: str, yy, xx, cx, cy, size, rng) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    r = np.sqrt(dx**2 + dy**2)
    if kind == 'box':
        angle = rng.uniform(0, np.pi)
        u = np.abs(dx * np.cos(angle) + dy * np.sin(angle))
        v = np.abs(-dx * np.sin(angle) + dy * np.cos(angle))
        a, b = size, size * rng.uniform(0.5, 1.0)
        inside = (u < a) & (v < b)
        # Flat top with bevelled rims so the normals are not all vertical.
        rim = np.minimum(a - u, b - v)
        return np.where(inside, np.minimum(rim, 0.3 * size) + 0.5 * size, 0)
    if kind == 'ball':
        return np.sqrt(np.clip(size**2 - r**2, 0, None))
    if kind == 'cone':
        return np.clip(1.2 * (size - r), 0, None)
    if kind == 'ring':
        tube = 0.35 * size
        return np.sqrt(np.clip(tube**2 - (r - 0.8 * size)**2, 0, None))
    raise ValueError(kind)


def _person(yy, xx, cx, cy, size, rng) -> Tuple[np.ndarray, Dict]:
    """Height of a person lying in the scene and the height of each part."""
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    scale = size / 2.5
    parts = {}
    for name, p0, p1, radius in _PERSON:
        q0 = rot @ np.asarray(p0) * scale + (cx, cy)
        q1 = rot @ np.asarray(p1) * scale + (cx, cy)
        parts[name] = _capsule(yy, xx, q0, q1, radius * scale)
    height = np.max(np.stack(list(parts.values())), axis=0)
    return height, parts


def render_scene(size: int, rng: np.random.Generator,
                 max_objects: int = 8) -> dict:
    """Render one scene; returns every map as a numpy array."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    tilt = rng.uniform(-0.01, 0.01, size=2)
    ground = tilt[0] * (xx - size / 2) + tilt[1] * (yy - size / 2)
    height = ground.copy()
    label = np.zeros((size, size), np.uint8)
    instance = np.zeros((size, size), np.int32)
    parts = np.zeros((size, size), np.uint8)
    part_names = np.full((size, size), '', dtype=object)
    colours = [rng.uniform(0.35, 0.6, 3)]
    base_colour = {
        1: (0.85, 0.55, 0.45), 2: (0.3, 0.45, 0.85), 3: (0.9, 0.8, 0.2),
        4: (0.3, 0.8, 0.35), 5: (0.75, 0.3, 0.8)}
    objects = []
    num_objects = int(rng.integers(0, max_objects + 1))
    for i in range(1, num_objects + 1):
        # A third of the objects are persons, so the parts task has data.
        cls = int(rng.choice(len(SYNTHETIC_CLASSES) - 1, p=_CLASS_PROBS)) + 1
        obj_size = rng.uniform(0.07, 0.16) * size
        cx, cy = rng.uniform(0.1, 0.9, 2) * size
        part_heights = None
        if SYNTHETIC_CLASSES[cls] == 'person':
            obj_h, part_heights = _person(yy, xx, cx, cy, 1.4 * obj_size,
                                          rng)
        else:
            obj_h = _object_height(SYNTHETIC_CLASSES[cls], yy, xx, cx, cy,
                                   obj_size, rng)
        mask = obj_h > 0
        if not mask.any():
            continue
        # Painter's order: a later object lies on top of what it covers.
        height[mask] = ground[mask] + obj_h[mask] + 0.02 * i
        label[mask] = cls
        instance[mask] = i
        parts[mask] = 0
        part_names[mask] = ''
        if part_heights is not None:
            names = list(part_heights)
            top = np.argmax(np.stack([part_heights[n] for n in names]), 0)
            for k, name in enumerate(names):
                sel = mask & (top == k) & (part_heights[name] > 0)
                parts[sel] = _PART_LABEL[name]
                part_names[sel] = name
        colours.append(
            np.clip(np.asarray(base_colour[cls]) +
                    rng.normal(0, 0.06, 3), 0, 1))
        objects.append(dict(instance=i, cls=cls))

    gy, gx = np.gradient(height)
    normals = np.stack([-gx, -gy, np.ones_like(height)], -1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normals @ light, 0, 1)
    albedo = np.zeros((size, size, 3))
    albedo[:] = colours[0]
    texture = rng.normal(0, 0.04, (size // 8 + 1, size // 8 + 1))
    texture = np.kron(texture, np.ones((8, 8)))[:size, :size]
    albedo += texture[..., None]
    for k, obj in enumerate(objects, start=1):
        albedo[instance == obj['instance']] = colours[k]
    image = albedo * shade[..., None] + rng.normal(0, 0.02, (size, size, 3))
    image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)

    return dict(
        image=image,
        label=label,
        instance=instance,
        parts=parts,
        part_names=part_names,
        objects=objects,
        normals=normals.astype(np.float32),
        depth=(CAMERA_HEIGHT - height).astype(np.float32),
        num_objects=len(objects))


def _parts_struct(scene: dict) -> dict:
    """The scene's objects as a PASCAL-Part ``anno`` struct (savemat)."""
    obj_dtype = [('class', 'O'), ('class_ind', 'O'), ('mask', 'O'),
                 ('parts', 'O')]
    part_dtype = [('part_name', 'O'), ('mask', 'O')]
    objects = np.zeros((1, len(scene['objects'])), dtype=obj_dtype)
    for j, obj in enumerate(scene['objects']):
        mask = scene['instance'] == obj['instance']
        is_person = SYNTHETIC_CLASSES[obj['cls']] == 'person'
        names = sorted(set(scene['part_names'][mask]) - {''})
        part_arr = np.zeros((1, len(names)) if is_person else (0, 0),
                            dtype=part_dtype)
        for k, name in enumerate(names if is_person else []):
            part_arr[0, k] = (name, (mask & (scene['part_names'] == name)
                                     ).astype(np.uint8))
        objects[0, j] = (SYNTHETIC_CLASSES[obj['cls']],
                         np.array([[PERSON_CLASS_ID if is_person else
                                    100 + obj['cls']]], dtype=np.uint8),
                         mask.astype(np.uint8), part_arr)
    return {'imname': 'synthetic', 'objects': objects}


def _write(path: str, save) -> None:
    """``save(file)`` into ``path`` through the package's atomic writer
    (the generator was allowed to write into its folder)."""
    with atomic_write(path, overwrite=True) as tmp, open(tmp, 'wb') as f:
        save(f)


def write_scene(root: str, name: str, scene: dict) -> None:
    """Write one scene in the PASCAL_MT layout (plus ``depth/``)."""
    from scipy.io import savemat

    def image(array, fmt, **kw):
        return lambda f: Image.fromarray(array).save(f, format=fmt, **kw)

    def mat(data):
        return lambda f: savemat(f, data, do_compression=True)

    fg = (scene['label'] > 0).astype(np.uint8) * 255
    png = np.round((scene['normals'] + 1) / 2 * 255).astype(np.uint8)
    label_map = np.asarray(SYNTHETIC_LABEL_MAP_IDS,
                           np.uint16)[scene['label']]
    files = {
        f'JPEGImages/{name}.jpg': image(scene['image'], 'JPEG', quality=95),
        f'semseg/VOC12/{name}.png': image(scene['label'], 'PNG'),
        f'human_parts/{name}.mat': mat({'anno': _parts_struct(scene)}),
        f'sal_distill/{name}.png': image(fg, 'PNG'),
        f'normals_distill/{name}.png': image(png, 'PNG'),
        f'pascal-context/trainval/{name}.mat': mat({'LabelMap': label_map}),
        f'depth/{name}.npy': lambda f: np.save(f, scene['depth']),
    }
    for rel, save in files.items():
        _write(osp.join(root, rel), save)


def make_synthetic_dataset(root: str,
                           num_train: int = 300,
                           num_val: int = 100,
                           size: int = 128,
                           max_objects: int = 8,
                           seed: int = 0,
                           progress: bool = False,
                           overwrite: bool = False) -> dict:
    """Generate the dataset under ``root``; returns its ``meta.json``.

    Raises:
        FileExistsError: ``root`` exists and is not empty, unless
            ``overwrite`` (its split files, ``meta.json`` and same-named
            images are then replaced).
    """
    if osp.isdir(root) and os.listdir(root) and not overwrite:
        raise FileExistsError(
            f'{root} exists and is not empty: generating the synthetic '
            f'dataset there would replace its split files and meta.json; '
            f'choose an empty folder or pass overwrite=True '
            f'(tools/make_synthetic_dataset.py --overwrite)')
    if osp.exists(root) and not osp.isdir(root):
        raise NotADirectoryError(f'{root} is a file, not a folder')
    for sub in ('JPEGImages', 'ImageSets/Context', 'semseg/VOC12',
                'human_parts', 'sal_distill', 'normals_distill',
                'pascal-context/trainval', 'depth'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    rng = np.random.default_rng(seed)
    meta = dict(version=GENERATOR_VERSION, seed=seed, size=size,
                max_objects=max_objects,
                classes=list(SYNTHETIC_CLASSES), num_objects={})
    splits = dict(train=num_train, val=num_val)
    total, done = num_train + num_val, 0
    for split, count in splits.items():
        names = []
        for i in range(count):
            name = f'{split}_{i:05d}'
            scene = render_scene(size, rng, max_objects)
            write_scene(root, name, scene)
            meta['num_objects'][name] = scene['num_objects']
            names.append(name)
            done += 1
            if progress and (done % 50 == 0 or done == total):
                print(f'  {done}/{total} images', flush=True)
        write_text(osp.join(root, 'ImageSets', 'Context', f'{split}.txt'),
                   '\n'.join(names) + '\n', overwrite=True)
    write_json(osp.join(root, 'meta.json'), meta, indent=1, overwrite=True)
    return meta


@DATASETS.register_module()
class SyntheticMTDataset(PascalContextMTDataset):
    """The generated dataset (``tools/make_synthetic_dataset.py``).

    Same layout and encodings as :class:`PascalContextMTDataset`, read by
    the same code, plus ``depth/<id>.npy`` (0 = ignore). Six semantic
    classes; six body parts on "person" objects.
    """
    SUPPORTED_TASKS = ('semseg', 'human_parts', 'saliency', 'normals', 'edge',
                       'depth')
    METAINFO = dict(classes=SYNTHETIC_CLASSES, part_classes=PART_CLASSES)
