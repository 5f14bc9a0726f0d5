"""The MTLoRA part of `make demo`: parameter-efficient adaptation of a
pretrained encoder to all six synthetic tasks, on CPU.

    python tools/demo_mtlora.py [--work-dir work_dirs/demo] [--retrain]
                                [--ranks 4 8 16] [--schedule-scale F]

The synthetic data has no ImageNet encoder, so one stands in:

1. pre-train the small Swin on one task, semseg
   (configs/mtlora_swin_synthetic_pretrain.py, 800 iterations);
2. adapt it to all six tasks, each run 400 iterations from that
   checkpoint with the same data, schedule and decoders:
   decoders only (configs/mtlora_swin_synthetic_decoders.py, encoder
   frozen), full multi-task fine-tuning (..._full.py) and MTLoRA
   (configs/mtlora_swin_synthetic.py) at each TA-LoRA rank of --ranks;
3. evaluate each with tools/test.py; count its trainable parameters;
   time one training iteration of each (batch 8, alternately in this
   process, median of 10) and count its training memory (weights,
   gradients, AdamW states and the activations saved for backward, see
   ``mmadamtl.utils.memory``); write MTLoRA's adapter-only file
   (tools/mtlora.py extract) next to its checkpoint and compare sizes;
4. print one table (Δm against full fine-tuning) and save it as
   Markdown and JSON in the work dir (mtlora_results.*).

Finished trainings are reused unless --retrain is given.
"""
import argparse
import copy
import os
import os.path as osp
import sys
import time

from demo_common import (MTLORA, ROOT, TASK_COLUMNS, add_demo_args,
                         data_options, demo_paths, ensure_synthetic_data,
                         evaluate, fmt, quick_banner, run, train)

from mmadamtl.utils.safe_io import write_json, write_text

PRETRAIN = 'configs/mtlora_swin_synthetic_pretrain.py'
FULL = 'configs/mtlora_swin_synthetic_full.py'
DECODERS = 'configs/mtlora_swin_synthetic_decoders.py'


def _runs(ranks):
    runs = [dict(name='decoders only (frozen encoder)', tag='decoders',
                 config=DECODERS, opts={}),
            dict(name='full fine-tuning', tag='full', config=FULL, opts={})]
    runs += [dict(name=f'MTLoRA r={r}', tag=f'r{r}', config=MTLORA,
                  opts={'model.backbone.lora.r': r}) for r in ranks]
    return runs


def step_costs(runs, data_root, repeats=10, batch=8):
    """Trainable and total parameters, median training-iteration time (ms,
    alternately) and training memory (MiB) of each run's model on one
    batch of ``batch`` images."""
    import numpy as np
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmadamtl.apis import build_test_dataset, init_model, load_batch
    from mmadamtl.utils.memory import training_memory
    from mmadamtl.utils.timing import alternate_timings, train_step

    models, wrappers = {}, {}
    for r in runs:
        model = init_model(osp.join(ROOT, r['config']), cfg_options=r['opts'])
        model.train()
        models[r['tag']] = model
        wrappers[r['tag']] = build_optim_wrapper(
            model, copy.deepcopy(model.cfg.optim_wrapper))
    first = next(iter(models.values()))
    dataset = build_test_dataset(
        Config.fromfile(osp.join(ROOT, MTLORA)), data_root)
    data = load_batch(first, dataset, list(range(batch)))
    inputs, samples = data['inputs'], data['data_samples']

    times = alternate_timings(
        {t: train_step(m, wrappers[t], inputs, samples)
         for t, m in models.items()}, repeats=repeats, warmup=2,
        desc='training iteration')
    out = {}
    for tag, model in models.items():
        mem = training_memory(
            model, lambda: model.parse_losses(
                model.loss(inputs, copy.deepcopy(samples)))[0])
        out[tag] = dict(
            trainable=sum(p.numel() for p in model.parameters()
                          if p.requires_grad),
            total=sum(p.numel() for p in model.parameters()),
            iter_ms=1e3 * float(np.median(times[tag])),
            memory_mib={k: v / 2**20 for k, v in mem.items()})
    return out


def table(rows) -> str:
    from mmadamtl.utils import TASKS
    specs = [TASKS[t] for t in TASK_COLUMNS]
    head = ['method', 'trainable params', 'share of all'] + [
        s.label for s in specs] + [
        'Δm vs full FT (%)', 'train iter (ms, batch 8)',
        'train memory (MiB)', 'GFLOPs']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for r in rows:
        m = r['metrics']
        cells = [r['name'], f"{r['trainable']:,}",
                 f"{100 * r['trainable'] / r['total']:.1f}%"]
        cells += [f'{m[s.main_key]:.2f}' for s in specs]
        cells += [fmt(r['delta_m'], '{:+.2f}'), f"{r['iter_ms']:.0f}",
                  f"{r['memory_mib']['total']:.0f}", f"{m['gflops']:.4f}"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def mtlora_story(work_dir, data_root, data_opt, retrain, ranks, scale=1.0):
    """Train (or reuse), evaluate and measure; returns the table and the
    results."""
    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    from mmadamtl.utils import TASKS

    start = time.time()
    pretrain = train(PRETRAIN, osp.join(work_dir, 'mtlora_pretrain'),
                     data_opt, retrain, scale=scale)
    runs = _runs(ranks)
    for r in runs:
        r['ckpt'] = train(
            r['config'], osp.join(work_dir, f"mtlora_{r['tag']}"), data_opt,
            retrain, load_from=pretrain,
            options=[f'{k}={v}' for k, v in r['opts'].items()], scale=scale)
    train_s = time.time() - start
    for r in runs:
        r['metrics'] = evaluate(
            r['config'], r['ckpt'], osp.join(work_dir, 'eval'),
            osp.join(work_dir, f"mtlora_{r['tag']}_metrics.json"), data_opt,
            r['opts'])
    costs = step_costs(runs, data_root)
    full = next(r for r in runs if r['tag'] == 'full')['metrics']
    baselines = {t: full[TASKS[t].main_key] for t in TASK_COLUMNS}
    for r in runs:
        r.update(costs[r['tag']])
        r['delta_m'] = delta_m(r['metrics'], baselines)
    # One base serves many task sets: MTLoRA's adapter-only file.
    mid = [r for r in runs if r['tag'].startswith('r')][len(ranks) // 2]
    adapters = osp.join(work_dir, f"mtlora_{mid['tag']}", 'adapters.pth')
    # The demo's own adapter file, written anew on every run.
    run([sys.executable, 'tools/mtlora.py', 'extract', MTLORA, mid['ckpt'],
         adapters, '--overwrite', '--cfg-options'] +
        [f'{k}={v}' for k, v in mid['opts'].items()])
    size = dict(rank=ranks[len(ranks) // 2],
                adapters=osp.getsize(adapters),
                checkpoint=osp.getsize(mid['ckpt']))
    return runs, size, train_s


def render(runs, size, scale=1.0, data_root='data/synthetic') -> str:
    title = ('MTLoRA vs decoders-only and full fine-tuning on the '
             'synthetic dataset (semseg-pretrained small Swin adapted to '
             f'six tasks, CPU, {os.cpu_count()} cores)')
    notes = (
        'Every run: 400 iterations from the same semseg-pretrained '
        'checkpoint (configs/mtlora_swin_synthetic_pretrain.py, 800 '
        'iterations), same data, schedule and decoders; TS-LoRA rank 4 in '
        'every MTLoRA row. Δm against full fine-tuning. Train iter: median '
        'of 10 training iterations (forward, backward, AdamW step), the '
        'models timed alternately in one process. Train memory: weights + '
        'gradients + AdamW states + activations saved for backward, '
        'counted from the tensors (mmadamtl.utils.memory). Adapter-only '
        f"file of MTLoRA r={size['rank']} (tools/mtlora.py extract): "
        f"{size['adapters'] / 2**20:.2f} MiB against "
        f"{size['checkpoint'] / 2**20:.2f} MiB for its full checkpoint "
        f"(ratio {size['adapters'] / size['checkpoint']:.3f}; the "
        'checkpoint also holds the optimizer state).')
    return (f'# {title}\n\n{quick_banner(scale, data_root)}{table(runs)}'
            f'\n\n{notes}\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_demo_args(parser)
    parser.add_argument('--ranks', type=int, nargs='+', default=[4, 8, 16])
    args = parser.parse_args(argv)
    demo_paths(args)
    work_dir = osp.join(ROOT, args.work_dir)
    ensure_synthetic_data(args.data_root)
    report(work_dir, args.data_root, data_options(args.data_root),
           args.retrain, args.ranks, args.schedule_scale)


def report(work_dir, data_root, data_opt, retrain, ranks,
           scale=1.0) -> str:
    """Run the story, print and save its table; returns the Markdown."""
    runs, size, train_s = mtlora_story(work_dir, osp.join(ROOT, data_root),
                                       data_opt, retrain, ranks, scale)
    text = render(runs, size, scale, data_root)
    write_text(osp.join(work_dir, 'mtlora_results.md'), text,
               overwrite=True)
    write_json(osp.join(work_dir, 'mtlora_results.json'),
               dict(schedule_scale=scale, train_seconds=train_s,
                    adapter_file=size,
                    results=[{k: v for k, v in r.items()} for r in runs]),
               overwrite=True)
    print(f'\n{text}')
    return text


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    main()
