import importlib.util
import json
import os.path as osp

import pytest

from mmadamtl.datasets.synthetic import GENERATOR_VERSION
from tests.conftest import ROOT


def _tool(name):
    """A module of tools/ (the demo stories import tools/demo_common)."""
    import sys
    if osp.join(ROOT, 'tools') not in sys.path:
        sys.path.insert(0, osp.join(ROOT, 'tools'))
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _demo():
    return _tool('demo')


def test_stale_synthetic_data_is_regenerated(tiny_synthetic, tmp_path):
    common = _tool('demo_common')
    assert common.synthetic_data_current(tiny_synthetic)
    assert not common.synthetic_data_current(str(tmp_path))
    (tmp_path / 'meta.json').write_text(
        json.dumps(dict(version=GENERATOR_VERSION - 1)))
    assert not common.synthetic_data_current(str(tmp_path))


def test_no_tool_imports_another():
    """The demo stories share tools/demo_common.py, a module with no
    entry point; no tool imports a tool (one with a ``main``)."""
    import ast
    import glob
    tools = {osp.splitext(osp.basename(p))[0]: p
             for p in glob.glob(osp.join(ROOT, 'tools', '*.py'))}
    entry = {name for name, p in tools.items()
             if "if __name__ == '__main__':" in open(p).read()}
    assert 'demo_common' not in entry and 'demo' in entry
    for name, path in tools.items():
        tree = ast.parse(open(path).read())
        imported = {a.name.split('.')[0] for n in ast.walk(tree)
                    if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split('.')[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & entry, (name, imported & entry)


def test_results_table_one_row_per_model():
    from mmadamtl.utils import TASKS
    metrics = {TASKS[t].main_key: float(i)
               for i, t in enumerate(_demo().TASK_COLUMNS)}
    metrics.update(gflops=0.5, encoder_gflops=0.25)
    adaptive = dict(metrics, block_fraction=0.512, encoder_share_max=0.6)
    rows = [dict(model='static', mode='-', requested=None, metrics=metrics,
                 delta_m=0.0, delta_m_single=-2.0, encoder_ratio=1.0,
                 latency_ms=10.0, latency_ratio=1.0),
            dict(model='AdaMTL', mode='target', requested=0.5,
                 metrics=adaptive, delta_m=-1.25, delta_m_single=-3.5,
                 encoder_ratio=0.5, latency_ms=6.0, latency_ratio=0.6)]
    lines = _demo().results_table(rows).splitlines()
    assert len(lines) == 4
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    cells = [c.strip() for c in lines[3].strip('|').split('|')]
    assert len(head) == len(cells)
    row = dict(zip(head, cells))
    assert row['requested'] == '0.5' and row['Δm vs static (%)'] == '-1.25'
    assert row['Δm vs single-task (%)'] == '-3.50'
    assert row['executed share'] == '0.512'
    assert row['max image share'] == '0.600'
    assert row['encoder ratio'] == '0.500' and row['latency ratio'] == '0.600'
    static = dict(zip(head, [c.strip() for c in
                             lines[2].strip('|').split('|')]))
    assert static['requested'] == '-' and static['executed share'] == '-'
    # One column per task, with its main metric, in the table's order.
    assert [row[TASKS[t].label] for t in _demo().TASK_COLUMNS] == [
        f'{i:.2f}' for i in range(6)]
    assert head[5:11] == ['semseg mIoU', 'parts mIoU', 'sal maxIoU',
                          'normals mErr', 'edge odsF', 'depth RMSE']


def test_budget_checks():
    rows = [dict(mode='target', requested=0.5,
                 metrics=dict(block_fraction=0.52)),
            dict(mode='target', requested=0.25,
                 metrics=dict(block_fraction=0.29)),
            dict(mode='cap', requested=0.5,
                 metrics=dict(encoder_share_max=0.49)),
            dict(mode='cap', requested=0.4,
                 metrics=dict(encoder_share_max=0.41)),
            dict(mode='random', requested=0.5,
                 metrics=dict(block_fraction=0.9))]
    checks = _demo().budget_checks(rows)
    assert [c['ok'] for c in checks] == [True, False, True, False]
    assert checks[1]['check'] == 'executed - requested = +0.040'


def test_mtlora_table_and_runs():
    module = _tool('demo_mtlora')
    from mmadamtl.utils import TASKS
    runs = module._runs([4, 16])
    assert [r['tag'] for r in runs] == ['decoders', 'full', 'r4', 'r16']
    assert runs[3]['opts'] == {'model.backbone.lora.r': 16}
    metrics = {TASKS[t].main_key: float(i)
               for i, t in enumerate(module.TASK_COLUMNS)}
    metrics['gflops'] = 0.5
    for r in runs:
        r.update(metrics=metrics, trainable=250, total=1000, delta_m=-1.5,
                 iter_ms=120.4, memory_mib=dict(total=99.6))
    lines = module.table(runs).splitlines()
    assert len(lines) == 2 + len(runs)
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    row = dict(zip(head, [c.strip() for c in lines[-1].strip('|')
                          .split('|')]))
    assert row['method'] == 'MTLoRA r=16'
    assert row['trainable params'] == '250' and row['share of all'] == '25.0%'
    assert row['Δm vs full FT (%)'] == '-1.50'
    assert row['train iter (ms, batch 8)'] == '120'
    assert row['train memory (MiB)'] == '100'
    # A quick run says so above its table; the full run's has no banner.
    size = dict(rank=8, adapters=1 << 20, checkpoint=4 << 20)
    quick = module.render(runs, size, 0.0625, 'data/synthetic_quick')
    assert quick.splitlines()[2].startswith('**Quick run**')
    assert 'data/synthetic_quick' in quick.splitlines()[2]
    assert 'Quick run' not in module.render(runs, size)


def test_controllable_demo_figures_on_tiny_model(tiny_synthetic):
    """The demo's budget-control, task-control and accuracy figures on a
    tiny (untrained) controllable model and dataset: every request within
    budget, the predictions' metainfo the searched GFLOPs, correlations
    and uniformity in range, a positive hypervolume."""
    import torch
    module = _tool('demo_controllable')
    from mmengine.config import Config

    from mmadamtl.apis import (build_test_dataset, collate_batches,
                               init_model, lookup_table, measure_configs)
    from mmadamtl.utils import TASKS
    config = osp.join(ROOT, 'tests', 'configs',
                      'tiny_controllable_swin_synthetic.py')
    torch.manual_seed(0)
    model = init_model(config)
    val = build_test_dataset(Config.fromfile(config), tiny_synthetic)
    grid = measure_configs(model, collate_batches(val, None, 2),
                           model.cfg.test_evaluator, val.metainfo)
    model.set_lookup_table(lookup_table(grid))
    batch = model.data_preprocessor(collate_batches(val, 4, 4)[0], False)
    ctrl, rows = module.budget_control_figures(model, grid, batch)
    assert ctrl['within'] == 1.0
    assert ctrl['requests'] == 8 * module.NUM_PREFS
    assert ctrl['metainfo_checked'] == 8
    assert rows[-1]['budget'] == 1.0 and 0 < rows[-1]['share'] <= 1.0
    assert all(r['share'] <= r['budget'] + 1e-9 for r in rows)
    tc = module.task_control_figures(model, grid)
    for v in tc['budgets'].values():
        assert all(-1 <= r <= 1 for r in v['spearman'].values())
        assert v['uniformity'] <= 1.0 and v['hypervolume'] > 0
    static = {TASKS[t].main_key: 50.0 for t in module.TASK_COLUMNS}
    static['gflops'] = 1.0
    acc = module.accuracy_rows(model, grid, static)
    assert acc[0]['name'] == 'widest'
    assert acc[0]['gflops'] == pytest.approx(
        model.max_flops(grid['img_size']) / 1e9)


def test_quick_training_reuses_its_scaled_run(tmp_path, monkeypatch):
    """A quick run's training is finished at the scaled ``max_iters``
    (also of a ``train_cfg.max_iters`` option); the full run's is not."""
    import torch
    common = _tool('demo_common')
    calls = []
    monkeypatch.setattr(common, 'run', calls.append)

    def finished_at(iters):
        ckpt = tmp_path / f'iter_{iters}.pth'
        torch.save(dict(meta=dict(iter=iters)), ckpt)
        (tmp_path / 'last_checkpoint').write_text(str(ckpt))
        return str(ckpt)

    # configs/static_swin_synthetic.py: 800 iterations -> 50.
    ckpt = finished_at(50)
    assert common.train(common.STATIC, str(tmp_path), [], False,
                        scale=1 / 16) == ckpt
    assert calls == []
    ckpt = finished_at(10)
    assert common.train(common.STATIC, str(tmp_path), [], False,
                        options=['train_cfg.max_iters=160'],
                        scale=1 / 16) == ckpt
    assert calls == []
    # The full run is not finished at 10 of 800 iterations: it trains
    # (here: the command it would run, then the missing checkpoint).
    with pytest.raises(RuntimeError, match='max_iters=800'):
        common.train(common.STATIC, str(tmp_path), [], False)
    assert '--schedule-scale' not in calls[-1]
    with pytest.raises(RuntimeError, match='max_iters=100'):
        common.train(common.STATIC, str(tmp_path), [], False, scale=0.125)
    cmd = calls[-1]
    assert cmd[cmd.index('--schedule-scale') + 1] == '0.125'
    assert 'train_cfg.val_begin=1000000000' in cmd


def test_progress_rescales_by_the_pace_so_far(monkeypatch):
    demo = _demo()
    progress = demo.Progress('test', {'a': 10, 'b': 20}, every=3600)
    progress.stop()
    now = [0.0]
    monkeypatch.setattr(demo.time, 'time', lambda: now[0])
    # Story a took its expected 10 minutes; b has run 10 of its 20.
    progress.start, progress.story_start, progress.current = 0, 600, 1
    now[0] = 1200
    line = progress.line()
    assert ' 67% ' in line and 'about 10 min left' in line
    assert 'story 2/2: b' in line
    # Twice as slow as expected: the rest is expected twice as long.
    progress.story_start, now[0] = 1200, 1800
    line = progress.line()
    assert ' 50% ' in line and 'about 30 min left' in line
    # Faster than expected (reused trainings): the rest is not assumed
    # faster.
    progress.story_start, now[0] = 60, 660
    line = progress.line()
    assert ' 67% ' in line and 'about 10 min left' in line


def test_a_quick_story_never_uses_the_full_runs_work_dir():
    import argparse
    common = _tool('demo_common')
    parser = argparse.ArgumentParser()
    common.add_demo_args(parser)
    args = parser.parse_args(['--schedule-scale', '0.0625'])
    common.demo_paths(args)
    assert (args.work_dir, args.data_root) == ('work_dirs/demo_quick',
                                               common.QUICK_DATA)
    args = parser.parse_args([])
    common.demo_paths(args)
    assert (args.work_dir, args.data_root) == ('work_dirs/demo',
                                               'data/synthetic')
    args = parser.parse_args(['--schedule-scale', '0.5', '--work-dir', 'w'])
    common.demo_paths(args)
    assert args.work_dir == 'w'
    assert 'data/synthetic_quick' in common.quick_banner(0.5, args.data_root)
    assert common.quick_banner(1.0, 'data/synthetic') == ''


def test_quick_dwa_scales_its_period_with_the_schedule():
    module = _tool('demo_loss_weighting')
    # configs/ablations/static_swin_synthetic_dwa.py: a 38-iteration
    # period.
    assert module.quick_options('dwa', 1 / 16) == [
        'model.decode_head.loss_weighting.interval=2']
    assert module.quick_options('dwa', 1.0) == []
    assert module.quick_options('gradnorm', 1 / 16) == []


def test_demo_ends_with_the_one_seed_pareto_figure(monkeypatch, capsys):
    """`make demo` runs tools/pareto.py last, with the quick run's
    schedule, its budgets and MTLoRA's middle rank, and says it is one
    seed; --skip-controllable reaches it, --skip-pareto leaves it out."""
    import sys
    demo = _demo()
    calls = []
    monkeypatch.setattr(demo, 'run', calls.append)
    monkeypatch.setattr(demo, 'adamtl_story', lambda *a: [])
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--budgets', '0.3', '0.6',
                                      '--ranks', '4', '16', '32'])
    demo.main()
    tools = [c[1] for c in calls]
    assert tools == ['tools/demo_loss_weighting.py', 'tools/demo_mtlora.py',
                     'tools/demo_controllable.py', 'tools/pareto.py']
    cmd = calls[-1]
    assert cmd[cmd.index('--schedule-scale') + 1] == repr(1 / 16)
    assert cmd[cmd.index('--work-dir') + 1] == 'work_dirs/demo_quick'
    assert cmd[cmd.index('--budgets') + 1:][:2] == ['0.3', '0.6']
    assert cmd[cmd.index('--mtlora-rank') + 1] == '16'
    assert '--skip-controllable' not in cmd and '--seeds' not in cmd
    assert demo.ONE_SEED_NOTE in capsys.readouterr().out
    calls.clear()
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--skip-controllable'])
    demo.main()
    assert [c[1] for c in calls][-1] == 'tools/pareto.py'
    assert '--skip-controllable' in calls[-1]
    calls.clear()
    monkeypatch.setattr(sys, 'argv', ['demo.py', '--skip-pareto'])
    demo.main()
    assert 'tools/pareto.py' not in [c[1] for c in calls]
