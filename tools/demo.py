"""The main job of `make demo`: the whole AdaMTL story on the embedded
synthetic dataset, on CPU.

    python tools/demo.py [--work-dir work_dirs/demo] [--retrain]
                         [--budgets 0.25 0.5 0.75]

1. stage 1: train the static multi-task baseline
   (configs/static_swin_synthetic.py);
2. stage 2: pre-train the policy with the rest frozen
   (configs/adamtl_swin_synthetic_policy.py);
3. stage 3: joint adaptive training (configs/adamtl_swin_synthetic.py);
4. evaluate the static model and the adaptive model at each budget with
   tools/test.py, and time both on the validation images (batch 1, CPU,
   alternating, median per image);
5. print one table (per-task metrics, Δm vs static, mean executed GFLOPs,
   latency) and save it as Markdown and JSON in the work dir, with the
   correlation of each image's executed GFLOPs with its number of
   objects.

Generates data/synthetic first if it is missing or stale. Finished
trainings (their final checkpoints) are reused unless --retrain is given.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STATIC = 'configs/static_swin_synthetic.py'
POLICY = 'configs/adamtl_swin_synthetic_policy.py'
ADAPTIVE = 'configs/adamtl_swin_synthetic.py'
# The synthetic dataset's tasks; one column each: its main metric (the
# one Δm uses).
TASK_COLUMNS = ['semseg', 'human_parts', 'saliency', 'normals', 'edge',
                'depth']


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def synthetic_data_current(root: str) -> bool:
    """Whether ``root`` holds data of the current generator version."""
    from mmadamtl.datasets.synthetic import GENERATOR_VERSION
    meta = osp.join(root, 'meta.json')
    if not osp.isfile(meta):
        return False
    with open(meta, encoding='utf-8') as f:
        return json.load(f).get('version') == GENERATOR_VERSION


def metrics_table(metrics: dict) -> str:
    rows = ['| task | metric | value |', '| --- | --- | --- |']
    for key, value in metrics.items():
        task, _, name = key.partition('/')
        rows.append(f'| {task} | {name or task} | {value:.2f} |')
    return '\n'.join(rows)


def results_table(rows: list) -> str:
    """One line per model: main metric per task, Δm, GFLOPs, latency."""
    from mmadamtl.utils import TASKS
    specs = [TASKS[t] for t in TASK_COLUMNS]
    head = ['model', 'budget'] + [spec.label for spec in specs] + [
        'Δm vs static (%)', 'GFLOPs', 'encoder GFLOPs', 'encoder ratio',
        'CPU latency (ms/img)', 'latency ratio']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + ' --- |' * len(head)]
    for r in rows:
        m = r['metrics']
        budget = '-' if r['budget'] is None else f"{r['budget']:g}"
        cells = [r['model'], budget]
        cells += [f'{m[spec.main_key]:.2f}' for spec in specs]
        cells += [f"{r['delta_m']:+.2f}", f"{m['gflops']:.4f}",
                  f"{m['encoder_gflops']:.4f}",
                  f"{r['encoder_ratio']:.3f}",
                  f"{r['latency_ms']:.2f}", f"{r['latency_ratio']:.3f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def train(config, work_dir, data_opt, retrain, load_from=None):
    """Train unless a finished run is there; return its last checkpoint."""
    last = osp.join(work_dir, 'last_checkpoint')
    if retrain or not osp.isfile(last):
        extra = [f'load_from={load_from}'] if load_from else []
        run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
             '--cfg-options', *data_opt, *extra])
    with open(last, encoding='utf-8') as f:
        return f.read().strip()


def evaluate(config, checkpoint, work_dir, out, data_opt, budget=None):
    extra = [] if budget is None else [f'model.test_cfg.budget={budget}']
    run([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
         work_dir, '--out', out, '--cfg-options', *data_opt, *extra])
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


def load_model(config: str, checkpoint: str, budget=None):
    """The evaluated model, running at ``budget``."""
    from mmadamtl.apis import init_model
    model = init_model(osp.join(ROOT, config), checkpoint)
    model.set_budget(budget)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic')
    parser.add_argument('--budgets', type=float, nargs='+',
                        default=[0.25, 0.5, 0.75])
    parser.add_argument('--retrain', action='store_true')
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    import numpy as np

    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    from mmadamtl.utils import TASKS

    py = sys.executable
    work_dir = osp.join(ROOT, args.work_dir)
    data_root = osp.join(ROOT, args.data_root)
    data_opt = [f'{k}.dataset.data_root={args.data_root}'
                for k in ('train_dataloader', 'val_dataloader',
                          'test_dataloader')]

    start = time.time()
    if not synthetic_data_current(data_root):
        run([py, 'tools/make_synthetic_dataset.py', args.data_root])
    static_ckpt = train(STATIC, osp.join(work_dir, 'static'), data_opt,
                        args.retrain)
    policy_ckpt = train(POLICY, osp.join(work_dir, 'policy'), data_opt,
                        args.retrain, load_from=static_ckpt)
    adaptive_ckpt = train(ADAPTIVE, osp.join(work_dir, 'adamtl'), data_opt,
                          args.retrain, load_from=policy_ckpt)
    train_s = time.time() - start

    evals = [('static', STATIC, static_ckpt, None)] + [
        ('AdaMTL', ADAPTIVE, adaptive_ckpt, b) for b in args.budgets]
    results = []
    for name, config, ckpt, budget in evals:
        tag = name if budget is None else f'{name}_b{budget:g}'
        metrics = evaluate(config, ckpt, osp.join(work_dir, 'eval'),
                           osp.join(work_dir, f'{tag}_metrics.json'),
                           data_opt, budget)
        results.append(dict(model=name, budget=budget, config=config,
                            checkpoint=osp.relpath(ckpt, ROOT),
                            metrics=metrics))

    models = {r['model'] if r['budget'] is None else f"b{r['budget']:g}":
              load_model(r['config'], osp.join(ROOT, r['checkpoint']),
                         r['budget']) for r in results}
    timing = time_models(models, STATIC, data_root)
    static = results[0]['metrics']
    baselines = {t: static[TASKS[t].main_key] for t in TASK_COLUMNS}
    with open(osp.join(data_root, 'meta.json'), encoding='utf-8') as f:
        objects = json.load(f)['num_objects']
    num_objects = np.array([objects[i] for i in timing['ids']], float)
    for r, name in zip(results, models):
        r['delta_m'] = delta_m(r['metrics'], baselines)
        r['encoder_ratio'] = r['metrics']['encoder_gflops'] / \
            static['encoder_gflops']
        r['latency_ms'] = timing['latency_ms'][name]
        r['latency_ratio'] = r['latency_ms'] / \
            timing['latency_ms']['static']
        g = np.array(timing['encoder_gflops'][name])
        r['gflops_objects_corr'] = float(np.corrcoef(g, num_objects)[0, 1]) \
            if g.std() > 0 else None

    table = results_table(results)
    corr = ', '.join(
        f"budget {r['budget']:g}: r = {r['gflops_objects_corr']:+.2f}"
        for r in results[1:] if r['gflops_objects_corr'] is not None)
    title = ('AdaMTL vs the static multi-task Swin on the synthetic dataset '
             f'({len(num_objects)} validation images, CPU, '
             f'{os.cpu_count()} cores)')
    notes = (f'Latency: median per image at batch 1 (`model.predict`), '
             f'models timed alternately image by image after warm-up. '
             f'Δm against the static model. Correlation of each image\'s '
             f'executed encoder GFLOPs with its number of objects: '
             f'{corr or "n/a"}.')
    with open(osp.join(work_dir, 'results.md'), 'w', encoding='utf-8') as f:
        f.write(f'# {title}\n\n{table}\n\n{notes}\n')
    with open(osp.join(work_dir, 'results.json'), 'w',
              encoding='utf-8') as f:
        json.dump(dict(title=title, train_seconds=train_s,
                       results=results), f, indent=2)
    print(f'\n{title}\n\n{table}\n\n{notes}\n')
    print(f'saved {osp.join(args.work_dir, "results.md")} and results.json '
          f'({time.time() - start:.0f}s)')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
