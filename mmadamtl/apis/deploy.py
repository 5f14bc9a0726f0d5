"""Deployment: a trained model at one control as a static graph.

- :func:`narrow_model`: a controllable model's sub-network as a
  physically narrow static model (``NarrowSwinTransformer`` and
  ``AdaMTLDecoder`` of the chosen widths), with its own config;
- :class:`TaskOutputs`: a model at a fixed :class:`Control` as a module
  ``images -> one raw map per task`` (what is exported);
- :func:`export_onnx` / :func:`verify_onnx`: ONNX export and ONNX Runtime
  parity and latency.

``tools/deploy.py`` is the command line; ``docs/deploy.md`` the guide.
"""
import copy
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmseg.registry import MODELS

from mmadamtl.models.backbones.encoder import Control
from mmadamtl.models.backbones.narrow_swin import narrow_swin_state
from mmadamtl.models.heads.slimmable_decoder import fill_narrow_decoder
from mmadamtl.utils.timing import synchronize

# The controllable model's settings a static model does not take.
_CONTROLLABLE_TEST = ('subnet', 'budget', 'preference', 'lookup_table',
                      'tasks')


class TaskOutputs(nn.Module):
    """``model`` at ``control`` as ``images (B, 3, H, W) -> tuple`` of the
    raw output of each of ``control.tasks`` (in that order) at the input's
    size: what the segmentor's ``predict`` post-processes, without the
    data preprocessor (the inputs are preprocessed images)."""

    def __init__(self, model: nn.Module, control: Control) -> None:
        super().__init__()
        self.model = model
        self.control = control
        self.tasks: Tuple[str, ...] = tuple(control.tasks)

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = self.model._decode(inputs, self.control)[0]
        return tuple(outs[task] for task in self.tasks)


def narrow_config(model: nn.Module, control: Control) -> Config:
    """The config of the physically narrow static model of ``model``'s (a
    ``ControllableEncoderDecoder``, built by ``init_model``, so with
    ``model.cfg``) sub-network ``control`` (``subnet``, ``decoders``,
    ``tasks``, e.g. from ``model.control(img_hw)``): a
    ``MultiTaskEncoderDecoder`` with a ``NarrowSwinTransformer`` of the
    sub-network's heads and MLP widths and an ``AdaMTLDecoder`` per
    running task at its width."""
    backbone = model.backbone
    config = backbone.check_config(control.subnet)
    widths = backbone.stage_widths(config)
    cfg = copy.deepcopy(model.cfg)
    cfg.pop('model_wrapper_cfg', None)
    cfg.load_from = None
    m = cfg.model
    m.type = 'MultiTaskEncoderDecoder'
    bb = m.backbone
    bb.type = 'NarrowSwinTransformer'
    for key in ('head_choices', 'mlp_ratio_choices', 'init_cfg',
                'pretrained'):
        bb.pop(key, None)
    bb.heads = [h for h, _ in widths]
    bb.mlp_hidden = [n for _, n in widths]
    head = m.decode_head
    decoder = dict(head.decoder)
    decoder.pop('widths', None)
    decoder.update(type='AdaMTLDecoder', project_inputs=True)
    head.decoder = decoder
    channels = {t: d.channels_at[d.width_index(control.decoders[t])]
                for t, d in model.decode_head.decoders.items()
                if t in control.tasks}
    head.tasks = {
        task: dict(head.tasks[task], decoder=dict(channels=channels[task]))
        for task in control.tasks
    }
    m.train_cfg = dict()
    m.test_cfg = {k: v for k, v in (m.get('test_cfg') or {}).items()
                  if k not in _CONTROLLABLE_TEST}
    cfg.narrow_of = dict(
        subnet=[list(c) for c in config],
        decoders={t: float(control.decoders[t]) for t in control.tasks})
    return cfg


@torch.no_grad()
def narrow_model(model: nn.Module, control: Control
                 ) -> Tuple[Config, nn.Module]:
    """:func:`narrow_config` and the model it builds, its weights cut
    from ``model`` at ``control`` (eval mode, on ``model``'s device): it
    computes what ``model`` computes at that sub-network."""
    cfg = narrow_config(model, control)
    narrow = MODELS.build(cfg.model)
    narrow.cfg = cfg
    device = next(model.parameters()).device
    narrow.to(device).eval()
    widths = model.backbone.stage_widths(
        model.backbone.check_config(control.subnet))
    narrow.backbone.load_state_dict(narrow_swin_state(model.backbone,
                                                      widths))
    for task in control.tasks:
        fill_narrow_decoder(narrow.decode_head.decoders[task],
                            model.decode_head.decoders[task],
                            control.decoders[task])
    narrow.data_preprocessor.load_state_dict(
        model.data_preprocessor.state_dict())
    return cfg, narrow


def export_onnx(module: TaskOutputs, example: torch.Tensor, path: str,
                exporter: str = 'dynamo', opset: Optional[int] = None
                ) -> List[str]:
    """Export ``module`` for inputs shaped like ``example`` (batch and
    size fixed) to ``path``: input ``image``, one output per task, named
    by task. ``exporter``: ``'dynamo'`` (``torch.export``) or
    ``'torchscript'`` (the tracing exporter; faster, but it bakes in any
    data-dependent branch, so keep it to static models)."""
    if exporter not in ('dynamo', 'torchscript'):
        raise ValueError(f'exporter must be \'dynamo\' or \'torchscript\', '
                         f'got {exporter!r}')
    names = list(module.tasks)
    kwargs = dict(input_names=['image'], output_names=names,
                  dynamo=exporter == 'dynamo')
    if opset is not None:
        kwargs['opset_version'] = opset
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, (example, ), path, **kwargs)
    return names


def ort_session(path: str, device: str = 'cpu', threads: int = 0):
    """An ONNX Runtime session of ``path`` on ``device`` (``cpu``, or
    ``cuda`` through the CUDA execution provider)."""
    import onnxruntime as ort
    providers = ['CPUExecutionProvider']
    if str(device).startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise RuntimeError(
                'ONNX Runtime has no CUDA execution provider here (install '
                'onnxruntime-gpu), so --device cuda cannot verify')
        providers.insert(0, 'CUDAExecutionProvider')
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options, providers=providers)


def _median_ms(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def verify_onnx(module: TaskOutputs, path: str, inputs: Sequence[torch.Tensor],
                device: str = 'cpu', repeats: int = 10,
                warmup: int = 2) -> dict:
    """Run ``path`` in ONNX Runtime and ``module`` in PyTorch on every
    input: the largest ``|ONNX Runtime - PyTorch|`` per task over them,
    and the median latency per image of each (``repeats`` timed runs of
    the first input after ``warmup``; 0 repeats: no timing)."""
    session = ort_session(path, device)
    name = session.get_inputs()[0].name
    diff = dict.fromkeys(module.tasks, 0.0)
    module.eval()
    with torch.no_grad():
        for x in inputs:
            ref = module(x.to(device))
            got = session.run(None, {name: x.cpu().numpy()})
            for task, r, g in zip(module.tasks, ref, got):
                if tuple(g.shape) != tuple(r.shape):
                    raise ValueError(f'ONNX output {task} has shape '
                                     f'{g.shape}, PyTorch {tuple(r.shape)}')
                diff[task] = max(diff[task], float(
                    np.abs(g - r.float().cpu().numpy()).max()))
        result = dict(max_abs_diff=diff, inputs=len(inputs))
        if repeats:
            x = inputs[0].to(device)
            feed = {name: inputs[0].cpu().numpy()}
            for _ in range(warmup):
                module(x)
                session.run(None, feed)
            per = x.shape[0]
            result['latency_ms'] = dict(
                pytorch=_median_ms(lambda: module(x), repeats, device) / per,
                onnxruntime=_median_ms(lambda: session.run(None, feed),
                                       repeats, 'cpu') / per,
                repeats=repeats, device=str(device))
    return result


def max_output_diff(a: TaskOutputs, b: TaskOutputs,
                    inputs: Sequence[torch.Tensor]) -> Dict[str, float]:
    """The largest ``|a - b|`` per task over ``inputs`` (two modules of the
    same tasks)."""
    if a.tasks != b.tasks:
        raise ValueError(f'different tasks: {a.tasks} and {b.tasks}')
    diff = dict.fromkeys(a.tasks, 0.0)
    with torch.no_grad():
        for x in inputs:
            for task, p, q in zip(a.tasks, a(x), b(x)):
                diff[task] = max(diff[task], float((p - q).abs().max()))
    return diff


def _check_request(model, budget, preference, subnet) -> str:
    """The method that exports the request, or a ValueError naming why it
    cannot be exported."""
    controls = model.encoder.controls
    if 'subnet' in controls:
        return 'controllable'
    if preference is not None or subnet is not None:
        raise ValueError(
            f'--preference/--subnet need a controllable model '
            f'(SlimmableSwinTransformer); {model.encoder.encoder_name()} '
            f'has no sub-networks')
    if budget is not None:
        if 'budget' in controls:
            raise ValueError(
                'AdaMTL at a budget cannot be exported yet: its block '
                'decisions are data-dependent (an adaptive graph with '
                'torch.cond and the budget as an input is planned); export '
                'it without --budget (every block) or export its static '
                'counterpart')
        raise ValueError(f'--budget needs AdaMTL (AdaptiveSwinTransformer '
                         f'with a policy) or a controllable model; '
                         f'{model.encoder.encoder_name()} always runs every '
                         f'block')
    return 'static'


def _gflops(model, x: torch.Tensor, runtime: dict) -> float:
    """GFLOPs per image of ``model``'s prediction of ``x`` (one image)
    under ``runtime`` (its ``runtime(...)`` settings): what its
    prediction's metainfo reports."""
    with torch.no_grad(), model.runtime(**runtime):
        return float(model.predict(x)[0].metainfo['gflops'])


def deploy(config: str, checkpoint: Optional[str], out_dir: str,
           shape: Sequence[int] = (512, 512),
           budget: Optional[float] = None,
           preference: Optional[Dict[str, float]] = None,
           subnet: Optional[dict] = None,
           tasks: Optional[Sequence[str]] = None,
           verify: int = 0, device: str = 'cpu',
           exporter: str = 'dynamo', repeats: int = 10,
           overwrite: bool = False, cfg_options: Optional[dict] = None
           ) -> dict:
    """Export ``config``/``checkpoint`` at one control to
    ``out_dir/model.onnx`` and describe it in ``out_dir/deploy.json``
    (see ``tools/deploy.py``). A controllable model's sub-network (from
    ``budget``/``preference`` through its search, or ``subnet``) is first
    made a physically narrow static model (``narrow_config.py`` and
    ``narrow.pth`` in ``out_dir``, checked against the slimmable model);
    an MTLoRA model is merged first. Returns what ``deploy.json``
    holds."""
    import os.path as osp
    import onnxruntime

    from mmadamtl.apis.inference import init_model
    from mmadamtl.apis.mtlora import merge_lora_model
    from mmadamtl.models.backbones.mtlora_swin import MTLoRASwinTransformer
    from mmadamtl.models.utils import counted_flops
    from mmadamtl.utils.safe_io import (atomic_write, check_output,
                                        save_torch, write_json, write_text)

    shape = (int(shape[0]), int(shape[1]))
    files = {k: osp.join(out_dir, name) for k, name in (
        ('onnx', 'model.onnx'), ('json', 'deploy.json'),
        ('narrow_config', 'narrow_config.py'), ('narrow', 'narrow.pth'))}
    inputs = [config, checkpoint]
    model = init_model(config, checkpoint, cfg_options=cfg_options,
                       device=device)
    method = _check_request(model, budget, preference, subnet)
    for key in ('onnx', 'json') + (('narrow_config', 'narrow')
                                   if method == 'controllable' else ()):
        check_output(files[key], inputs, overwrite)
    runtime = {}
    if budget is not None:
        runtime['budget'] = budget
    if preference is not None:
        runtime['preference'] = preference
    if subnet is not None:
        runtime['subnet'] = subnet
    if tasks is not None:
        runtime['tasks'] = list(tasks)
    x0 = torch.zeros(1, 3, *shape, device=device)
    report = dict(config=str(config), checkpoint=checkpoint,
                  shape=list(shape), exporter=exporter, method=method,
                  torch=torch.__version__,
                  onnxruntime=onnxruntime.__version__,
                  control=dict(budget=budget, preference=preference,
                               subnet=subnet, tasks=tasks))
    gen = torch.Generator().manual_seed(0)
    checks = [torch.randn(1, 3, *shape, generator=gen).to(device)
              for _ in range(max(verify, 1))]
    with model.runtime(**runtime):
        control = model.control(shape)
    if isinstance(model.backbone, MTLoRASwinTransformer) and \
            not model.backbone.lora_cfg.get('merged'):
        before = TaskOutputs(model, control)
        ref = [tuple(o.clone() for o in before(x)) for x in checks[:1]]
        _, layers = merge_lora_model(model)
        after = TaskOutputs(model, control)
        with torch.no_grad():
            got = after(checks[0])
        report['mtlora_merged'] = dict(
            layers=layers,
            max_abs_diff=max(float((a - b).abs().max())
                             for a, b in zip(ref[0], got)))
    report['tasks'] = list(control.tasks)
    report['gflops'] = _gflops(model, x0, runtime)
    if method == 'controllable':
        cfg, narrow = narrow_model(model, control)
        deployed = TaskOutputs(narrow, narrow.control(shape))
        full = sum(p.numel() for p in model.parameters())
        own = sum(p.numel() for p in narrow.parameters())
        report['narrow'] = dict(
            config=files['narrow_config'], checkpoint=files['narrow'],
            subnet=cfg.narrow_of,
            max_abs_diff=max_output_diff(TaskOutputs(model, control),
                                         deployed, checks),
            gflops=_gflops(narrow, x0, {}),
            counted_gflops=counted_flops(narrow, x0) / 1e9,
            closed_form_gflops=model.subnet_flops(
                shape, control.subnet, dict(control.decoders)) / 1e9,
            max_gflops=model.max_flops(shape) / 1e9,
            params=own, params_share=own / full)
        write_text(files['narrow_config'], cfg.pretty_text, inputs=inputs,
                   overwrite=overwrite)
        # Plain dicts only: the weights-only reader refuses a ConfigDict.
        save_torch(dict(state_dict=narrow.state_dict(),
                        meta=dict(narrow_of=str(checkpoint),
                                  **cfg.narrow_of.to_dict())),
                   files['narrow'], inputs=inputs, overwrite=overwrite)
    else:
        deployed = TaskOutputs(model, control)
    with atomic_write(files['onnx'], inputs=inputs,
                      overwrite=overwrite) as tmp:
        export_onnx(deployed, checks[0], tmp, exporter)
    report['onnx'] = files['onnx']
    if verify:
        report['verify'] = verify_onnx(deployed, files['onnx'], checks,
                                       device, repeats)
    write_json(files['json'], report, inputs=inputs, overwrite=overwrite)
    return report
