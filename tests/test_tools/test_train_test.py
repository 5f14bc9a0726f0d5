"""End to end through tools/train.py, tools/test.py and dist_train.sh."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import mmseg
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from PIL import Image

from mmadamtl.utils import load_checkpoint_file
from tests.conftest import ROOT, TINY_CONFIG


TINY_MTLORA = osp.join(ROOT, 'tests', 'configs',
                       'tiny_mtlora_swin_synthetic.py')
TINY_CONTROLLABLE = osp.join(ROOT, 'tests', 'configs',
                             'tiny_controllable_swin_synthetic.py')


def _data_opts(root):
    return [f'{k}.dataset.data_root={root}'
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')]


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_train_resume_test(tiny_synthetic, tmp_path):
    work = str(tmp_path / 'work')
    opts = _data_opts(tiny_synthetic)
    _run(['tools/train.py', TINY_CONFIG, '--work-dir', work,
          '--cfg-options', *opts])
    assert osp.isfile(osp.join(work, 'iter_4.pth'))
    # Resume from the iteration-2 checkpoint and go on to 6 iterations.
    proc = _run(['tools/train.py', TINY_CONFIG, '--work-dir', work,
                 '--resume', osp.join(work, 'iter_2.pth'), '--cfg-options',
                 'train_cfg.max_iters=6', *opts])
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    ckpt = load_checkpoint_file(osp.join(work, 'iter_6.pth'))
    assert ckpt['meta']['iter'] == 6
    assert 'message_hub' in ckpt
    out = str(tmp_path / 'metrics.json')
    _run(['tools/test.py', TINY_CONFIG, osp.join(work, 'iter_6.pth'),
          '--work-dir', work, '--metrics-out', out, '--cfg-options', *opts])
    metrics = json.load(open(out))
    for key in ('semseg/mIoU', 'human_parts/mIoU', 'saliency/maxIoU',
                'saliency/maxF', 'normals/mean', 'edge/odsF', 'depth/rmse'):
        assert key in metrics, key
    assert 0 <= metrics['semseg/mIoU'] <= 100
    assert 0 <= metrics['normals/mean'] <= 180
    # load_from (fine-tuning from a checkpoint) also loads.
    _run(['tools/train.py', TINY_CONFIG, '--work-dir', str(tmp_path / 'ft'),
          '--cfg-options', f'load_from={osp.join(work, "iter_6.pth")}',
          'train_cfg.max_iters=1', *opts])


MMSEG_TOOLS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')


def test_mmseg_own_test_tool(tiny_synthetic, tmp_path):
    """mmseg's tools/test.py, as users run it with our configs: a real
    checkpoint evaluates; a crafted one is refused and runs no code."""
    from tests.test_utils.test_safe_checkpoint import _eval_payload
    work = str(tmp_path / 'work')
    opts = _data_opts(tiny_synthetic)
    _run(['tools/train.py', TINY_CONFIG, '--work-dir', work,
          '--cfg-options', 'train_cfg.max_iters=2', *opts])
    preds = tmp_path / 'preds'
    proc = _run([osp.join(MMSEG_TOOLS, 'test.py'), TINY_CONFIG,
                 osp.join(work, 'iter_2.pth'), '--work-dir', work,
                 '--out', str(preds), '--cfg-options', *opts])
    assert 'semseg/mIoU' in proc.stdout + proc.stderr
    # --out: every task's predictions, in the datasets' encodings.
    names = sorted(n.strip() for n in open(
        osp.join(tiny_synthetic, 'ImageSets', 'Context', 'val.txt'))
        if n.strip())
    for task, ext in (('semseg', 'png'), ('human_parts', 'png'),
                      ('saliency', 'png'), ('normals', 'png'),
                      ('edge', 'png'), ('depth', 'npy')):
        files = sorted(os.listdir(preds / task))
        assert files == [f'{n}.{ext}' for n in names], task
    img = Image.open(preds / 'normals' / f'{names[0]}.png')
    assert img.mode == 'RGB'
    normals = 2 * np.asarray(img, np.float64) / 255 - 1
    # Unit vectors, up to the 8-bit rounding.
    assert np.allclose(np.linalg.norm(normals, axis=2), 1, atol=0.02)
    labels = np.asarray(Image.open(preds / 'semseg' / f'{names[0]}.png'))
    assert labels.dtype == np.uint8 and labels.max() < 6
    depth = np.load(preds / 'depth' / f'{names[0]}.npy', allow_pickle=False)
    assert depth.dtype == np.float32 and depth.ndim == 2
    # format_only: predictions written, nothing evaluated (no metric).
    proc = _run([osp.join(MMSEG_TOOLS, 'test.py'), TINY_CONFIG,
                 osp.join(work, 'iter_2.pth'), '--work-dir', work,
                 '--cfg-options', *opts,
                 f'test_evaluator.output_dir={tmp_path / "only"}',
                 'test_evaluator.format_only=True'])
    assert 'semseg/mIoU' not in proc.stdout + proc.stderr
    assert len(os.listdir(tmp_path / 'only' / 'edge')) == len(names)
    # A misspelt evaluator option fails, naming it.
    proc = subprocess.run(
        [sys.executable, osp.join(MMSEG_TOOLS, 'test.py'), TINY_CONFIG,
         osp.join(work, 'iter_2.pth'), '--work-dir', work,
         '--cfg-options', *opts, 'test_evaluator.outdir=x'],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown option(s) ['outdir']" in proc.stderr
    marker = str(tmp_path / 'ran')
    crafted = str(tmp_path / 'crafted.pth')
    torch.save(dict(state_dict={}, meta=_eval_payload(HistoryBuffer,
                                                      marker)), crafted)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, osp.join(MMSEG_TOOLS, 'test.py'), TINY_CONFIG,
         crafted, '--work-dir', work, '--cfg-options', *opts],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "refused getattr(<HistoryBuffer>, '__init__')" in proc.stderr
    assert not osp.exists(marker)


def test_test_rejects_checkpoint_of_other_architecture(tiny_synthetic,
                                                       tmp_path):
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'conv.weight': torch.zeros(1)}), other)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', TINY_CONFIG, str(other),
         '--work-dir', str(tmp_path), '--cfg-options',
         *_data_opts(tiny_synthetic)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'does not fit MultiTaskEncoderDecoder' in proc.stderr
    assert 'other.pth' in proc.stderr


def test_unknown_task_in_config_fails_clearly(tiny_synthetic, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', TINY_CONFIG, '--work-dir',
         str(tmp_path), '--cfg-options', *_data_opts(tiny_synthetic),
         'train_dataloader.dataset.tasks=[semseg,surface]'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "unknown task 'surface'" in proc.stderr


@pytest.mark.skipif(sys.platform != 'linux', reason='gloo on linux')
@pytest.mark.parametrize('config', ['static', 'mtlora', 'controllable',
                                    'gradnorm', 'dwa'])
def test_dist_train_two_processes(tiny_synthetic, tmp_path, config):
    """Every method under DDP (gloo); the loss weightings with AdaMTL's
    budget loss (GradNorm) and on the static model (DWA, averaging the
    losses over the processes)."""
    extra = dict(
        gradnorm=['model.decode_head.loss_weighting.type=GradNormWeighting'],
        dwa=['model.decode_head.loss_weighting.type=DWAWeighting',
             'model.decode_head.loss_weighting.interval=1']).get(config, [])
    config = dict(static=TINY_CONFIG, mtlora=TINY_MTLORA,
                  controllable=TINY_CONTROLLABLE, gradnorm=TINY_ADAPTIVE,
                  dwa=TINY_CONFIG)[config]
    work = str(tmp_path / 'dist')
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable,
               PORT='29517', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work,
         '--cfg-options', 'train_cfg.max_iters=2', *_data_opts(
             tiny_synthetic), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    # torchrun exits 0 only when every rank finished without error.
    assert proc.returncode == 0, log[-6000:]
    assert 'Distributed training: True' in log
    ckpt = load_checkpoint_file(osp.join(work, 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2
    # The DDP checkpoint loads into a fresh single-process model.
    from mmengine.config import Config
    from mmseg.registry import MODELS
    cfg = Config.fromfile(config)
    if extra:
        cfg.merge_from_dict(dict(o.split('=') for o in extra))
        assert 'semseg.weight' in log
    model = MODELS.build(cfg.model)
    model.load_state_dict(ckpt['state_dict'], strict=True)


def test_runner_with_custom_imports_only(tiny_synthetic, tmp_path):
    """What mmseg's own tools/train.py does: build the Runner from the
    config; the config's custom_imports registers mmadamtl."""
    script = (
        'import sys\n'
        'from mmengine.config import Config\n'
        'from mmengine.runner import Runner\n'
        'cfg = Config.fromfile(sys.argv[1])\n'
        'assert "mmadamtl" in sys.modules\n'
        'cfg.work_dir = sys.argv[2]\n'
        'cfg.merge_from_dict(dict(train_cfg=dict(max_iters=1, '
        'val_interval=1)))\n'
        'for k in ("train_dataloader", "val_dataloader"):\n'
        '    cfg[k].dataset.data_root = sys.argv[3]\n'
        'Runner.from_cfg(cfg).train()\n')
    _run(['-c', script, TINY_CONFIG, str(tmp_path), tiny_synthetic])
    assert osp.isfile(tmp_path / 'iter_1.pth')


TINY_POLICY = osp.join(ROOT, 'tests', 'configs',
                       'tiny_adamtl_swin_synthetic_policy.py')
TINY_ADAPTIVE = osp.join(ROOT, 'tests', 'configs',
                         'tiny_adamtl_swin_synthetic.py')


def test_adamtl_three_stages_and_test_at_budgets(tiny_synthetic, tmp_path):
    """Static -> policy pre-training (rest frozen) -> joint, handed off by
    load_from, then tools/test.py at two budgets and on two tasks."""
    opts = _data_opts(tiny_synthetic)
    dirs = {k: str(tmp_path / k) for k in ('static', 'policy', 'joint')}
    _run(['tools/train.py', TINY_CONFIG, '--work-dir', dirs['static'],
          '--cfg-options', *opts])
    static = load_checkpoint_file(
        osp.join(dirs['static'], 'iter_4.pth'))['state_dict']
    proc = _run(['tools/train.py', TINY_POLICY, '--work-dir',
                 dirs['policy'], '--cfg-options', *opts,
                 f'load_from={dirs["static"]}/iter_4.pth'])
    log = proc.stdout + proc.stderr
    assert 'loss_budget' in log and 'executed_fraction' in log
    assert 'block_keep_s0' in log and 'tau' in log
    assert 'frozen (requires_grad=False)' in log
    policy = load_checkpoint_file(
        osp.join(dirs['policy'], 'iter_4.pth'))['state_dict']
    # Everything but the policy stayed frozen; the policy trained.
    for k, v in static.items():
        assert torch.equal(v, policy[k]), k
    assert any(k.startswith('backbone.policy.') for k in policy)
    _run(['tools/train.py', TINY_ADAPTIVE, '--work-dir', dirs['joint'],
          '--cfg-options', *opts, f'load_from={dirs["policy"]}/iter_4.pth'])
    joint = load_checkpoint_file(
        osp.join(dirs['joint'], 'iter_4.pth'))['state_dict']
    # Joint training trains the whole model.
    key = 'decode_head.decoders.semseg.cls.weight'
    assert not torch.equal(joint[key], static[key])
    # BudgetCalibrationHook measured the budget curve into the checkpoint.
    curve = joint['backbone.policy.budget_curve']
    assert not curve.isnan().any() and (curve.diff() >= 0).all()
    assert policy['backbone.policy.budget_curve'].isnan().all()
    # Both adaptive stages' checkpoints (message hub included) resume.
    for stage, config in (('policy', TINY_POLICY), ('joint', TINY_ADAPTIVE)):
        proc = _run(['tools/train.py', config, '--work-dir',
                     str(tmp_path / f'{stage}_resumed'), '--resume',
                     osp.join(dirs[stage], 'iter_2.pth'), '--cfg-options',
                     *opts])
        assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    results = {}
    for budget in ('0.3', '1.0'):
        out = str(tmp_path / f'm{budget}.json')
        _run(['tools/test.py', TINY_ADAPTIVE,
              osp.join(dirs['joint'], 'iter_4.pth'), '--work-dir',
              dirs['joint'], '--metrics-out', out, '--cfg-options', *opts,
              f'model.test_cfg.budget={budget}',
              'model.test_cfg.tasks=[semseg,normals]'])
        results[budget] = json.load(open(out))
    for m in results.values():
        assert set(k.split('/')[0] for k in m) == {
            'semseg', 'normals', 'gflops', 'encoder_gflops',
            'block_fraction', 'encoder_share', 'encoder_share_max'}
        assert 0 < m['encoder_gflops'] < m['gflops']
    # A static checkpoint does not pass for an adaptive model at test.
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', TINY_ADAPTIVE,
         osp.join(dirs['static'], 'iter_4.pth'), '--work-dir',
         str(tmp_path), '--cfg-options', *opts],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'missing key' in proc.stderr


@pytest.mark.skipif(sys.platform != 'linux', reason='gloo on linux')
def test_dist_adaptive_training_two_processes(tiny_synthetic, tmp_path):
    """Policy pre-training leaves the decoders unused and joint training
    skips nothing in training; both run under DDP on gloo."""
    for i, config in enumerate((TINY_POLICY, TINY_ADAPTIVE)):
        work = str(tmp_path / f'dist{i}')
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHON=sys.executable,
                   PORT=str(29521 + i), OMP_NUM_THREADS='1')
        proc = subprocess.run(
            ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work,
             '--cfg-options', 'train_cfg.max_iters=2',
             'train_cfg.val_interval=2', *_data_opts(tiny_synthetic)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-6000:]
        assert 'Distributed training: True' in log
        assert 'loss_budget' in log
        assert osp.isfile(osp.join(work, 'iter_2.pth'))
        # ComplexityLoggerHook: training figures all-reduced over the
        # ranks, evaluation records gathered from both.
        assert 'block_keep_s0' in log
        assert 'val executed compute (per image)' in log


def _same_final_weights(straight, resumed, ckpt='iter_4.pth'):
    """Assert both runs ended with the same weights; return them."""
    a = load_checkpoint_file(osp.join(straight, ckpt))['state_dict']
    b = load_checkpoint_file(osp.join(resumed, ckpt))['state_dict']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    return a


def test_adaptive_resume_is_exact(tiny_synthetic, tmp_path):
    """Joint AdaMTL training (random budgets, Gumbel noise, drop path)
    resumed at iteration 2 ends with the uninterrupted run's weights."""
    opts = _data_opts(tiny_synthetic) + [
        'train_dataloader.num_workers=1', 'model.backbone.drop_path_rate=0.3']
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _run(['tools/train.py', TINY_ADAPTIVE, '--work-dir', straight,
          '--cfg-options', *opts])
    # As if the run had stopped after its iteration-2 checkpoint.
    _run(['tools/train.py', TINY_ADAPTIVE, '--work-dir', resumed, '--resume',
          osp.join(straight, 'iter_2.pth'), '--cfg-options', *opts])
    a = _same_final_weights(straight, resumed)
    # The noise is not constant: a run of another seed ends elsewhere.
    other = str(tmp_path / 'other')
    _run(['tools/train.py', TINY_ADAPTIVE, '--work-dir', other,
          '--cfg-options', *opts, 'randomness.seed=1'])
    c = load_checkpoint_file(osp.join(other, 'iter_4.pth'))['state_dict']
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize('weighting', ['dwa', 'gradnorm'])
def test_loss_weighting_resume_is_exact(tiny_synthetic, tmp_path, weighting):
    """Training with a loss weighting resumed at iteration 2 ends with the
    uninterrupted run's weights (DWA's loss history and GradNorm's weights
    and initial losses are in the checkpoint); GradNorm runs with AdaMTL's
    budget loss. The weights are logged."""
    config, extra = dict(
        dwa=(TINY_CONFIG, ['model.decode_head.loss_weighting.type='
                           'DWAWeighting',
                           'model.decode_head.loss_weighting.interval=1']),
        gradnorm=(TINY_ADAPTIVE, ['model.decode_head.loss_weighting.type='
                                  'GradNormWeighting']))[weighting]
    opts = _data_opts(tiny_synthetic) + extra
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _run(['tools/train.py', config, '--work-dir', straight, '--cfg-options',
          *opts])
    _run(['tools/train.py', config, '--work-dir', resumed, '--resume',
          osp.join(straight, 'iter_2.pth'), '--cfg-options', *opts])
    a = _same_final_weights(straight, resumed)
    state = [k for k in a if k.startswith('decode_head.loss_weighting.')]
    assert state, sorted(a)[:5]
    if weighting == 'dwa':
        # Four periods of one iteration: the weights moved off 1.
        assert a['decode_head.loss_weighting.periods'].item() == 4
        assert not torch.equal(a['decode_head.loss_weighting.weights'],
                               torch.ones(6))
    else:
        assert (a['decode_head.loss_weighting.initial_losses'] > 0).all()
    scalars = open(glob.glob(osp.join(straight, '*', 'vis_data',
                                      'scalars.json'))[0]).read()
    assert '"semseg.weight"' in scalars


def test_mtlora_train_resume_test_and_deploy(tiny_synthetic, tmp_path):
    """MTLoRA through the tools: training resumed at iteration 2 ends with
    the uninterrupted run's weights (LoRA dropout and drop path
    included), frozen weights do not move, tools/test.py evaluates; the
    merged and the adapter-rebuilt checkpoints give the trained model's
    outputs."""
    opts = _data_opts(tiny_synthetic)
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    proc = _run(['tools/train.py', TINY_MTLORA, '--work-dir', straight,
                 '--cfg-options', *opts])
    assert 'parameters train' in proc.stdout + proc.stderr
    _run(['tools/train.py', TINY_MTLORA, '--work-dir', resumed, '--resume',
          osp.join(straight, 'iter_2.pth'), '--cfg-options', *opts])
    a = _same_final_weights(straight, resumed)
    first = load_checkpoint_file(osp.join(straight, 'iter_2.pth'))
    first = first['state_dict']
    frozen = 'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight'
    assert torch.equal(first[frozen], a[frozen])
    trained = 'backbone.stages.0.blocks.0.attn.w_msa.qkv.lora_B'
    assert not torch.equal(first[trained], a[trained])
    ckpt = osp.join(straight, 'iter_4.pth')
    out = str(tmp_path / 'metrics.json')
    _run(['tools/test.py', TINY_MTLORA, ckpt, '--work-dir', straight,
          '--metrics-out', out, '--cfg-options', *opts])
    assert 'depth/rmse' in json.load(open(out))

    from mmadamtl.apis import init_model
    x = torch.rand(1, 3, 64, 64)
    model = init_model(TINY_MTLORA, ckpt)
    with torch.no_grad():
        ref = model._forward(x)
    merged_dir = str(tmp_path / 'merged')
    _run(['tools/mtlora.py', 'merge', TINY_MTLORA, ckpt, merged_dir])
    merged = init_model(osp.join(merged_dir, 'merged_config.py'),
                        osp.join(merged_dir, 'merged.pth'))
    assert merged.backbone.lora_cfg['merged']
    adapters = str(tmp_path / 'adapters.pth')
    proc = _run(['tools/mtlora.py', 'extract', TINY_MTLORA, ckpt, adapters])
    assert 'size_ratio' in proc.stdout
    assert osp.getsize(adapters) < osp.getsize(ckpt)
    # The base: the trained checkpoint's frozen encoder weights alone.
    base = str(tmp_path / 'base.pth')
    torch.save({k[9:]: v for k, v in a.items()
                if k.startswith('backbone.')
                and 'lora_' not in k and 'task_' not in k}, base)
    rebuilt = str(tmp_path / 'rebuilt.pth')
    _run(['tools/mtlora.py', 'apply', TINY_MTLORA, base, adapters, rebuilt])
    again = init_model(TINY_MTLORA, rebuilt)
    with torch.no_grad():
        for other, tol in ((merged, 1e-4), (again, 0)):
            out = other._forward(x)
            for task in ref:
                torch.testing.assert_close(out[task], ref[task], rtol=tol,
                                           atol=tol)


def test_controllable_train_resume_search_and_test(tiny_synthetic, tmp_path):
    """Sandwich training resumed at iteration 2 ends with the uninterrupted
    run's weights (random sub-networks, Dirichlet preferences, drop
    path); the lookup table and the search run through
    tools/controllable.py; tools/test.py and mmseg's own test tool run a
    (budget, preference) request, whose executed GFLOPs stay within the
    budget and are the searched configuration's; ``--recalibrate-bn``
    tests the same sub-network with re-estimated BatchNorm statistics."""
    opts = _data_opts(tiny_synthetic)
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _run(['tools/train.py', TINY_CONTROLLABLE, '--work-dir', straight,
          '--cfg-options', *opts])
    _run(['tools/train.py', TINY_CONTROLLABLE, '--work-dir', resumed,
          '--resume', osp.join(straight, 'iter_2.pth'), '--cfg-options',
          *opts])
    a = _same_final_weights(straight, resumed)
    first = load_checkpoint_file(osp.join(straight, 'iter_2.pth'))
    # The narrow widths' own BNs trained too (the sandwich's min).
    key = 'decode_head.decoders.semseg.fuse.norms.0.weight'
    assert not torch.equal(first['state_dict'][key], a[key])
    ckpt = osp.join(straight, 'iter_4.pth')
    lookup_opt = f'lookup_dataloader.dataset.data_root={tiny_synthetic}'
    proc = _run(['tools/controllable.py', 'table', TINY_CONTROLLABLE, ckpt,
                 '--cfg-options', lookup_opt])
    table_path = json.loads(proc.stdout)['table']
    assert table_path == osp.join(straight, 'lookup_table.json')
    table = json.load(open(table_path))
    assert len(table['encoders']) == 4 and table['widths'] == [0.5, 1.0]
    # The evolutionary search over per-stage encoders adds what it finds.
    per_stage = str(tmp_path / 'per_stage.json')
    proc = _run(['tools/controllable.py', 'table', TINY_CONTROLLABLE, ckpt,
                 '--out', per_stage, '--per-stage', '--budgets', '0.9',
                 '--population', '4', '--generations', '1',
                 '--cfg-options', lookup_opt])
    extended = json.load(open(per_stage))
    assert extended['source']['per_stage']['skipped_budgets'] == []
    added = extended['source']['per_stage']['added']
    assert len(extended['encoders']) == 4 + added
    assert extended['encoders'][:4] == table['encoders']
    proc = _run(['tools/controllable.py', 'search', TINY_CONTROLLABLE,
                 '--table', table_path, '--budget', '0.7', '--preference',
                 'semseg=0.6', 'depth=0.4'])
    found = json.loads(proc.stdout)
    assert found['gflops'] <= found['budget_gflops']
    assert found['decoders']['semseg'] == 1.0
    assert found['decoders']['edge'] == 0.0
    request = [f'model.test_cfg.lookup_table={table_path}',
               'model.test_cfg.budget=0.7',
               'model.test_cfg.preference.semseg=0.6',
               'model.test_cfg.preference.depth=0.4']
    out = str(tmp_path / 'metrics.json')
    _run(['tools/test.py', TINY_CONTROLLABLE, ckpt, '--work-dir', straight,
          '--metrics-out', out, '--cfg-options', *opts, *request])
    metrics = json.load(open(out))
    assert 'semseg/mIoU' in metrics and 'depth/rmse' in metrics
    assert 'edge/odsF' not in metrics
    assert metrics['gflops'] == pytest.approx(found['gflops'], rel=1e-9)
    # The same sub-network with its BatchNorm statistics re-estimated on
    # 3 training images: the same cost, other values.
    recal = str(tmp_path / 'metrics_recal.json')
    proc = _run(['tools/test.py', TINY_CONTROLLABLE, ckpt, '--work-dir',
                 straight, '--metrics-out', recal, '--recalibrate-bn', '3',
                 '--cfg-options', *opts, *request])
    assert 'BatchNorm statistics of' in proc.stdout + proc.stderr
    recalibrated = json.load(open(recal))
    assert recalibrated['gflops'] == metrics['gflops']
    assert recalibrated['depth/rmse'] != metrics['depth/rmse']
    # mmseg's own test tool runs the same request.
    proc = _run([osp.join(MMSEG_TOOLS, 'test.py'), TINY_CONTROLLABLE, ckpt,
                 '--work-dir', str(tmp_path / 'mmseg'), '--cfg-options',
                 *opts, *request])
    assert 'semseg/mIoU' in proc.stdout + proc.stderr


def test_single_task_baselines_tool(tiny_synthetic, tmp_path):
    """tools/single_task_baselines.py trains a single-task config, writes
    its main metric, reuses the finished run, and the file feeds Δm; a
    multi-task config is refused."""
    single = osp.join(ROOT, 'tests', 'configs', 'tiny_single_task_depth.py')
    out = str(tmp_path / 'baselines.json')
    root = str(tmp_path / 'single')
    args = ['tools/single_task_baselines.py', single, '--work-dir-root',
            root, '--out', out, '--cfg-options', *_data_opts(tiny_synthetic),
            'train_cfg.max_iters=2']
    _run(args)
    data = json.load(open(out))
    entry = data['baselines']['depth']
    assert entry['metric'] == 'depth/rmse' and entry['max_iters'] == 2
    tested = json.load(open(osp.join(root, 'depth', 'test_metrics.json')))
    assert entry['value'] == tested['depth/rmse'] > 0
    assert set(k.split('/')[0] for k in tested) >= {'depth'}
    assert 'semseg/mIoU' not in tested
    # A second call reuses the training, and replaces the file only when
    # told to.
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'baselines.json exists' in proc.stderr
    proc = _run(args + ['--overwrite'])
    assert 'reusing the finished training in' in proc.stdout
    assert '(iteration 2)' in proc.stdout
    # An unfinished run (last_checkpoint at iteration 2 of 3) is not
    # reused: it is resumed to max_iters.
    proc = _run(args[:-1] + ['train_cfg.max_iters=3', '--overwrite'])
    assert 'reusing' not in proc.stdout
    entry = json.load(open(out))['baselines']['depth']
    assert entry['trained_iters'] == 3 and entry['max_iters'] == 3
    # The multi-task metric reads the file.
    from mmadamtl.evaluation import MultiTaskMetric
    metric = MultiTaskMetric(single_task_baselines=out)
    assert metric.delta_m({'depth/rmse': entry['value'] * 0.9}) == \
        pytest.approx(10.)
    proc = subprocess.run(
        [sys.executable, 'tools/single_task_baselines.py', TINY_CONFIG,
         '--out', str(tmp_path / 'x.json')],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'exactly one task' in proc.stderr
    assert not osp.exists(tmp_path / 'x.json')
