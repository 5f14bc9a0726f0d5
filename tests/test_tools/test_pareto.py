"""tools/pareto.py: seeds' work dirs, reuse of finished trainings and
evaluations, Δm rows, the results file and figure, bad arguments."""
import json
import os
import os.path as osp

import pytest

from tests.test_tools.test_demo import _tool

# The full run's iteration counts (configs/): a fake finished training
# of each.
FULL_ITERS = {'static_1400it': 1400, 'static_depths1121': 1400,
              'static_small': 1400, 'static_embed32': 1400, 'static': 800,
              'policy': 100, 'adamtl': 500}


def _finished(work_dir, name, iters):
    import torch
    folder = osp.join(work_dir, name)
    os.makedirs(folder, exist_ok=True)
    ckpt = osp.join(folder, f'iter_{iters}.pth')
    torch.save(dict(meta=dict(iter=iters)), ckpt)
    with open(osp.join(folder, 'last_checkpoint'), 'w') as f:
        f.write(ckpt)
    return ckpt


@pytest.fixture
def pareto(monkeypatch):
    """tools/pareto.py with the commands it would run recorded, not run."""
    module = _tool('pareto')
    calls = []
    common = __import__('demo_common')
    monkeypatch.setattr(common, 'run', calls.append)
    monkeypatch.setattr(module, 'run', calls.append)
    module.calls = calls
    return module


def test_seed_zero_reuses_the_demos_trainings(pareto, tmp_path):
    work = str(tmp_path)
    ckpts = {n: _finished(work, n, i) for n, i in FULL_ITERS.items()}
    specs = pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.25, 0.5],
                         [0.5], 8, skip_controllable=True)
    assert pareto.calls == []  # nothing trained
    assert [s['method'] for s in specs] == [
        'static 2-2-2-2', 'static 1-1-2-1', 'static 1-1-1-1',
        'static 2-2-2-2, embed 32', 'AdaMTL', 'AdaMTL']
    assert [s['ckpt'] for s in specs[:4]] == [
        ckpts[n] for n in ('static_1400it', 'static_depths1121',
                           'static_small', 'static_embed32')]
    assert {s['ckpt'] for s in specs[4:]} == {ckpts['adamtl']}
    # Seed 0's evaluations are the demo's files (tools/demo.py's tags).
    assert specs[0]['metrics_path'] == osp.join(work, 'static_metrics.json')
    assert specs[5]['metrics_path'] == osp.join(
        work, 'AdaMTL_target_b0.5_metrics.json')
    assert specs[5]['opts'] == {'model.test_cfg.budget': 0.5,
                                'model.test_cfg.budget_mode': 'target'}
    assert all(s['seed'] == 0 for s in specs)
    # --family: the fair model and the chosen smaller ones only.
    specs = pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [],
                         8, skip_controllable=True, family=['1-1-1-1'])
    assert [s['method'] for s in specs] == [
        'static 2-2-2-2', 'static 1-1-1-1', 'AdaMTL']
    assert pareto.parse_args(['--family', '1-1-1-1', 'embed32']).family \
        == ['1-1-1-1', 'embed32']
    assert pareto.parse_args([]).family == ['1-1-2-1', '1-1-1-1', 'embed32']
    # MTLoRA's row comes from the demo's run when it finished.
    _finished(work, 'mtlora_r8', 400)
    specs = pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [],
                         8, skip_controllable=True)
    assert specs[-1]['method'] == 'MTLoRA r=8'
    assert specs[-1]['metrics_path'] == osp.join(work,
                                                 'mtlora_r8_metrics.json')
    assert pareto.calls == []


def test_another_seed_trains_in_its_own_work_dir(pareto, tmp_path):
    work = str(tmp_path)
    for n, i in FULL_ITERS.items():
        _finished(work, n, i)
    # Seed 1 has no finished run: it trains (here: the command it would
    # run, then the missing checkpoint).
    with pytest.raises(RuntimeError, match='max_iters=1400'):
        pareto.specs(work, 'data/synthetic', 1, False, 1.0, [0.5], [], 8,
                     skip_controllable=True)
    cmd = pareto.calls[-1]
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'static_1400it_seed1')
    assert 'randomness.seed=1' in cmd
    # Once finished there, it is reused; its files are named by the seed.
    for n, i in FULL_ITERS.items():
        _finished(work, f'{n}_seed1', i)
    pareto.calls.clear()
    specs = pareto.specs(work, 'data/synthetic', 1, False, 1.0, [0.5], [],
                         8, skip_controllable=True)
    assert pareto.calls == []
    assert specs[0]['ckpt'].startswith(osp.join(work, 'static_1400it_seed1'))
    assert specs[0]['metrics_path'] == osp.join(work,
                                                'static_seed1_metrics.json')
    # MTLoRA: seed 0 only.
    assert 'MTLoRA' not in {s['family'] for s in specs}


def test_long_joint_recipe_trains_its_own_chain(pareto, tmp_path):
    """--adamtl-recipes long-joint: its three stages (400 / 100 / 900
    iterations) in their own work dirs, each from the one before, and its
    own rows and metrics files beside the main recipe's."""
    work = str(tmp_path)
    for n, i in FULL_ITERS.items():
        _finished(work, n, i)
    # Stage 1 is missing: it trains (the command, then the missing file).
    with pytest.raises(RuntimeError, match='max_iters=400'):
        pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [], 8,
                     skip_controllable=True, family=['1-1-1-1'],
                     adamtl_recipes=['main', 'long-joint'])
    cmd = pareto.calls[-1]
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'long_joint_static')
    assert 'configs/ablations/static_swin_synthetic_400it.py' in cmd
    assert not any(a.startswith('load_from=') for a in cmd)
    static = _finished(work, 'long_joint_static', 400)
    # Stage 2 starts from stage 1's checkpoint, stage 3 from stage 2's.
    pareto.calls.clear()
    with pytest.raises(RuntimeError, match='max_iters=100'):
        pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [], 8,
                     skip_controllable=True, family=['1-1-1-1'],
                     adamtl_recipes=['long-joint'])
    cmd = pareto.calls[-1]
    assert f'load_from={static}' in cmd
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'long_joint_policy')
    policy = _finished(work, 'long_joint_policy', 100)
    pareto.calls.clear()
    with pytest.raises(RuntimeError, match='max_iters=900'):
        pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [], 8,
                     skip_controllable=True, family=['1-1-1-1'],
                     adamtl_recipes=['long-joint'])
    cmd = pareto.calls[-1]
    assert f'load_from={policy}' in cmd
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(work, 'long_joint')
    joint = _finished(work, 'long_joint', 900)
    pareto.calls.clear()
    specs = pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [],
                         8, skip_controllable=True, family=['1-1-1-1'],
                         adamtl_recipes=['main', 'long-joint'])
    assert pareto.calls == []
    assert [s['method'] for s in specs] == [
        'static 2-2-2-2', 'static 1-1-1-1', 'AdaMTL',
        'AdaMTL, long joint stage']
    assert specs[2]['ckpt'] == osp.join(work, 'adamtl', 'iter_500.pth')
    long = specs[-1]
    assert long['ckpt'] == joint
    assert long['config'] == \
        'configs/ablations/adamtl_swin_synthetic_long_joint.py'
    assert long['metrics_path'] == osp.join(
        work, 'AdaMTL_long_joint_target_b0.5_metrics.json')
    assert long['metrics_path'] != specs[2]['metrics_path']
    # Seed 1: its own work dirs and files, seeded.
    for n in ('static_1400it', 'static_small'):
        _finished(work, f'{n}_seed1', 1400)
    with pytest.raises(RuntimeError, match='max_iters=400'):
        pareto.specs(work, 'data/synthetic', 1, False, 1.0, [0.5], [], 8,
                     skip_controllable=True, family=['1-1-1-1'],
                     adamtl_recipes=['long-joint'])
    cmd = pareto.calls[-1]
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'long_joint_static_seed1')
    assert 'randomness.seed=1' in cmd
    assert pareto.parse_args([]).adamtl_recipes == ['main']
    assert pareto.parse_args([]).controllable_recipes == ['main']
    assert pareto.parse_args(
        ['--adamtl-recipes', 'long-joint']).adamtl_recipes == ['long-joint']


def test_batch_budget_and_shared_tokens_recipes_reuse_the_main_stages(
        pareto, tmp_path):
    """--adamtl-recipes batch-budget shared-tokens: batch-budget trains
    only its stage 3, from the main recipe's stage-2 checkpoint;
    shared-tokens its stages 2 and 3, from the main recipe's stage 1; each
    recipe's rows and metrics files its own."""
    work = str(tmp_path)
    for n, i in FULL_ITERS.items():
        _finished(work, n, i)
    main_static = osp.join(work, 'static', 'iter_800.pth')
    main_policy = osp.join(work, 'policy', 'iter_100.pth')

    def missing(recipe, iters):
        pareto.calls.clear()
        with pytest.raises(RuntimeError, match=f'max_iters={iters}'):
            pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [],
                         8, skip_controllable=True, family=['1-1-1-1'],
                         adamtl_recipes=[recipe])
        assert len(pareto.calls) == 1
        return pareto.calls[-1]

    cmd = missing('batch-budget', 500)
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(work, 'batch_budget')
    assert 'configs/ablations/adamtl_swin_synthetic_batch_budget.py' in cmd
    assert f'load_from={main_policy}' in cmd
    batch = _finished(work, 'batch_budget', 500)
    cmd = missing('shared-tokens', 100)
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'shared_tokens_policy')
    assert 'configs/ablations/adamtl_swin_synthetic_shared_tokens_policy.py' \
        in cmd
    assert f'load_from={main_static}' in cmd
    policy = _finished(work, 'shared_tokens_policy', 100)
    cmd = missing('shared-tokens', 500)
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(work, 'shared_tokens')
    assert f'load_from={policy}' in cmd
    shared = _finished(work, 'shared_tokens', 500)
    pareto.calls.clear()
    specs = pareto.specs(work, 'data/synthetic', 0, False, 1.0, [0.5], [],
                         8, skip_controllable=True, family=['1-1-1-1'],
                         adamtl_recipes=['main', 'batch-budget',
                                         'shared-tokens'])
    assert pareto.calls == []
    assert [s['method'] for s in specs] == [
        'static 2-2-2-2', 'static 1-1-1-1', 'AdaMTL',
        'AdaMTL, batch-mean budget', 'AdaMTL, shared token selectors']
    assert [s['ckpt'] for s in specs[2:]] == [
        osp.join(work, 'adamtl', 'iter_500.pth'), batch, shared]
    assert [s['metrics_path'] for s in specs[2:]] == [
        osp.join(work, f'{tag}_target_b0.5_metrics.json') for tag in (
            'AdaMTL', 'AdaMTL_batch_budget', 'AdaMTL_shared_tokens')]
    assert specs[3]['config'] == \
        'configs/ablations/adamtl_swin_synthetic_batch_budget.py'
    assert specs[4]['config'] == \
        'configs/ablations/adamtl_swin_synthetic_shared_tokens.py'
    assert all(s['opts']['model.test_cfg.budget_mode'] == 'target'
               for s in specs[2:])
    # Seed 1: the main recipe's seed-1 stages first, then its own.
    for n in ('static_1400it', 'static_small'):
        _finished(work, f'{n}_seed1', 1400)
    _finished(work, 'static_seed1', 800)
    _finished(work, 'policy_seed1', 100)
    pareto.calls.clear()
    with pytest.raises(RuntimeError, match='max_iters=500'):
        pareto.specs(work, 'data/synthetic', 1, False, 1.0, [0.5], [], 8,
                     skip_controllable=True, family=['1-1-1-1'],
                     adamtl_recipes=['batch-budget'])
    cmd = pareto.calls[-1]
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'batch_budget_seed1')
    assert 'load_from=' + osp.join(work, 'policy_seed1',
                                   'iter_100.pth') in cmd
    assert 'randomness.seed=1' in cmd
    assert pareto.parse_args(
        ['--adamtl-recipes', 'main', 'batch-budget', 'shared-tokens']
    ).adamtl_recipes == ['main', 'batch-budget', 'shared-tokens']
    # --retrain: each stage trains once, the shared ones too (not once
    # per recipe, which would replace the checkpoints main started from).
    pareto.calls.clear()
    pareto.specs(work, 'data/synthetic', 0, True, 1.0, [0.5], [], 8,
                 skip_controllable=True, family=['1-1-1-1'],
                 adamtl_recipes=['main', 'batch-budget', 'shared-tokens'])
    dirs = [c[c.index('--work-dir') + 1] for c in pareto.calls]
    assert sorted(dirs) == sorted(osp.join(work, n) for n in (
        'static_1400it', 'static_small', 'static', 'policy', 'adamtl',
        'batch_budget', 'shared_tokens_policy', 'shared_tokens'))


def test_render_and_plot_name_the_long_joint_rows(pareto, tmp_path,
                                                  monkeypatch):
    """The table's note gives the long joint stage's split only when its
    rows are there; the figure draws them as their own series."""
    import matplotlib.axes

    def row(method, family, budget, gflops, dm):
        return dict(method=method, family=family, budget=budget, seeds=[0],
                    encoder_gflops=gflops, gflops=gflops + 0.4,
                    delta_m=dm, delta_m_std=None, latency_ms=50.0,
                    gflops_objects_corr=None, pareto_encoder_gflops=True,
                    pareto_latency_ms=True)

    rows = [row('static 2-2-2-2', 'static', None, 0.25, 0.0),
            row('AdaMTL', 'AdaMTL', 0.5, 0.13, -4.0)]
    split = 'its long joint stage 400 + 100 + 900'
    assert split not in pareto.render(rows, [0])
    long = pareto.ADAMTL_ROWS['long-joint'][0]
    rows.append(row(long, long, 0.5, 0.14, -3.0))
    text = pareto.render(rows, [0])
    assert f'500 joint, {split}; the controllable' in text
    assert f'| {long} | 0.5 | 1 |' in text
    assert 'BN recalibrated' not in text
    # A controllable ablation's recalibrated row: named in the note, its
    # own series in the figure.
    ablation = 'controllable, uniform decoder widths, BN recalibrated'
    rows.append(row(ablation, ablation, 0.5, 0.10, -16.0))
    assert 'Rows "..., BN recalibrated": the controllable row of the same ' \
        'recipe and budget' in pareto.render(rows, [0])
    # The other recipes: each named in the note only when its rows are
    # there, each its own series.
    assert 'batch-mean budget recipe' not in pareto.render(rows, [0])
    extra = [pareto.ADAMTL_ROWS[r][0]
             for r in ('batch-budget', 'shared-tokens')]
    rows += [row(m, m, 0.5, 0.13, -2.0) for m in extra]
    text = pareto.render(rows, [0])
    assert (f'500 joint, {split}, its batch-mean budget recipe the same '
            '(the joint stage holding one budget per batch on the batch\'s '
            'mean), its shared token selectors recipe the same (policy and '
            'joint stages with one token selector per stage); the '
            'controllable') in text
    labels = []
    errorbar = matplotlib.axes.Axes.errorbar

    def record(self, *args, label=None, **kwargs):
        labels.append(label)
        return errorbar(self, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, 'errorbar', record)
    figure = tmp_path / 'p.png'
    pareto.plot(rows, str(figure), [0])
    assert labels == ['static', 'AdaMTL', long, *extra, ablation] * 2
    assert figure.read_bytes()[:4] == b'\x89PNG'


def test_evaluation_reused_when_newer_than_its_checkpoint(pareto, tmp_path):
    common = __import__('demo_common')
    ckpt = _finished(str(tmp_path), 'run', 10)
    out = str(tmp_path / 'm.json')
    with open(out, 'w') as f:
        json.dump(dict(gflops=1.5), f)
    assert common.evaluate('c.py', ckpt, str(tmp_path), out, [], {},
                           reuse=True) == dict(gflops=1.5)
    assert pareto.calls == []
    # A checkpoint newer than the metrics: evaluated again.
    os.utime(ckpt, (os.stat(out).st_mtime + 10,) * 2)
    common.evaluate('c.py', ckpt, str(tmp_path), out, [], {}, reuse=True)
    assert pareto.calls[-1][1] == 'tools/test.py'
    # Further tools/test.py arguments go before the config options.
    common.evaluate('c.py', ckpt, str(tmp_path), out, ['a=1'], {'b': 2},
                    args=['--recalibrate-bn', '8'])
    cmd = pareto.calls[-1]
    assert cmd[cmd.index('--recalibrate-bn') + 1] == '8'
    assert cmd[cmd.index('--cfg-options'):] == ['--cfg-options', 'a=1',
                                                'b=2']


def _metrics(value):
    """Main metrics of the six tasks, all ``value``, and costs."""
    from mmadamtl.utils import TASKS
    m = {TASKS[t].main_key: value for t in _tool('demo_common').TASK_COLUMNS}
    m.update(gflops=0.6, encoder_gflops=0.2)
    return m


def test_seed_rows_delta_m_against_the_mean_fair_static(pareto):
    from mmadamtl.utils import TASKS
    fair = pareto.FAMILY[0][0]
    evaluated = [
        dict(method=fair, family='static', budget=None, seed=0,
             config='a.py', ckpt='/x/a.pth', metrics=_metrics(40.0)),
        dict(method=fair, family='static', budget=None, seed=1,
             config='a.py', ckpt='/x/b.pth', metrics=_metrics(60.0)),
        dict(method='AdaMTL', family='AdaMTL', budget=0.5, seed=0,
             config='c.py', ckpt='/x/c.pth', metrics=_metrics(45.0)),
        dict(method='AdaMTL', family='AdaMTL', budget=0.5, seed=1,
             config='c.py', ckpt='/x/d.pth', metrics=_metrics(50.0)),
    ]
    rows, reference = pareto.seed_rows(evaluated, [10.0, 12.0, 7.0, 9.0])
    assert set(reference.values()) == {50.0}
    # Every task at 45 against 50: +10% where lower is better, -10%
    # where higher is; seed 1 equals the reference.
    tasks = pareto.TASK_COLUMNS
    lower = sum(TASKS[t].lower_is_better for t in tasks)
    expected = 100 * (0.1 * lower - 0.1 * (len(tasks) - lower)) / len(tasks)
    assert rows[2]['delta_m'] == pytest.approx(expected)
    assert rows[3]['delta_m'] == pytest.approx(0.0)
    table = pareto.table_rows(rows)
    assert len(table) == 2
    # The fair static model's mean is its own reference: Δm 0, its seeds'
    # spread kept.
    assert table[0]['delta_m'] == pytest.approx(0.0)
    assert table[0]['delta_m_std'] == pytest.approx(
        abs(rows[0]['delta_m'] - rows[1]['delta_m']) / 2 ** 0.5)
    assert table[1]['delta_m'] == pytest.approx(expected / 2)
    assert table[1]['latency_ms'] == pytest.approx(8.0)
    with pytest.raises(ValueError, match='no static 2-2-2-2 row'):
        pareto.seed_rows(evaluated[2:], [7.0, 9.0])


def test_report_writes_table_json_and_figure(pareto, tmp_path, monkeypatch):
    """The whole tool with trainings, evaluations and timing faked: the
    results file's keys, the one-seed note, the figure."""
    fair = pareto.FAMILY[0][0]

    passed = []

    def specs(work_dir, data_root, seed, *args, **kwargs):
        passed.append(args)
        out = [dict(method=m, family=f, budget=b, seed=seed, config='c.py',
                    ckpt=str(tmp_path / 'c.pth'), opts={},
                    metrics_path=_metrics(v))
               for m, f, b, v in ((fair, 'static', None, 50.0 + seed),
                                  ('static 1-1-1-1', 'static', None, 48.0),
                                  ('AdaMTL', 'AdaMTL', 0.5, 47.0 - seed),
                                  ('controllable', 'controllable', 0.5,
                                   46.0),
                                  # The same sub-network at another
                                  # budget: equal costs and Δm.
                                  ('controllable', 'controllable', 0.75,
                                   46.0),
                                  ('MTLoRA r=8', 'MTLoRA', None, 49.0))]
        # The controllable 0.5 row with BN recalibration: timed as it.
        out.append(dict(out[3], method=pareto.RECALIBRATED,
                        family=pareto.RECALIBRATED, timed_as=out[3],
                        metrics_path=_metrics(46.5)))
        return out

    monkeypatch.setattr(pareto, 'specs', specs)
    monkeypatch.setattr(pareto, 'ensure_synthetic_data', lambda root: None)
    monkeypatch.setattr(pareto, 'evaluate',
                        lambda config, ckpt, w, out, d, o, reuse, args: out)
    monkeypatch.setattr(pareto, 'load_model', lambda *a: None)
    timed = []

    def time_models(models, *a):
        timed.append(sorted(models))
        return dict(latency_ms={i: 10.0 + i for i in models})

    monkeypatch.setattr(pareto, 'time_models', time_models)
    # Per model: AdaMTL's images follow the objects, by seed 0.2 / 0.6.
    monkeypatch.setattr(pareto, 'objects_corr', lambda timing, root: {
        i: (0.2 + 0.4 * (i >= 7) if i % 7 == 2 else None)
        for i in timing['latency_ms']})
    work = tmp_path / 'demo'
    work.mkdir()
    # The demo's results.json (its AdaMTL table) gains the rows.
    (work / 'results.json').write_text(json.dumps(dict(results=[1, 2])))
    args = pareto.parse_args(['--work-dir', str(work), '--seeds', '2',
                              '--controllable-recipes', 'main',
                              'uniform-decoders'])
    res = pareto.report(args)
    # Every seed's specs get the options in order, the recipes last.
    assert [a[-2:] for a in passed] == [
        (['main'], ['main', 'uniform-decoders'])] * 2
    demo = json.loads((work / 'results.json').read_text())
    assert demo['results'] == [1, 2]
    assert demo['pareto']['rows'] == res['rows']
    assert demo['pareto']['seeds'] == [0, 1]
    with open(work / 'pareto_results.json', encoding='utf-8') as f:
        saved = json.load(f)
    assert saved['rows'] == res['rows'] and saved['seeds'] == [0, 1]
    assert len(saved['rows']) == 7 and len(saved['per_seed']) == 14
    # The recalibrated rows are not timed again: the plain row's times.
    assert timed[0] == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    per = {(r['method'], r['budget'], r['seed']): r
           for r in saved['per_seed']}
    for seed in (0, 1):
        recal = per[(pareto.RECALIBRATED, 0.5, seed)]
        assert recal['latency_ms'] == per[('controllable', 0.5, seed)][
            'latency_ms'] == 10.0 + 3 + 7 * seed
        assert recal['delta_m'] != per[('controllable', 0.5, seed)][
            'delta_m']
    assert 'timed as that row, not again' in \
        (work / 'pareto_results.md').read_text()
    for row in saved['rows']:
        assert {'method', 'budget', 'encoder_gflops', 'gflops', 'delta_m',
                'latency_ms', 'delta_m_std', 'seeds'} <= set(row)
        assert row['seeds'] == [0, 1]
    assert saved['note'] is None
    assert osp.getsize(work / 'pareto.png') > 0
    text = (work / 'pareto_results.md').read_text()
    assert '| AdaMTL | 0.5 | 2 |' in text
    corr = {r['method']: r['gflops_objects_corr'] for r in saved['rows']}
    assert corr['AdaMTL'] == pytest.approx(0.4)
    assert corr[fair] is None
    assert [r['gflops_objects_corr'] for r in saved['per_seed']
            if r['method'] == 'AdaMTL'] == pytest.approx([0.2, 0.6])
    assert '| +0.40 |' in text
    # One seed says so; a figure of the user's is not replaced unasked.
    figure = tmp_path / 'pareto.png'
    figure.write_bytes(b'mine')
    args = pareto.parse_args(['--work-dir', str(work), '--figure',
                              str(figure)])
    with pytest.raises(FileExistsError, match='--overwrite'):
        pareto.report(args)
    assert figure.read_bytes() == b'mine'
    res = pareto.report(pareto.parse_args(
        ['--work-dir', str(work), '--figure', str(figure), '--overwrite']))
    assert res['note'] == pareto.ONE_SEED_NOTE
    assert res['figure'] == str(figure)
    assert all(r['delta_m_std'] is None for r in res['rows'])
    assert figure.read_bytes()[:4] == b'\x89PNG'
    assert pareto.ONE_SEED_NOTE in (work / 'pareto_results.md').read_text()


@pytest.mark.parametrize('argv,message', [
    (['--seeds', '0'], 'argument --seeds: must be >= 1, got 0'),
    (['--budgets', '0.5', '1.5'], 'budgets are shares'),
    (['--controllable-budgets', '0'], 'budgets are shares'),
    (['--quick', '--schedule-scale', '0.5'], '--quick is --schedule-scale'),
    (['--family', '2-2-2-2'], "invalid choice: '2-2-2-2'"),
    (['--adamtl-recipes', 'long'], "invalid choice: 'long'"),
    (['--adamtl-recipes', 'main', 'long-joint', 'main'],
     '--adamtl-recipes names main more than once'),
    (['--controllable-recipes', 'uniform-decoders', 'uniform-decoders'],
     '--controllable-recipes names uniform-decoders more than once'),
    (['--controllable-recipes', 'uniform'], "invalid choice: 'uniform'"),
    (['--recalibrate-bn', '-1'],
     'argument --recalibrate-bn: must be >= 0, got -1'),
    (['--recalibrate-bn', '8', '--skip-controllable'],
     'which --skip-controllable leaves out'),
])
def test_bad_arguments(pareto, capsys, argv, message):
    with pytest.raises(SystemExit):
        pareto.parse_args(argv)
    assert message in capsys.readouterr().err


def test_quick_uses_the_quick_demos_work_dir(pareto):
    args = pareto.parse_args(['--quick'])
    assert args.schedule_scale == pareto.QUICK_SCALE
    assert args.work_dir == 'work_dirs/demo_quick'
    args = pareto.parse_args([])
    assert (args.work_dir, args.seeds) == ('work_dirs/demo', 1)


def test_controllable_rows_reuse_or_measure_their_table(pareto, tmp_path):
    work = str(tmp_path)
    for n, i in FULL_ITERS.items():
        _finished(work, n, i)
    ckpt = _finished(work, 'controllable', 800)
    table = osp.join(work, 'controllable', 'lookup_table.json')
    # No table next to the checkpoint: measured with tools/controllable.py
    # on the held-out images of the data root.
    specs = pareto.specs(work, 'data/x', 0, False, 1.0, [], [0.5, 1.0], 8)
    cmd = pareto.calls[-1]
    assert cmd[1:5] == ['tools/controllable.py', 'table',
                        pareto.CONTROLLABLE, ckpt]
    assert 'lookup_dataloader.dataset.data_root=data/x' in cmd
    rows = [s for s in specs if s['family'] == 'controllable']
    assert [r['budget'] for r in rows] == [0.5, 1.0]
    # Evaluated with the edge benchmark, as every other row.
    assert rows[0]['opts'] == {'model.test_cfg.lookup_table': table,
                               'model.test_cfg.budget': 0.5,
                               'test_evaluator.edge_protocol': 'bsds'}
    assert rows[1]['metrics_path'] == osp.join(
        work, 'controllable_bsds_b1_metrics.json')
    # With BN recalibration each row twice: the second re-estimates the
    # statistics in tools/test.py and is timed as the first.
    both = [s for s in pareto.specs(work, 'data/x', 0, False, 1.0, [],
                                    [0.5, 1.0], 8, recalibrate_bn=64)
            if s['family'] != 'static' and s['method'] != 'AdaMTL']
    assert [(s['method'], s['budget']) for s in both] == [
        ('controllable', 0.5), (pareto.RECALIBRATED, 0.5),
        ('controllable', 1.0), (pareto.RECALIBRATED, 1.0)]
    assert both[1]['args'] == ['--recalibrate-bn', '64']
    assert both[1]['timed_as'] is both[0] and 'args' not in both[0]
    assert both[1]['opts'] == both[0]['opts']
    assert both[3]['metrics_path'] == osp.join(
        work, 'controllable_bsds_bn64_b1_metrics.json')
    # A table newer than the checkpoint (the demo's) is reused.
    with open(table, 'w') as f:
        f.write('{}')
    pareto.calls.clear()
    pareto.specs(work, 'data/x', 0, False, 1.0, [], [0.5], 8)
    assert pareto.calls == []
    # Seed 1 trains its own super-network next to seed 0's.
    with pytest.raises(RuntimeError, match='max_iters=800'):
        for n, i in FULL_ITERS.items():
            _finished(work, f'{n}_seed1', i)
        pareto.specs(work, 'data/x', 1, False, 1.0, [], [0.5], 8)
    cmd = pareto.calls[-1]
    assert cmd[2] == pareto.CONTROLLABLE
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'controllable_seed1')
    assert 'randomness.seed=1' in cmd


def test_controllable_recipes_train_their_own_super_networks(
        pareto, tmp_path):
    """--controllable-recipes: each ablation config trains in its own work
    dir with its own lookup table, rows and metrics files (recalibrated
    rows too), beside the demo's super-network."""
    work = str(tmp_path)
    for n, i in FULL_ITERS.items():
        _finished(work, n, i)
    main = _finished(work, 'controllable', 800)
    uniform = _finished(work, 'controllable_uniform_decoders', 800)
    specs = pareto.specs(work, 'data/x', 0, False, 1.0, [], [0.5], 8,
                         family=['1-1-1-1'], recalibrate_bn=16,
                         controllable_recipes=['main', 'uniform-decoders'])
    tables = [c for c in pareto.calls if c[1] == 'tools/controllable.py']
    config = ('configs/ablations/'
              'controllable_swin_synthetic_uniform_decoders.py')
    assert [c[3:5] for c in tables] == [[pareto.CONTROLLABLE, main],
                                        [config, uniform]]
    rows = [s for s in specs if s['method'].startswith('controllable')]
    method = 'controllable, uniform decoder widths'
    assert [s['method'] for s in rows] == [
        'controllable', pareto.RECALIBRATED, method,
        method + ', BN recalibrated']
    assert [s['family'] for s in rows] == [s['method'] for s in rows]
    assert rows[2]['config'] == config and rows[2]['ckpt'] == uniform
    assert rows[2]['opts']['model.test_cfg.lookup_table'] == osp.join(
        work, 'controllable_uniform_decoders', 'lookup_table.json')
    assert rows[3]['timed_as'] is rows[2]
    assert [osp.basename(s['metrics_path']) for s in rows] == [
        'controllable_bsds_b0.5_metrics.json',
        'controllable_bsds_bn16_b0.5_metrics.json',
        'controllable_uniform_decoders_bsds_b0.5_metrics.json',
        'controllable_uniform_decoders_bsds_bn16_b0.5_metrics.json']
    # Not trained yet: it trains, with the lookup data and the seed.
    with pytest.raises(RuntimeError, match='max_iters=800'):
        pareto.specs(work, 'data/x', 0, False, 1.0, [], [0.5], 8,
                     family=['1-1-1-1'],
                     controllable_recipes=['predict-distill'])
    cmd = pareto.calls[-1]
    assert cmd[cmd.index('--work-dir') + 1] == osp.join(
        work, 'controllable_predict_distill')
    assert 'configs/ablations/controllable_swin_synthetic_predict_distill' \
        '.py' in cmd
    assert 'lookup_dataloader.dataset.data_root=data/x' in cmd
    # --skip-controllable leaves every recipe out.
    assert not [s for s in pareto.specs(
        work, 'data/x', 0, False, 1.0, [], [0.5], 8, skip_controllable=True,
        controllable_recipes=['main', 'uniform-decoders'])
        if s['method'].startswith('controllable')]


def test_objects_corr_against_numpy(tmp_path):
    """The correlation of each image's executed encoder GFLOPs with its
    object count (meta.json), by the formula; None for equal costs."""
    import numpy as np
    common = _tool('demo_common')
    objects = {'a': 0, 'b': 3, 'c': 1, 'd': 5}
    (tmp_path / 'meta.json').write_text(json.dumps(dict(num_objects=objects)))
    ids = ['d', 'a', 'c', 'b']
    follows = [1.0 + 0.1 * objects[i] for i in ids]
    noisy = [0.3, 0.1, 0.4, 0.2]
    timing = dict(ids=ids, encoder_gflops=dict(
        follows=follows, noisy=noisy, static=[0.5] * 4,
        # A static model's sums differ in the last bits (seen: a
        # correlation of -1e-17 reported for the 2-2-2-2 model).
        rounding=[0.251885568, 0.25188556799999995] * 2))
    r = common.objects_corr(timing, str(tmp_path))
    assert r['follows'] == pytest.approx(1.0)
    x = np.array([objects[i] for i in ids], float) - 2.25
    y = np.array(noisy) - 0.25
    assert r['noisy'] == pytest.approx(
        (x @ y) / np.sqrt((x @ x) * (y @ y)))
    assert r['static'] is None and r['rounding'] is None
