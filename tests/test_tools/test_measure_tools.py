"""tools/get_flops.py, benchmark.py, sweep_budget.py and visualize.py on
the tiny adaptive config, with a checkpoint whose policy skips work."""
import csv
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmadamtl.models.backbones import Control
from tests.conftest import ROOT

TINY_ADAPTIVE = osp.join(ROOT, 'tests', 'configs',
                         'tiny_adamtl_swin_synthetic.py')
TINY_STATIC = osp.join(ROOT, 'tests', 'configs',
                       'tiny_static_swin_synthetic.py')
TASKS = ['semseg', 'human_parts', 'saliency', 'normals', 'edge', 'depth']


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json(capsys, tool, argv):
    _tool(tool).main(argv)
    out = capsys.readouterr().out
    return json.loads(out)


def _is_png(path):
    with open(path, 'rb') as f:
        return f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def checkpoint(tiny_synthetic, tmp_path_factory):
    """Tiny adaptive model (random weights) whose policy is calibrated to
    run about half the blocks' compute at budget 0.5."""
    from mmadamtl.apis import build_test_dataset, init_model, load_batch
    from mmadamtl.models.policies import calibrate_policy
    torch.manual_seed(0)
    model = init_model(TINY_ADAPTIVE)
    dataset = build_test_dataset(model.cfg, tiny_synthetic)
    data = load_batch(model, dataset, range(len(dataset)))
    model.set_budget(0.5)
    calib = calibrate_policy(model, data['inputs'], 0.5)
    assert calib['block_fraction'] == pytest.approx(0.5, abs=0.15)
    path = str(tmp_path_factory.mktemp('ckpt') / 'adaptive.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def test_calibrated_policy_follows_budget(tiny_synthetic):
    from mmadamtl.apis import build_test_dataset, init_model, load_batch
    from mmadamtl.models.policies import calibrate_policy
    torch.manual_seed(1)
    model = init_model(TINY_ADAPTIVE)
    data = load_batch(model, build_test_dataset(model.cfg, tiny_synthetic),
                      range(4))
    for budget in (0.3, 0.7):
        c = calibrate_policy(model, data['inputs'], budget)
        _, stats = model.backbone.encode(
            data['inputs'], Control(budget=budget, budget_mode='input'))
        executed = float(stats.block_fraction.mean())
        assert executed == pytest.approx(c['block_fraction'])
        assert executed == pytest.approx(budget, abs=0.15)
        # Both kinds of skipping take part.
        assert c['block_keep'] < 1 and c['token_keep'] < 1


def test_get_flops_json(capsys, tiny_synthetic, checkpoint):
    from mmengine.analysis import get_model_complexity_info

    from mmadamtl.apis import init_model, static_variant
    r = _json(capsys, 'get_flops', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budget', '0.5',
        '--num-images', '3', '--data-root', tiny_synthetic, '--json'])
    # The keys docs/benchmarks.md documents.
    assert set(r) == {'config', 'checkpoint', 'adaptive', 'budget', 'tasks',
                      'static', 'executed'}
    assert set(r['static']) == {'shape', 'tasks', 'gflops', 'params_m',
                                'trainable_params_m', 'policy_params_m'}
    assert set(r['executed']) == {
        'num_images', 'shapes', 'gflops', 'encoder_gflops', 'policy_gflops',
        'full_gflops', 'full_encoder_gflops', 'ratio', 'encoder_ratio',
        'policy_share'}
    assert r['adaptive'] and r['budget'] == 0.5 and r['tasks'] == TASKS
    s, e = r['static'], r['executed']
    assert s['shape'] == [64, 64]
    # Joint AdaMTL training trains everything.
    assert s['trainable_params_m'] == s['params_m']
    # Independent count: mmengine's counter on the static variant.
    static = init_model(static_variant(TINY_ADAPTIVE))
    info = get_model_complexity_info(static, inputs=(torch.zeros(
        1, 3, 64, 64), ), show_table=False, show_arch=False)
    assert s['gflops'] == pytest.approx(info['flops'] / 1e9, rel=1e-6)
    policy_params = sum(
        p.numel() for p in init_model(TINY_ADAPTIVE).backbone.policy
        .parameters())
    assert s['policy_params_m'] == pytest.approx(policy_params / 1e6)
    assert s['params_m'] == pytest.approx(info['params'] / 1e6 +
                                          s['policy_params_m'], rel=1e-6)
    assert e['num_images'] == 3
    g = e['gflops']
    assert g['min'] <= g['mean'] <= g['max'] < e['full_gflops']
    # The test images are 64x64: every block executes the static count.
    assert e['full_gflops'] == pytest.approx(s['gflops'], rel=0.02)
    assert 0.2 < e['encoder_ratio'] < 0.9
    assert e['ratio'] == pytest.approx(g['mean'] / e['full_gflops'])
    assert 0 < e['policy_share'] < 0.05
    assert e['policy_gflops']['mean'] == pytest.approx(
        e['policy_share'] * g['mean'])


def test_get_flops_table_and_errors(tiny_synthetic, checkpoint, capsys):
    tool = _tool('get_flops')
    tool.main([TINY_ADAPTIVE, '--checkpoint', checkpoint, '--num-images',
               '1', '--data-root', tiny_synthetic, '--tasks', 'depth'])
    out = capsys.readouterr().out
    assert '| GFLOPs (all tasks, every block) |' in out
    assert 'policy network:' in out and 'tasks: depth' in out
    with pytest.raises(ValueError, match='budget=0.5 needs an adaptive'):
        tool.main([TINY_STATIC, '--budget', '0.5', '--num-images', '0'])
    with pytest.raises(ValueError, match=r'in \(0, 1\]'):
        tool.main([TINY_ADAPTIVE, '--budget', '1.5', '--num-images', '0'])
    with pytest.raises(ValueError, match="unknown task 'sky'"):
        tool.main([TINY_ADAPTIVE, '--tasks', 'sky', '--num-images', '0'])
    with pytest.raises(FileNotFoundError, match='nowhere'):
        tool.main([TINY_ADAPTIVE, '--data-root', '/nowhere'])


def test_get_flops_rejects_checkpoint_of_other_architecture(tmp_path):
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'conv.weight': torch.zeros(1)}), other)
    with pytest.raises(ValueError, match='unexpected key'):
        _tool('get_flops').main([TINY_ADAPTIVE, '--checkpoint', str(other),
                                 '--num-images', '0'])


def test_benchmark_json(capsys, tiny_synthetic, checkpoint):
    r = _json(capsys, 'benchmark', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budget', '0.5',
        '--batch-size', '2', '--num-images', '4', '--rounds', '3',
        '--warmup', '0', '--train-repeats', '1', '--data-root',
        tiny_synthetic, '--json'])
    assert set(r) == {
        'config', 'checkpoint', 'budget', 'batch_size', 'device',
        'device_name', 'amp', 'threads', 'torch', 'inputs', 'rounds',
        'calibration', 'executed', 'model', 'encoder', 'static_path',
        'policy', 'train_iter'}
    assert set(r['train_iter']) == {'batch_size', 'static_ms', 'adaptive_ms',
                                    'ratio', 'target_met'}
    assert r['budget'] == 0.5 and r['batch_size'] == 2 and r['rounds'] == 3
    assert r['torch'] == torch.__version__ and r['device'] == 'cpu'
    fs, fa = r['executed']['static'], r['executed']['adaptive']
    assert fa['gflops'] < fs['gflops']
    assert fa['encoder_gflops'] < fs['encoder_gflops']
    for key, flops in (('model', 'gflops'), ('encoder', 'encoder_gflops')):
        m = r[key]
        assert m['static_ms'] > 0 and m['adaptive_ms'] > 0
        # The ratio is the median of the per-round ratios, shown with
        # their spread; the spread over GFLOPs is the same divided.
        sp, so = m['latency_ratio_spread'], m['latency_over_flops_spread']
        assert sp['min'] <= sp['median'] <= sp['max']
        assert sp['median'] == m['latency_ratio']
        assert m['flops_ratio'] == pytest.approx(fa[flops] / fs[flops])
        for k in ('min', 'median', 'max'):
            assert so[k] == pytest.approx(sp[k] / m['flops_ratio'])
        assert m['latency_over_flops'] == pytest.approx(
            m['latency_ratio'] / m['flops_ratio'])
        assert m['target_met'] == (m['latency_over_flops'] <= 1.15)
    p = r['static_path']
    sp = p['overhead_spread']
    assert sp['min'] <= p['overhead'] == sp['median'] <= sp['max']
    # A timing (the A/A noise of two identical paths): its value depends
    # on the machine's load, so only its form is checked.
    assert isinstance(p['noise'], float) and math.isfinite(p['noise'])
    assert r['policy']['share'] == pytest.approx(
        fa['policy_gflops'] / fa['gflops'])
    t = r['train_iter']
    assert t['ratio'] == pytest.approx(t['adaptive_ms'] / t['static_ms'])
    assert 0 < fa['block_keep'] < 1 or 0 < fa['token_keep'] < 1


def test_benchmark_random_inputs_calibrated(capsys):
    r = _json(capsys, 'benchmark', [
        TINY_ADAPTIVE, '--budget', '0.5', '--random-inputs', '--shape', '64',
        '96', '--calibrate', '--num-images', '1', '--repeats', '1',
        '--skip-train', '--json'])
    assert r['inputs'] == '1 noise images 64x96'
    assert r['calibration']['block_fraction'] == pytest.approx(0.5,
                                                               abs=0.15)
    assert 'train_iter' not in r
    assert r['encoder']['flops_ratio'] < 0.8


def test_benchmark_amp_on_cpu(capsys):
    r = _json(capsys, 'benchmark', [
        TINY_ADAPTIVE, '--budget', '0.5', '--random-inputs', '--calibrate',
        '--amp', '--num-images', '2', '--batch-size', '2', '--repeats', '1',
        '--warmup', '0', '--train-repeats', '1', '--json'])
    assert r['amp'] is True
    for key in ('model', 'encoder'):
        assert np.isfinite(r[key]['latency_ratio'])
    assert r['train_iter']['adaptive_ms'] > 0


def test_benchmark_captured_json(capsys, tiny_synthetic, checkpoint,
                                 monkeypatch):
    # dynamo with the eager backend instead of inductor (compiling is
    # torch's; what is checked is the tool's wiring and figures).
    import functools
    monkeypatch.setattr(torch, 'compile', functools.partial(
        torch.compile, backend='eager'))
    r = _json(capsys, 'benchmark', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budget', '0.5',
        '--num-images', '2', '--rounds', '3', '--warmup', '0',
        '--data-root', tiny_synthetic, '--captured', '--json'])
    c = r['captured']
    names = {'static_eager', 'static_compiled', 'static_unguarded',
             'adaptive_eager', 'adaptive_captured'}
    assert set(c) == {'latency_ms', 'latency_ratio', 'latency_ratio_spread',
                      'captured_over_unguarded', 'compile_s',
                      'max_abs_diff', 'executed'}
    assert set(c['latency_ms']) == names
    assert set(c['latency_ratio']) == names - {'static_compiled'}
    for n, sp in c['latency_ratio_spread'].items():
        assert sp['min'] <= sp['median'] == c['latency_ratio'][n] <= \
            sp['max']
    assert set(c['compile_s']) == {'static_compiled', 'static_unguarded',
                                   'adaptive_captured'}
    u = c['captured_over_unguarded']
    assert u['min'] <= u['median'] <= u['max']
    # Captured outputs are the eager adaptive model's.
    assert c['max_abs_diff'] <= 1e-4
    fs, fa = c['executed']['static'], c['executed']['adaptive']
    assert fs['run_gflops'] == fs['gflops']
    assert fa['gflops'] <= fa['run_gflops'] < fs['gflops']
    table = _tool('benchmark').render(r)
    assert 'adaptive captured' in table and 'run with the bucket' in table
    assert 'static unguarded' in table


def test_benchmark_mtlora_json(capsys):
    # An MTLoRA config: the model as trained, merged, and the static model
    # of the merged base weights (apis.static_counterpart).
    r = _json(capsys, 'benchmark', [
        osp.join(ROOT, 'tests', 'configs', 'tiny_mtlora_swin_synthetic.py'),
        '--random-inputs', '--num-images', '1', '--rounds', '1',
        '--warmup', '0', '--json'])
    m = r['mtlora']
    assert set(m['latency_ms']) == {'static', 'unmerged', 'merged'}
    assert m['merged_layers'] > 0 and m['max_abs_diff'] < 1e-4
    # The task streams stay adapters after the merge; the static model
    # has none.
    g = m['gflops']
    assert g['static'] < g['merged'] <= g['unmerged']


def test_benchmark_errors():
    tool = _tool('benchmark')
    with pytest.raises(ValueError, match='has no adaptive backbone'):
        tool.main([TINY_STATIC, '--budget', '0.5', '--random-inputs'])
    with pytest.raises(ValueError, match=r'in \(0, 1\]'):
        tool.main([TINY_ADAPTIVE, '--budget', '0', '--random-inputs'])


def test_sweep_budget_csv_and_plot(capsys, tiny_synthetic, checkpoint,
                                   tmp_path):
    from mmadamtl.evaluation.metrics.multi_task_metric import delta_m
    out = tmp_path / 'sweep'
    budgets = ['0.3', '0.6', '1.0']
    r = _json(capsys, 'sweep_budget', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budgets', *budgets,
        '--out-dir', str(out), '--data-root', tiny_synthetic,
        '--batch-size', '3', '--json'])
    assert set(r) == {'config', 'checkpoint', 'static_config', 'num_images',
                      'tasks', 'metric', 'static', 'rows', 'csv', 'plot'}
    assert set(r['rows'][0]) == {'model', 'budget', 'budget_mode',
                                 'executed_share', 'max_image_share',
                                 'gflops', 'encoder_gflops', 'gflops_ratio',
                                 'encoder_ratio', 'delta_m', 'metrics'}
    with open(out / 'sweep.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [float(x['budget']) for x in rows] == [0.3, 0.6, 1.0]
    # Requested vs executed: the config's mode, and the executed share
    # and largest image share each row's metrics measured.
    assert {x['budget_mode'] for x in rows} == {'target'}
    for x, row in zip(rows, r['rows']):
        assert float(x['executed_share']) == pytest.approx(
            row['metrics']['block_fraction'])
        assert float(x['max_image_share']) == pytest.approx(
            row['metrics']['encoder_share_max'])
        assert 0 <= float(x['executed_share']) <= 1
    for key in ('gflops', 'encoder_gflops', 'delta_m', 'semseg/mIoU',
                'depth/rmse'):
        assert key in rows[0], key
    gflops = [float(x['gflops']) for x in rows]
    static = r['static']
    assert all(g <= static['gflops'] * 1.02 for g in gflops)
    assert gflops[0] < gflops[-1]
    assert static['delta_m'] == pytest.approx(0)
    # Δm recomputed from the CSV's own metrics.
    base = {t: static['metrics'][k] for t, k in (
        ('semseg', 'semseg/mIoU'), ('human_parts', 'human_parts/mIoU'),
        ('saliency', 'saliency/maxIoU'), ('normals', 'normals/mean'),
        ('edge', 'edge/odsF'), ('depth', 'depth/rmse'))}
    for x in rows:
        metrics = {k: float(v) for k, v in x.items() if k != 'budget_mode'}
        assert float(x['delta_m']) == pytest.approx(delta_m(metrics, base))
    assert _is_png(out / 'pareto.png') and r['plot'] == str(
        out / 'pareto.png')
    import matplotlib.pyplot as plt
    assert plt.imread(out / 'pareto.png').ndim == 3
    assert len(json.load(open(out / 'sweep.json'))['rows']) == 3


def test_sweep_budget_per_task_metric_and_static_model(
        capsys, tiny_synthetic, checkpoint, tmp_path):
    from mmadamtl.apis import init_model
    static_ckpt = str(tmp_path / 'static.pth')
    torch.save(dict(state_dict=init_model(TINY_STATIC).state_dict()),
               static_ckpt)
    r = _json(capsys, 'sweep_budget', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budgets', '0.5',
        '--static-config', TINY_STATIC, '--static-checkpoint', static_ckpt,
        '--metric', 'depth/rmse', '--num-images', '2', '--tasks', 'depth',
        'semseg', '--out-dir', str(tmp_path / 'o'), '--data-root',
        tiny_synthetic, '--json'])
    assert r['tasks'] == ['depth', 'semseg'] and r['num_images'] == 2
    assert set(r['static']['metrics']) == {
        'depth/rmse', 'depth/abs_rel', 'depth/delta1', 'semseg/mIoU',
        'gflops', 'encoder_gflops'}
    assert _is_png(tmp_path / 'o' / 'pareto.png')
    with pytest.raises(ValueError, match="--metric 'sky/x'"):
        _tool('sweep_budget').main([
            TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budgets', '0.5',
            '--metric', 'sky/x', '--num-images', '1', '--out-dir',
            str(tmp_path / 'p'), '--data-root', tiny_synthetic])
    with pytest.raises(ValueError, match=r'--budgets: 1.5'):
        _tool('sweep_budget').main([
            TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budgets', '1.5'])


def test_pareto_front():
    front = _tool('sweep_budget').pareto_front(
        [(1, 5), (2, 4), (3, 7), (0.5, 1), (4, 6)])
    assert front == [(0.5, 1), (1, 5), (3, 7)]
    low = _tool('sweep_budget').pareto_front([(1, 5), (2, 4), (3, 7)],
                                             higher_is_better=False)
    assert low == [(1, 5), (2, 4)]


def test_visualize_pngs(capsys, tiny_synthetic, checkpoint, tmp_path):
    from PIL import Image
    ids = sorted(os.listdir(osp.join(tiny_synthetic, 'JPEGImages')))
    files = [f for f in ids if f.startswith('val')]
    by_id = osp.splitext(files[1])[0]
    outside = tmp_path / 'outside.jpg'
    Image.open(osp.join(tiny_synthetic, 'JPEGImages', files[2])).save(
        outside)
    out = tmp_path / 'vis'
    r = _json(capsys, 'visualize', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--images', '0', by_id,
        str(outside), '--out', str(out), '--budget', '0.5', '--data-root',
        tiny_synthetic, '--json'])
    assert set(r) == {'config', 'checkpoint', 'budget', 'tasks', 'images'}
    assert set(r['images'][0]) == {'image', 'file', 'gflops',
                                   'encoder_gflops', 'full_gflops', 'blocks'}
    names = [w['image'] for w in r['images']]
    assert names[1:] == [by_id, 'outside']
    for w in r['images']:
        assert _is_png(w['file'])
        img = np.asarray(Image.open(w['file']))
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
        assert w['gflops'] <= w['full_gflops']
        assert len(w['blocks']) == 8 and set(w['blocks']) <= {0., 1.}
    with pytest.raises(ValueError, match="'nope' is neither"):
        _tool('visualize').main([
            TINY_ADAPTIVE, '--checkpoint', checkpoint, '--images', 'nope',
            '--out', str(out), '--data-root', tiny_synthetic])


def test_tools_run_from_the_command_line(tiny_synthetic, checkpoint):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, 'tools/get_flops.py', TINY_ADAPTIVE,
         '--checkpoint', checkpoint, '--num-images', '2', '--data-root',
         tiny_synthetic, '--json'], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    assert r['budget'] == 0.5  # the config's test_cfg.budget
    assert r['executed']['num_images'] == 2


def test_encoder_breakdown_json(capsys):
    from mmadamtl.apis import init_model
    from mmadamtl.models.utils import counted_flops
    r = _json(capsys, 'encoder_breakdown', [
        TINY_STATIC, '--repeats', '2', '--shape', '64', '96', '--json'])
    parts = r['parts']
    assert set(parts) == {'attention', 'MLP', 'fixed'}
    assert sum(p['time_share'] for p in parts.values()) == pytest.approx(1)
    assert sum(p['flops_share'] for p in parts.values()) == pytest.approx(1)
    for p in parts.values():
        assert 0 < p['time_share'] < 1 and 0 < p['flops_share'] < 1
        assert p['time_per_flops'] == pytest.approx(p['time_share'] /
                                                    p['flops_share'])
    swin = init_model(TINY_STATIC).backbone
    assert r['gflops_per_image'] == pytest.approx(
        counted_flops(swin, torch.zeros(1, 3, 64, 96)) / 1e9, rel=1e-6)
    # The MLPs hold most of a Swin block's FLOPs.
    assert parts['MLP']['flops_share'] > parts['attention']['flops_share']


def test_encoder_breakdown_adaptive_json(capsys, tiny_synthetic,
                                         checkpoint):
    from mmadamtl.apis import build_test_dataset, init_model, load_batch
    r = _json(capsys, 'encoder_breakdown', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budget', '0.5',
        '--images', '2', '--repeats', '2', '--data-root', tiny_synthetic,
        '--json'])
    parts = r['parts']
    assert list(parts) == ['policy', 'blocks', 'plans', 'fixed']
    assert sum(p['time_share'] for p in parts.values()) == pytest.approx(1)
    assert sum(p['flops_share'] for p in parts.values()) == pytest.approx(1)
    for name, p in parts.items():
        assert 0 < p['time_share'] < 1
    assert parts['plans']['flops_share'] == 0
    assert parts['plans']['time_per_flops'] is None
    # The FLOPs are what the model executes on the same images, at the
    # budget input its predict uses.
    model = init_model(TINY_ADAPTIVE, checkpoint)
    model.set_budget(0.5)
    dataset = build_test_dataset(model.cfg, tiny_synthetic)
    flops, policy = [], []
    with torch.no_grad():
        for i in range(2):
            x = load_batch(model, dataset, [i], 'cpu')['inputs']
            stats = model.encode(x)[1]
            flops.append(float(stats.encoder_flops[0]))
            policy.append(float(stats.policy_flops[0]))
    assert r['gflops_per_image'] == pytest.approx(np.mean(flops) / 1e9)
    assert parts['policy']['flops_share'] == pytest.approx(
        sum(policy) / sum(flops))
    assert 0 < r['executed_share'] < 1
    with pytest.raises(ValueError, match='no adaptive backbone'):
        _tool('encoder_breakdown').main([TINY_STATIC, '--budget', '0.5'])


def test_encoder_breakdown_floor_json(capsys, checkpoint):
    from mmadamtl.apis import init_model
    argv = [TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budget', '0.5',
            '--floor', '--random-inputs', '--shape', '64', '96',
            '--batch-size', '2', '--images', '4', '--repeats', '2',
            '--calibrate']
    r = _json(capsys, 'encoder_breakdown', argv + ['--json'])
    assert r['replay_equal'] is True and r['images'] == 4
    rows = r['rows']
    assert list(rows) == ['static', 'adaptive', 'replay']
    static = init_model(TINY_ADAPTIVE).backbone.cost((64, 96)).total
    assert rows['static']['gflops_per_image'] == pytest.approx(static / 1e9)
    assert rows['static']['flops_ratio'] == 1
    # The replay runs the executed blocks without the policy's FLOPs.
    assert 0 < rows['replay']['gflops_per_image'] < \
        rows['adaptive']['gflops_per_image'] < \
        rows['static']['gflops_per_image']
    for name in ('adaptive', 'replay'):
        v = rows[name]
        assert v['flops_ratio'] == pytest.approx(
            v['gflops_per_image'] / rows['static']['gflops_per_image'])
        assert v['spread']['min'] <= v['latency_over_flops'] <= \
            v['spread']['max']
    tool = _tool('encoder_breakdown')
    with pytest.raises(ValueError, match='--cuda-graphs needs --device'):
        tool.main(argv + ['--cuda-graphs'])
    with pytest.raises(ValueError, match='--floor needs --budget'):
        tool.main([TINY_ADAPTIVE, '--floor'])
    with pytest.raises(ValueError, match='apply to --floor only'):
        tool.main([TINY_STATIC, '--calibrate'])


def test_count_syncs_json(capsys, checkpoint):
    r = _json(capsys, 'count_syncs', [
        TINY_ADAPTIVE, '--checkpoint', checkpoint, '--budget', '0.5',
        '--batch-size', '2', '--shape', '64', '64', '--json'])
    assert r['bound'] == r['stages'] + r['blocks'] + 1
    enc = r['encoder']
    assert r['stages'] + 1 <= enc['host_reads'] <= r['bound']
    assert sum(enc['by_name'].values()) == enc['host_reads']
    assert set(enc['by_name']) <= {'Tensor.tolist', 'Tensor.cpu'}
    # On CPU, no CUDA counts; predict's host figures are not counted.
    assert 'cuda_syncs' not in enc and r['model'] == {}


def test_calibrate_budget_tool(capsys, tiny_synthetic, checkpoint, tmp_path):
    """The tool writes the checkpoint with its measured budget curve, and
    budget_mode='target' then meets the budget on those images."""
    import warnings

    from mmadamtl.apis import build_test_dataset, init_model, load_batch
    from mmadamtl.utils import load_checkpoint_file
    out = str(tmp_path / 'calibrated.pth')
    r = _json(capsys, 'calibrate_budget', [
        TINY_ADAPTIVE, checkpoint, '--out', out, '--data-root',
        tiny_synthetic, '--num-images', '6', '--batch-size', '3', '--json'])
    curve = list(r['curve'].values())
    assert len(curve) == 50 and curve == sorted(curve)
    state = load_checkpoint_file(out)['state_dict']
    assert torch.allclose(state['backbone.policy.budget_curve'].double(),
                          torch.tensor(curve, dtype=torch.float64))
    # Everything else is the input checkpoint's.
    before = load_checkpoint_file(checkpoint)['state_dict']
    for k, v in before.items():
        if k != 'backbone.policy.budget_curve':
            assert torch.equal(v, state[k]), k
    model = init_model(TINY_ADAPTIVE, out)
    dataset = build_test_dataset(model.cfg, tiny_synthetic)
    data = load_batch(model, dataset, range(len(dataset)))
    target = (curve[10] + curve[-1]) / 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a measured curve: no warning
        with torch.no_grad(), model.runtime(budget=target,
                                            budget_mode='target'):
            out_samples = model.predict(data['inputs'])
    shares = [s.metainfo['policy']['block_fraction'] for s in out_samples]
    assert out_samples[0].metainfo['policy']['budget_mode'] == 'target'
    # Calibrated on the train split, checked on the test split of the tiny
    # set: loose, the set is a handful of images.
    assert abs(sum(shares) / len(shares) - target) < 0.15
