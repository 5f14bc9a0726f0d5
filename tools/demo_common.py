"""What the demo stories share (not a tool: ``tools/demo.py`` and the
``tools/demo_*.py`` stories import it, and none of them imports another):
the synthetic data, training that reuses finished runs, evaluation with
``tools/test.py``, batch-1 timing and the quick run's options."""
import json
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

STATIC = 'configs/static_swin_synthetic.py'
# AdaMTL's stages 2 and 3 (stage 1 is STATIC), and the static models
# trained as long as its three stages together (1400 iterations): the
# fair baseline Δm is measured against and the half-as-deep control.
POLICY = 'configs/adamtl_swin_synthetic_policy.py'
ADAPTIVE = 'configs/adamtl_swin_synthetic.py'
STATIC_FAIR = 'configs/static_swin_synthetic_1400it.py'
STATIC_SMALL = 'configs/static_swin_synthetic_small.py'
CONTROLLABLE = 'configs/controllable_swin_synthetic.py'
MTLORA = 'configs/mtlora_swin_synthetic.py'
# The quick run (`make demo`): every training's iteration counts times
# QUICK_SCALE, on a copy of the synthetic data with fewer validation images
# (the full run, `make demo-full`, is the one the docs' tables come from).
QUICK_SCALE = 1 / 16
QUICK_DATA = 'data/synthetic_quick'
QUICK_NUM_VAL = 40
# What the Pareto table says when it holds one training seed.
ONE_SEED_NOTE = ('one seed; `python tools/pareto.py --seeds 3` for the '
                 'spread')
# The synthetic dataset's tasks; one column each: its main metric (the
# one Δm uses).
TASK_COLUMNS = ['semseg', 'human_parts', 'saliency', 'normals', 'edge',
                'depth']


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def add_demo_args(parser) -> None:
    """The options every demo story takes (then ``demo_paths``)."""
    parser.add_argument('--work-dir',
                        help='default: work_dirs/demo, work_dirs/demo_quick '
                        'for a quick run')
    parser.add_argument('--data-root',
                        help=f'default: data/synthetic, {QUICK_DATA} for a '
                        f'quick run')
    parser.add_argument('--retrain', action='store_true',
                        help='train again even where a finished run is')
    parser.add_argument(
        '--schedule-scale', type=float, default=1.0, metavar='F',
        help='a quick run: every training\'s iteration counts times F '
        '(tools/train.py --schedule-scale), no validation during training')


def demo_paths(args) -> None:
    """Fill in ``args.work_dir`` and ``args.data_root`` where not given:
    the full run's, or the quick run's (``args.schedule_scale < 1``), so
    that a quick training never lands in the full run's work dir."""
    quick = args.schedule_scale != 1
    args.work_dir = args.work_dir or (
        'work_dirs/demo_quick' if quick else 'work_dirs/demo')
    args.data_root = args.data_root or (
        QUICK_DATA if quick else 'data/synthetic')


def quick_banner(scale: float, data_root: str) -> str:
    """The line a quick run's tables start with ('' for the full run)."""
    if scale == 1:
        return ''
    return (f'**Quick run** (`make demo`): every training {scale:g} of its '
            f'iterations (the iteration counts below are the full '
            f'run\'s), evaluated on {data_root}. Not the docs\' figures: '
            f'`make demo-full` reproduces those.\n\n')


def data_options(data_root: str) -> list:
    """``--cfg-options`` pointing every dataloader at ``data_root``."""
    return [f'{k}.dataset.data_root={data_root}'
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')]


def ensure_synthetic_data(root: str) -> None:
    """Generate the synthetic data at ``root`` (relative to the repo) if it
    is missing or stale. A stale set (an older generator's ``meta.json``)
    is regenerated in place; any other non-empty folder is refused by the
    generator, never overwritten."""
    full = osp.join(ROOT, root)
    if synthetic_data_current(full):
        return
    stale = osp.isfile(osp.join(full, 'meta.json'))
    quick = osp.normpath(full) == osp.normpath(osp.join(ROOT, QUICK_DATA))
    run([sys.executable, 'tools/make_synthetic_dataset.py', root] +
        (['--num-val', str(QUICK_NUM_VAL)] if quick else []) +
        (['--overwrite'] if stale else []))


def synthetic_data_current(root: str) -> bool:
    """Whether ``root`` holds data of the current generator version."""
    from mmadamtl.datasets.synthetic import GENERATOR_VERSION
    meta = osp.join(root, 'meta.json')
    if not osp.isfile(meta):
        return False
    with open(meta, encoding='utf-8') as f:
        return json.load(f).get('version') == GENERATOR_VERSION


def fmt(value, spec):
    """``value`` formatted with ``spec``, '-' for None."""
    return '-' if value is None else spec.format(value)


def train(config, work_dir, data_opt, retrain, load_from=None, options=(),
          scale=1.0):
    """Train unless a finished run (its last checkpoint at the config's
    ``max_iters``, times ``scale``) is there, resuming an unfinished one;
    return the last checkpoint. ``scale < 1``: a quick run, without
    validation during training."""
    from mmadamtl.utils.work_dir import finished_checkpoint
    extra = [f'load_from={load_from}'] if load_from else []
    extra += list(options)
    quick = []
    if scale != 1:
        extra.append(f'train_cfg.val_begin={10**9}')
        quick = ['--schedule-scale', repr(scale)]
    iters = train_iters(config, extra, scale)
    found = None if retrain else finished_checkpoint(
        osp.join(ROOT, work_dir), iters)
    if found is None:
        resume = [] if retrain else ['--resume']
        run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
             *resume, *quick, '--cfg-options', *data_opt, *extra])
        found = finished_checkpoint(osp.join(ROOT, work_dir), iters)
        if found is None:
            raise RuntimeError(f'{config}: the training in {work_dir} did '
                               f'not reach max_iters={iters}')
    return found[0]


def train_iters(config, options=(), scale=1.0) -> int:
    """``max_iters`` of ``config`` with ``--cfg-options`` ``options``, its
    schedule times ``scale``."""
    from mmengine.config import Config

    from mmadamtl.utils.schedule import scale_schedule
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(cfg_options(list(options)))
    return scale_schedule(cfg, scale).train_cfg.max_iters


def finished(config, work_dir, options=(), scale=1.0):
    """The last checkpoint of a finished training of ``config`` (with
    ``options``, its schedule times ``scale``) in ``work_dir``, else None
    (``train`` without training)."""
    from mmadamtl.utils.work_dir import finished_checkpoint
    found = finished_checkpoint(osp.join(ROOT, work_dir),
                                train_iters(config, options, scale))
    return None if found is None else found[0]


def seed_dir(work_dir: str, seed: int = 0) -> str:
    """The work dir of a training with ``randomness.seed=seed``: the
    configs' own seed, 0, trains in ``work_dir`` (the demo's runs), any
    other in ``work_dir_seed<seed>``."""
    return work_dir if seed == 0 else f'{work_dir}_seed{seed}'


def seed_options(seed: int = 0) -> list:
    """``--cfg-options`` of a training seeded ``seed`` (none for 0, the
    configs' own ``randomness.seed``)."""
    return [] if seed == 0 else [f'randomness.seed={seed}']


# AdaMTL's recipes: each stage's config and the work dir name of its
# seed-0 run, stage 1 the static model. 'main' is the demo's (800 / 100 /
# 500 iterations); 'long-joint' re-splits the same 1400 iterations 400 /
# 100 / 900 (issue 30: is the joint stage's length the limit?).
ADAMTL_RECIPES = {
    'main': ((STATIC, 'static'), (POLICY, 'policy'), (ADAPTIVE, 'adamtl')),
    'long-joint': (
        ('configs/ablations/static_swin_synthetic_400it.py',
         'long_joint_static'),
        ('configs/ablations/adamtl_swin_synthetic_long_joint_policy.py',
         'long_joint_policy'),
        ('configs/ablations/adamtl_swin_synthetic_long_joint.py',
         'long_joint')),
    # Stage 3 only: the main recipe's stages 1 and 2, then the budget held
    # on the batch's mean (one budget per batch).
    'batch-budget': (
        (STATIC, 'static'), (POLICY, 'policy'),
        ('configs/ablations/adamtl_swin_synthetic_batch_budget.py',
         'batch_budget')),
    # Stages 2 and 3: one token selector per stage (AdaMTL's own) from the
    # main recipe's stage 1.
    'shared-tokens': (
        (STATIC, 'static'),
        ('configs/ablations/adamtl_swin_synthetic_shared_tokens_policy.py',
         'shared_tokens_policy'),
        ('configs/ablations/adamtl_swin_synthetic_shared_tokens.py',
         'shared_tokens')),
}


def train_adamtl(work_dir, data_opt, retrain, scale=1.0, seed=0,
                 recipe='main', trained=None) -> dict:
    """AdaMTL's three stages of ``recipe`` (see ``ADAMTL_RECIPES``), each
    from the last checkpoint of the one before (reusing finished ones, see
    ``train``), seeded ``seed``; returns each stage's last checkpoint
    (``static``, ``policy``, ``adamtl``). ``trained``: a dict, work dir ->
    checkpoint, of the stages already trained (or found) for other recipes
    of the same run, filled in here: a stage recipes share runs once, with
    ``retrain`` too."""
    opts = seed_options(seed)
    trained = {} if trained is None else trained
    ckpts, load_from = [], None
    for config, name in ADAMTL_RECIPES[recipe]:
        stage_dir = seed_dir(osp.join(work_dir, name), seed)
        if stage_dir not in trained:
            trained[stage_dir] = train(config, stage_dir, data_opt, retrain,
                                       load_from=load_from, options=opts,
                                       scale=scale)
        load_from = trained[stage_dir]
        ckpts.append(load_from)
    return dict(zip(('static', 'policy', 'adamtl'), ckpts))


def cfg_options(opts: list) -> dict:
    """``--cfg-options KEY=VALUE ...`` parsed as tools/train.py parses
    them."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='*', action=DictAction,
                        default={})
    return parser.parse_args(['--cfg-options', *opts]).cfg_options


def options(opts: dict) -> list:
    """``--cfg-options`` of a dict."""
    return [f'{k}={v}' for k, v in opts.items()]


def evaluate(config, checkpoint, work_dir, out, data_opt, opts,
             reuse=False, args=()):
    """``tools/test.py``'s metrics of ``checkpoint`` (``args``: its
    further arguments), written anew to ``out``; with ``reuse``, read from
    ``out`` instead where it is newer than ``checkpoint`` (an evaluation
    of this training)."""
    if reuse and osp.isfile(out) and \
            osp.getmtime(out) >= osp.getmtime(checkpoint):
        with open(out, encoding='utf-8') as f:
            return json.load(f)
    run([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
         work_dir, '--metrics-out', out, '--overwrite', *args,
         '--cfg-options', *data_opt, *options(opts)])
    with open(out, encoding='utf-8') as f:
        return json.load(f)


def time_models(models: dict, config: str, data_root: str,
                warmup: int = 5) -> dict:
    """Median CPU latency per image (batch 1) of each model, measured
    alternately image by image in this process, and each image's
    executed encoder GFLOPs."""
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmadamtl.apis import build_test_dataset
    from mmadamtl.evaluation import image_complexity
    from mmadamtl.utils.cli import progress

    dataset = build_test_dataset(Config.fromfile(osp.join(ROOT, config)),
                                 data_root)
    times = {name: [] for name in models}
    gflops = {name: [] for name in models}
    first = next(iter(models.values()))
    ids = []
    with torch.no_grad():
        for i in progress(range(len(dataset) + warmup), 'timing'):
            item = dataset[i % len(dataset)]
            # Every model's config shares the static one's preprocessor.
            data = first.data_preprocessor(pseudo_collate([item]))
            for name, model in models.items():
                start = time.perf_counter()
                out = model.predict(data['inputs'], data['data_samples'])
                elapsed = time.perf_counter() - start
                if i >= warmup:
                    times[name].append(elapsed)
                    gflops[name].append(
                        image_complexity(out[0])['encoder_gflops'])
            if i >= warmup:
                ids.append(osp.splitext(osp.basename(
                    item['data_samples'].img_path))[0])
    return dict(
        latency_ms={n: 1e3 * float(np.median(t)) for n, t in times.items()},
        encoder_gflops=gflops, ids=ids)


def objects_corr(timing: dict, data_root: str) -> dict:
    """Per model of ``time_models``' result: the correlation of each
    image's executed encoder GFLOPs with its number of objects (the
    synthetic data's ``meta.json``), None where every image cost the
    same (a static model: equal up to float rounding, as a static
    model's per-image sums give)."""
    import numpy as np
    with open(osp.join(data_root, 'meta.json'), encoding='utf-8') as f:
        objects = json.load(f)['num_objects']
    num_objects = np.array([objects[i] for i in timing['ids']], float)
    out = {}
    for name, values in timing['encoder_gflops'].items():
        g = np.array(values, float)
        out[name] = float(np.corrcoef(g, num_objects)[0, 1]) \
            if np.ptp(g) > 1e-9 * np.abs(g).max() else None
    return out


def load_model(config: str, checkpoint: str, opts: dict):
    """The evaluated model, with the evaluation's config options."""
    from mmadamtl.apis import init_model
    return init_model(osp.join(ROOT, config), checkpoint, cfg_options=opts)
