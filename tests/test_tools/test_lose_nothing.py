"""No tool loses what a user has (issue points 1, 3, 4, 11 and 13): the
reproductions of the report, each now an error naming the culprit or a
documented safe behaviour."""
import hashlib
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmadamtl.utils import load_checkpoint_file
from mmadamtl.utils.work_dir import (finished_checkpoint, resume_checkpoint,
                                     work_dir_lock)
from tests.conftest import ROOT, TINY_CONFIG

CONFIGS = osp.join(ROOT, 'tests', 'configs')
TINY_MTLORA = osp.join(CONFIGS, 'tiny_mtlora_swin_synthetic.py')
TINY_CONTROLLABLE = osp.join(CONFIGS, 'tiny_controllable_swin_synthetic.py')
TINY_ADAPTIVE = osp.join(CONFIGS, 'tiny_adamtl_swin_synthetic.py')


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(name, argv, monkeypatch):
    """Run a tool's ``main`` as the command line would."""
    module = _tool(name)
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + list(argv))
    try:
        return module.main(argv) if name in (
            'mtlora', 'controllable', 'calibrate_budget') else module.main()
    finally:
        from mmengine.registry import init_default_scope
        init_default_scope('mmseg')


def _digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


@pytest.fixture()
def ckpt(tmp_path):
    path = tmp_path / 'ck.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), meta=dict(iter=4)),
               path)
    return str(path)


@pytest.mark.parametrize('tool,argv', [
    ('mtlora', ['extract', TINY_MTLORA, '{ck}', '{ck}']),
    ('mtlora', ['apply', TINY_MTLORA, '{ck}', '{other}', '{ck}']),
    ('mtlora', ['merge', TINY_MTLORA, '{dir}/merged.pth', '{dir}']),
    ('controllable', ['table', TINY_CONTROLLABLE, '{ck}', '--out', '{ck}']),
    ('test', [TINY_CONFIG, '{ck}', '--metrics-out', '{ck}']),
    ('convert_swin_checkpoint', ['{ck}', '{ck}']),
    ('calibrate_budget', [TINY_ADAPTIVE, '{ck}', '--out', '{ck}']),
])
def test_a_tool_never_writes_over_its_input(tool, argv, ckpt, tmp_path,
                                            monkeypatch):
    """Point 4: output = input is refused even with --overwrite, and the
    input is intact."""
    merged = tmp_path / 'merged.pth'
    merged.write_bytes(open(ckpt, 'rb').read())
    other = tmp_path / 'other.pth'
    other.write_bytes(b'x')
    target = str(merged) if tool == 'mtlora' and argv[0] == 'merge' else \
        ckpt
    before = _digest(target)
    argv = [a.format(ck=ckpt, other=other, dir=tmp_path) for a in argv]
    with pytest.raises(ValueError, match='is the input'):
        _main(tool, argv + ['--overwrite'], monkeypatch)
    assert _digest(target) == before


def test_existing_outputs_need_overwrite(ckpt, tmp_path, monkeypatch):
    """Point 4: the table's default path next to the checkpoint, and any
    --out, are not replaced silently."""
    table = tmp_path / 'lookup_table.json'
    table.write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match='lookup_table.json exists'):
        _main('controllable', ['table', TINY_CONTROLLABLE, ckpt],
              monkeypatch)
    metrics = tmp_path / 'metrics.json'
    metrics.write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match='metrics.json exists'):
        _main('test', [TINY_CONFIG, ckpt, '--metrics-out', str(metrics)],
              monkeypatch)
    assert table.read_text() == metrics.read_text() == '{"mine": 1}'


def test_predictions_never_go_into_a_data_root(tiny_synthetic, ckpt,
                                               monkeypatch):
    """Point 1: --out DATA_ROOT would replace depth/<id>.npy, the ground
    truth."""
    depth = osp.join(tiny_synthetic, 'depth', 'val_00000.npy')
    before = _digest(depth)
    opts = [f'{k}.dataset.data_root={tiny_synthetic}'
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')]
    for out in (tiny_synthetic, osp.join(tiny_synthetic, 'preds')):
        with pytest.raises(ValueError, match=r'inside the data root .* of '
                           r'(train|val|test)_dataloader'):
            _main('test', [TINY_CONFIG, ckpt, '--out', out,
                           '--cfg-options', *opts], monkeypatch)
    assert _digest(depth) == before
    assert not osp.exists(osp.join(tiny_synthetic, 'preds'))


def test_batch_size_zero_is_named(capsys):
    """Point 11."""
    with pytest.raises(SystemExit):
        _tool('calibrate_budget').parse_args(
            ['c.py', 'ck.pth', '--out', 'o.pth', '--batch-size', '0'])
    assert "--batch-size: must be >= 1, got 0" in capsys.readouterr().err


def _save(path, iteration):
    torch.save(dict(state_dict=dict(w=torch.ones(1)),
                    meta=dict(iter=iteration)), path)


def test_finished_means_at_max_iters(tmp_path):
    """Point 3: mmengine writes last_checkpoint at the first checkpoint."""
    _save(tmp_path / 'iter_2.pth', 2)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    assert finished_checkpoint(str(tmp_path), 4) is None
    _save(tmp_path / 'iter_4.pth', 4)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert finished_checkpoint(str(tmp_path), 4) == (
        str(tmp_path / 'iter_4.pth'), 4)


def test_finished_in_a_moved_work_dir(tmp_path):
    """A work dir moved after its training (or trained through another
    path to it): last_checkpoint names a file that is gone, and the
    checkpoint of that name in the work dir is the finished one."""
    old = tmp_path / 'old'
    old.mkdir()
    _save(old / 'iter_4.pth', 4)
    (old / 'last_checkpoint').write_text(str(old / 'iter_4.pth'))
    new = tmp_path / 'new'
    old.rename(new)
    assert finished_checkpoint(str(new), 4) == (str(new / 'iter_4.pth'), 4)
    assert finished_checkpoint(str(new), 8) is None
    # Only the named file's name: another checkpoint there is not taken.
    (new / 'iter_4.pth').rename(new / 'iter_3.pth')
    assert finished_checkpoint(str(new), 4) is None


def test_resume_falls_back_to_the_newest_loadable_checkpoint(tmp_path):
    """Point 11: after a kill, an empty last_checkpoint (and a truncated
    newest checkpoint) must not stop --resume."""
    _save(tmp_path / 'iter_2.pth', 2)
    _save(tmp_path / 'iter_4.pth', 4)
    data = open(tmp_path / 'iter_4.pth', 'rb').read()
    (tmp_path / 'iter_6.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'last_checkpoint').write_text('')
    said = []
    assert resume_checkpoint(str(tmp_path), said.append) == str(
        tmp_path / 'iter_4.pth')
    assert 'last_checkpoint is empty: resuming from' in said[0]
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    assert resume_checkpoint(str(tmp_path), said.append) == str(
        tmp_path / 'iter_4.pth')
    assert 'iter_6.pth, which does not load' in said[1]
    assert resume_checkpoint(str(tmp_path / 'none'), said.append) is None


def test_one_training_per_work_dir(tmp_path):
    """Point 13: a live training's lock refuses a second one; a killed
    one's lock is replaced."""
    said = []
    with work_dir_lock(str(tmp_path), said.append) as lock:
        with pytest.raises(RuntimeError, match=r'in use by a running '
                           rf'training \(process {os.getpid()}'):
            with work_dir_lock(str(tmp_path), said.append):
                pass
        assert osp.isfile(lock)
    assert not osp.exists(lock)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    import socket
    (tmp_path / '.train.lock').write_text(
        f'{dead.pid} {socket.gethostname()}\n')
    with work_dir_lock(str(tmp_path), said.append):
        pass
    assert f'stale lock of process {dead.pid}' in said[0]


def test_train_tool_refuses_a_busy_work_dir(tiny_synthetic, tmp_path):
    """Point 13, through tools/train.py."""
    work = tmp_path / 'work'
    work.mkdir()
    holder = subprocess.Popen([sys.executable, '-c',
                               'import time; time.sleep(60)'])
    try:
        import socket
        (work / '.train.lock').write_text(
            f'{holder.pid} {socket.gethostname()}\n')
        proc = subprocess.run(
            [sys.executable, 'tools/train.py', TINY_CONFIG, '--work-dir',
             str(work)], cwd=ROOT, capture_output=True, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    finally:
        holder.kill()
    assert proc.returncode != 0
    assert f'in use by a running training (process {holder.pid}' in \
        proc.stderr
    assert not list(work.glob('*.pth'))


def test_a_failed_checkpoint_write_leaves_the_previous_one(tiny_synthetic,
                                                           tmp_path):
    """Point 13: with max_keep_ckpts=1 mmengine deleted the old checkpoint
    before writing the new one; a kill during the write left none."""
    cfg = Config.fromfile(TINY_CONFIG)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = tiny_synthetic
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 4
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.update(interval=2, max_keep_ckpts=1)
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    cfg.experiment_name = tmp_path.name
    runner = Runner.from_cfg(cfg)
    save = runner.save_checkpoint
    calls = []

    def killed_on_the_second(out_dir, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 2:
            # Half a file, then the process dies.
            with open(osp.join(out_dir, filename), 'wb') as f:
                f.write(b'PK\x03\x04 partial')
            raise KeyboardInterrupt
        return save(out_dir, filename, *args, **kwargs)

    runner.save_checkpoint = killed_on_the_second
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    last = open(tmp_path / 'last_checkpoint').read()
    assert last == str(tmp_path / 'iter_2.pth')
    assert load_checkpoint_file(last)['meta']['iter'] == 2
    assert not (tmp_path / 'iter_4.pth').exists()
    assert resume_checkpoint(str(tmp_path), print) == last


def test_resume_without_checkpoint_keeps_the_stage_load_from(
        tiny_synthetic, tmp_path):
    """--resume on a fresh work dir (the demo passes it to every
    unfinished run) must still load the previous stage's load_from."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(TINY_CONFIG)
    torch.manual_seed(5)
    model = MODELS.build(cfg.model)
    stage = tmp_path / 'stage.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), stage)
    work = tmp_path / 'work'
    opts = [f'{k}.dataset.data_root={tiny_synthetic}'
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')]
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', TINY_CONFIG, '--work-dir',
         str(work), '--resume', '--cfg-options', f'load_from={stage}',
         'train_cfg.max_iters=1', *opts], cwd=ROOT, capture_output=True,
        text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert f'training from the start (load_from: {stage})' in log
    assert f'Load checkpoint from {stage}' in log


def test_table_tool_names_a_task_the_split_cannot_evaluate(tmp_path):
    """Point 2: a held-out split with no annotated person gave
    human_parts/mIoU = NaN, written into the table, which then picked the
    narrowest encoder at every budget. Now the build fails naming the
    metric and the split file, and writes nothing."""
    from mmadamtl.apis import build_table, heldout_batches, init_model
    from mmadamtl.datasets import make_synthetic_dataset
    root = str(tmp_path / 'no_person')
    make_synthetic_dataset(root, num_train=2, num_val=1, size=64,
                           max_objects=0)
    model = init_model(TINY_CONTROLLABLE, cfg_options={
        'lookup_dataloader.dataset.data_root': root,
        'lookup_dataloader.dataset.indices': [0, 1]})
    dataset, batches = heldout_batches(model)
    with pytest.raises(ValueError, match=r"metrics\['human_parts'\].* "
                       r"\(human_parts/mIoU\) is nan \(measured on "
                       r"lookup_dataloader \(.*ImageSets/Context/train.txt, "
                       r"2 images\)\)"):
        build_table(model, dataset, batches)


@pytest.mark.parametrize('tool,argv,message', [
    ('deploy', ['c.py', 'ck.pth', '--out', 'o', '--verify', '-1'],
     'argument --verify: must be >= 0, got -1'),
    ('deploy', ['c.py', 'ck.pth', '--out', 'o', '--recalibrate-bn', '-2'],
     'argument --recalibrate-bn: must be >= 0, got -2'),
    ('deploy', ['c.py', 'ck.pth', '--out', 'o', '--recalibrate-bn', 'all'],
     "argument --recalibrate-bn: 'all' is not an integer"),
    ('test', ['c.py', 'ck.pth', '--recalibrate-bn', '-1'],
     'argument --recalibrate-bn: must be >= 0, got -1'),
    ('get_flops', ['c.py', '--num-images', '-1'],
     'argument --num-images: must be >= 0, got -1'),
    ('make_synthetic_dataset', ['out', '--max-objects', '-1'],
     'argument --max-objects: must be >= 0, got -1'),
    ('make_synthetic_dataset', ['out', '--size', '0'],
     'argument --size: must be >= 1, got 0'),
])
def test_counts_below_their_least_are_named(tool, argv, message, capsys,
                                            monkeypatch):
    """Counts refuse a value below their least (0 where 0 means off, else
    1) in every tool, with one message that names the value."""
    module = _tool(tool)
    monkeypatch.setattr(sys, 'argv', [f'{tool}.py'] + argv)
    with pytest.raises(SystemExit):
        module.parse_args(argv) if tool in ('deploy', 'get_flops') \
            else module.parse_args()
    assert message in capsys.readouterr().err
