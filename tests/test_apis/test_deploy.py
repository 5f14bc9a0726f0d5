"""mmadamtl.apis.deploy and tools/deploy.py: narrow sub-networks as static
models, ONNX export and ONNX Runtime parity."""
import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest
import torch

from mmadamtl.apis import init_model
from mmadamtl.apis.deploy import (TaskOutputs, deploy, max_output_diff,
                                  narrow_model, ort_session)
from mmadamtl.models.backbones import NarrowSwinTransformer
from mmadamtl.models.layers.slimmable import head_dim
from mmadamtl.models.utils import counted_flops
from tests.conftest import ROOT
from tests.test_models.test_segmentors.test_controllable_encoder_decoder \
    import _model as _controllable_model

CONFIGS = osp.join(ROOT, 'tests', 'configs')
TINY_STATIC = osp.join(CONFIGS, 'tiny_static_swin_synthetic.py')
TINY_ADAMTL = osp.join(CONFIGS, 'tiny_adamtl_swin_synthetic.py')
TINY_MTLORA = osp.join(CONFIGS, 'tiny_mtlora_swin_synthetic.py')
TINY_CONTROLLABLE = osp.join(CONFIGS, 'tiny_controllable_swin_synthetic.py')


def _perturbed(model, seed=0):
    """``model`` with every weight moved off its initialisation and
    BatchNorm statistics of its own per width, so that a wrong slice or
    a wrong switchable norm shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if 'running_' in name:
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _inputs(n=2, seed=1, shape=(64, 64)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, *shape, generator=g) for _ in range(n)]


@pytest.fixture(scope='module')
def controllable():
    torch.manual_seed(0)
    return _perturbed(init_model(TINY_CONTROLLABLE))


def _mixed_subnet(model):
    """Different widths per stage and per decoder, one task off."""
    heads, ratios = model.backbone.head_choices, \
        model.backbone.mlp_ratio_choices
    stages = len(model.backbone.stages)
    encoder = [dict(heads=heads[s % len(heads)],
                    mlp_ratio=ratios[(s + 1) % len(ratios)])
               for s in range(stages)]
    return dict(encoder=encoder,
                decoders=dict(semseg=model.widths[0], edge=0.0))


def test_narrow_model_computes_the_subnetwork_at_its_own_size(controllable):
    model = controllable
    with model.runtime(subnet=_mixed_subnet(model)):
        control = model.control((64, 64))
    cfg, narrow = narrow_model(model, control)
    assert isinstance(narrow.backbone, NarrowSwinTransformer)
    assert tuple(narrow.tasks) == control.tasks and 'edge' not in \
        narrow.tasks
    # The weights are physically narrow: each block's layers have the
    # sub-network's widths.
    widths = model.backbone.stage_widths(
        model.backbone.check_config(control.subnet))
    for stage, full, (heads, hidden) in zip(narrow.backbone.stages,
                                            model.backbone.stages, widths):
        w_msa = stage.blocks[0].attn.w_msa
        assert w_msa.num_heads == heads
        # Fewer heads of the same head dimension.
        d = head_dim(full.blocks[0].attn.w_msa)
        assert w_msa.qkv.weight.shape == (3 * heads * d,
                                          w_msa.qkv.in_features)
        assert w_msa.proj.in_features == heads * d
        assert w_msa.relative_position_bias_table.shape[1] == heads
        assert stage.blocks[0].ffn.layers[0][0].out_features == hidden
    semseg = narrow.decode_head.decoders['semseg']
    assert semseg.cls.in_channels == \
        model.decode_head.decoders['semseg'].channels_at[0]
    own = sum(p.numel() for p in narrow.parameters())
    assert own < sum(p.numel() for p in model.parameters())
    # Its outputs are the slimmable model's at that sub-network.
    xs = _inputs()
    diff = max_output_diff(TaskOutputs(model, control),
                           TaskOutputs(narrow, narrow.control((64, 64))), xs)
    assert set(diff) == set(control.tasks)
    assert max(diff.values()) <= 1e-5
    # mmengine's counter on the narrow model (every one of its heads)
    # equals the sub-network's closed-form cost.
    counted = counted_flops(narrow, torch.zeros(1, 3, 64, 64))
    closed = model.subnet_flops((64, 64), control.subnet,
                                dict(control.decoders))
    assert counted == pytest.approx(closed, rel=1e-9)
    assert closed < model.max_flops((64, 64))
    # Its config and weights rebuild it.
    again = init_model(cfg, state_dict=narrow.state_dict())
    diff = max_output_diff(TaskOutputs(narrow, narrow.control()),
                           TaskOutputs(again, again.control()), xs[:1])
    assert max(diff.values()) == 0


def test_narrow_swin_refuses_widths_it_does_not_have():
    base = dict(embed_dims=16, depths=(1, 1), num_heads=(2, 4),
                strides=(4, 2), out_indices=(0, 1), window_size=4)
    with pytest.raises(ValueError, match=r'heads\[1\].*\[1, 4\].*5'):
        NarrowSwinTransformer(**base, heads=[1, 5], mlp_hidden=[8, 8])
    with pytest.raises(ValueError, match=r'mlp_hidden\[0\].*0'):
        NarrowSwinTransformer(**base, heads=[1, 1], mlp_hidden=[0, 8])
    with pytest.raises(ValueError, match='one entry per stage'):
        NarrowSwinTransformer(**base, heads=[1], mlp_hidden=[8, 8])


def test_deploy_static_model_onnx_parity_and_files(tmp_path):
    torch.manual_seed(0)
    model = _perturbed(init_model(TINY_STATIC))
    ckpt = str(tmp_path / 'static.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'deployed')
    report = deploy(TINY_STATIC, ckpt, out, (64, 64), verify=2,
                    exporter='torchscript', repeats=1)
    assert report['method'] == 'static'
    assert report['tasks'] == list(model.tasks)
    # The timings name the CPU and the instruction set they ran with.
    assert report['device_name'].endswith(
        f'({torch.backends.cpu.get_cpu_capability()})')
    diff = report['verify']['max_abs_diff']
    assert set(diff) == set(model.tasks)
    assert max(diff.values()) <= 1e-4
    with open(osp.join(out, 'deploy.json')) as f:
        assert json.load(f) == json.loads(json.dumps(report))
    # The ONNX outputs are named by task.
    import onnx
    graph = onnx.load(osp.join(out, 'model.onnx')).graph
    assert [o.name for o in graph.output] == list(model.tasks)
    assert [i.name for i in graph.input] == ['image']
    # Nothing is overwritten unless asked.
    before = os.path.getmtime(osp.join(out, 'model.onnx'))
    with pytest.raises(FileExistsError, match='model.onnx'):
        deploy(TINY_STATIC, ckpt, out, (64, 64), exporter='torchscript')
    assert os.path.getmtime(osp.join(out, 'model.onnx')) == before


def test_deploy_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(ValueError, match="budget_mode='cap' cannot run as "
                       'a graph'):
        deploy(TINY_ADAMTL, None, str(tmp_path / 'a'), (64, 64),
               budget=0.5,
               cfg_options={'model.test_cfg.budget_mode': 'cap'})
    with pytest.raises(ValueError, match='dynamo exporter only'):
        deploy(TINY_ADAMTL, None, str(tmp_path / 'a'), (64, 64),
               budget=0.5, exporter='torchscript')
    with pytest.raises(ValueError, match='--calibrate is for AdaMTL'):
        deploy(TINY_STATIC, None, str(tmp_path / 'a'), (64, 64),
               calibrate=True)
    with pytest.raises(ValueError, match='need a controllable model'):
        deploy(TINY_STATIC, None, str(tmp_path / 'b'), (64, 64),
               preference=dict(semseg=1.0))
    with pytest.raises(ValueError, match='SwinEncoder always runs every'):
        deploy(TINY_STATIC, None, str(tmp_path / 'c'), (64, 64),
               budget=0.5)
    assert not os.listdir(tmp_path)


def test_deploy_adamtl_as_an_adaptive_graph(tmp_path):
    """One export, the budget an input: ONNX Runtime equals eager PyTorch
    (host-side skipping) at budgets whose decisions differ, and the graph
    decides with If nodes and gathers tokens by the decisions. A per-task
    policy on a subset of its tasks (the union of their decisions)."""
    out = str(tmp_path / 'adamtl')
    torch.manual_seed(0)
    report = deploy(TINY_ADAMTL, None, out, (64, 64), budget=0.5,
                    budgets=[0.25, 0.75], calibrate=True, verify=2,
                    repeats=2, tasks=['semseg', 'depth'],
                    cfg_options={'model.backbone.policy.task_mode':
                                 'per_task',
                                 # 5 blocks, one shifted: a shorter export
                                 'model.backbone.depths': [2, 1, 1, 1]})
    assert report['tasks'] == ['semseg', 'depth']
    assert report['method'] == 'adamtl'
    verify = report['verify']
    assert verify['budget_mode'] == 'target'
    assert max(verify['max_abs_diff'].values()) <= 1e-4
    low, high = (verify['budgets'][b]['block_fraction']
                 for b in ('0.25', '0.75'))
    # The decisions differ with the budget input: the calibrated policy
    # runs about the requested shares.
    assert max(low) < min(high)
    assert abs(sum(low) / 2 - 0.25) < 0.15 and \
        abs(sum(high) / 2 - 0.75) < 0.15
    assert verify['budgets']['0.25']['gflops'] < \
        verify['budgets']['0.75']['gflops']
    import onnx
    graph = onnx.load(osp.join(out, 'model.onnx')).graph
    assert [i.name for i in graph.input] == ['image', 'budget']

    def op_types(g):
        for n in g.node:
            yield n.op_type
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from op_types(a.g)

    ops = set(op_types(graph))
    # Block decisions as If nodes; inside, the MLP rows found by NonZero,
    # gathered and scattered back.
    assert {'If', 'NonZero', 'Gather', 'ScatterND'} <= ops
    assert sum(n.op_type == 'If' for n in graph.node) >= 5  # 5 blocks
    curve = report['calibration']['curve']
    assert curve == sorted(curve) and curve[0] < 0.25 < 0.75 < curve[-1]
    # Timed against the same model's static graph in the same rounds:
    # each budget's ratios from its GFLOPs and the static graph's.
    static = verify['static']
    assert verify['latency']['alternated']
    for row in verify['budgets'].values():
        assert row['gflops'] < static['gflops']
        assert row['gflops_ratio'] == pytest.approx(
            row['gflops'] / static['gflops'])
        spread = row['latency_ratio_spread']
        assert 0 < spread['min'] <= row['latency_ratio'] <= spread['max']
        assert row['latency_over_gflops'] == pytest.approx(
            row['latency_ratio'] / row['gflops_ratio'])
        assert row['onnxruntime_ms'] > 0 and row['pytorch_ms'] > 0


def test_deploy_adamtl_without_budget_runs_every_block(tmp_path):
    """Without --budget the AdaMTL model exports as its static graph,
    whatever budget its test_cfg sets (the tracing exporter would bake in
    decisions; parity on two inputs shows there are none)."""
    report = deploy(TINY_ADAMTL, None, str(tmp_path / 'static'), (64, 64),
                    verify=2, exporter='torchscript', repeats=0,
                    cfg_options={'model.test_cfg.budget': 0.3})
    assert report['method'] == 'static'
    assert max(report['verify']['max_abs_diff'].values()) <= 1e-4
    with pytest.raises(ValueError, match='--budgets is for AdaMTL'):
        deploy(TINY_ADAMTL, None, str(tmp_path / 'b'), (64, 64),
               budgets=[0.5])


def test_deploy_mtlora_merges_then_exports(tmp_path):
    torch.manual_seed(0)
    model = _perturbed(init_model(TINY_MTLORA))
    ckpt = str(tmp_path / 'mtlora.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    report = deploy(TINY_MTLORA, ckpt, str(tmp_path / 'out'), (64, 64),
                    tasks=['semseg', 'depth'], verify=1,
                    exporter='torchscript', repeats=1)
    assert report['tasks'] == ['semseg', 'depth']
    merged = report['mtlora_merged']
    assert merged['layers'] > 0 and merged['max_abs_diff'] <= 1e-4
    assert max(report['verify']['max_abs_diff'].values()) <= 1e-4


def test_deploy_tool_narrow_model_runs_in_mmseg_test_tool(tiny_synthetic,
                                                          tmp_path):
    """tools/deploy.py on a controllable model's sub-network: the narrow
    config and checkpoint it writes run in mmseg's own test tool."""
    import mmseg
    out = str(tmp_path / 'narrow')
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    subnet = json.dumps(dict(encoder='min', decoders=dict(semseg=0.5)))
    proc = subprocess.run(
        [sys.executable, 'tools/deploy.py', TINY_CONTROLLABLE, '--out', out,
         '--shape', '64', '64', '--subnet', subnet, '--verify', '1',
         '--repeats', '1', '--exporter', 'torchscript', '--json'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    narrow = report['narrow']
    assert max(narrow['max_abs_diff'].values()) <= 1e-5
    assert narrow['counted_gflops'] == pytest.approx(
        narrow['closed_form_gflops'], rel=1e-9)
    assert narrow['gflops'] == pytest.approx(report['gflops'], rel=1e-9)
    assert narrow['gflops'] < narrow['max_gflops']
    assert max(report['verify']['max_abs_diff'].values()) <= 1e-4
    # Timed against the widest sub-network (every task here), exported
    # the same way, in the same rounds.
    widest = report['verify']['widest']
    assert widest['gflops'] == pytest.approx(narrow['max_gflops'], rel=1e-9)
    spread = widest['latency_share_spread']
    assert 0 < spread['min'] <= widest['latency_share'] <= spread['max']
    text = runpy.run_path(osp.join(ROOT, 'tools', 'deploy.py'))['render'](
        report)
    assert f"latency share {widest['latency_share']:.3f}" in text
    opts = [f'{k}.dataset.data_root={tiny_synthetic}'
            for k in ('train_dataloader', 'val_dataloader',
                      'test_dataloader')]
    tools = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')
    proc = subprocess.run(
        [sys.executable, osp.join(tools, 'test.py'),
         osp.join(out, 'narrow_config.py'), osp.join(out, 'narrow.pth'),
         '--work-dir', str(tmp_path / 'work'), '--cfg-options', *opts],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'semseg/mIoU' in proc.stdout + proc.stderr


def test_ort_session_spin_waiting_is_off_unless_asked(tmp_path):
    """Sessions timed beside PyTorch and other sessions do not spin-wait
    between runs (a spinning pool takes the cores from the next run)."""
    path = str(tmp_path / 'linear.onnx')
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4), ), path,
                      dynamo=False)
    key = 'session.intra_op.allow_spinning'
    for kwargs, want in (({}, '0'), (dict(spin=True), '1')):
        options = ort_session(path, **kwargs).get_session_options()
        assert options.get_session_config_entry(key) == want


def test_deploy_gflops_count_runs_eager_under_captured():
    """``tools/deploy.py``'s GFLOPs count predicts eager even when the
    config sets ``test_cfg.captured`` (no compiled heads for a count),
    and gives the eager prediction's GFLOPs."""
    from mmadamtl.apis.deploy import _gflops
    model = _controllable_model(captured=True)

    def refuse(*args):
        raise AssertionError('the compiled heads ran')
    model._compiled_heads = refuse
    x = torch.randn(1, 3, 64, 64)
    got = _gflops(model, x, {})
    with torch.no_grad(), model.runtime(captured=False):
        want = model.predict(x)[0].metainfo['gflops']
    assert got == want
    assert model.captured is True  # restored
