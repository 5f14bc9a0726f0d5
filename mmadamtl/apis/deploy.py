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
import os.path as osp
import statistics
import tempfile
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmseg.registry import MODELS

from mmadamtl.models.backbones.encoder import Control
from mmadamtl.models.backbones.narrow_swin import narrow_swin_state
from mmadamtl.models.heads.slimmable_decoder import fill_narrow_decoder
from mmadamtl.models.layers import CondRunner
from mmadamtl.models.utils.budget import check_budget
from mmadamtl.utils.timing import (alternate_timings, device_name,
                                   paired_summary, synchronize)

# The controllable model's settings a static model does not take.
_CONTROLLABLE_TEST = ('subnet', 'budget', 'preference', 'lookup_table',
                      'tasks')


class TaskOutputs(nn.Module):
    """``model`` at ``control`` as ``images (B, 3, H, W) -> tuple`` of the
    raw output of each of ``control.tasks`` (in that order) at the input's
    size: what the segmentor's ``predict`` post-processes, without the
    data preprocessor (the inputs are preprocessed images).

    With ``budget_input`` (AdaMTL) the module takes the budget as a second
    input, a (B,) tensor read as ``control.budget_mode`` reads a budget,
    and runs the decisions in the graph (``Control.graph``): one export
    serves every budget."""

    def __init__(self, model: nn.Module, control: Control,
                 budget_input: bool = False) -> None:
        super().__init__()
        self.model = model
        # Exported as one graph: never the compiled captured mode.
        self.control = control.replace(captured=False)
        self.tasks: Tuple[str, ...] = tuple(control.tasks)
        self.budget_input = budget_input

    def forward(self, inputs: torch.Tensor, *budget: torch.Tensor
                ) -> Tuple[torch.Tensor, ...]:
        control = self.control
        if self.budget_input:
            if len(budget) != 1:
                raise TypeError('TaskOutputs(budget_input=True) takes the '
                                'images and a (B,) budget tensor')
            control = control.replace(budget=budget[0], graph=True)
        elif budget:
            raise TypeError('TaskOutputs takes the images only (built '
                            'without budget_input)')
        outs = self.model._decode(inputs, control)[0]
        return tuple(outs[task] for task in self.tasks)

    def example(self, images: torch.Tensor, budget: Optional[float] = None
                ) -> tuple:
        """The module's inputs for ``images`` (and ``budget`` with a budget
        input)."""
        if not self.budget_input:
            return (images, )
        return (images, images.new_full((images.shape[0], ), budget))

    def input_names(self) -> List[str]:
        return ['image', 'budget'] if self.budget_input else ['image']


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
    for key in ('head_choices', 'mlp_ratio_choices', 'reorder_importance',
                'init_cfg', 'pretrained'):
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


def check_exporter(exporter: str, budget_input: bool) -> None:
    """Refuse an unknown exporter, and the tracing one for a graph with a
    budget input, naming why."""
    if exporter not in ('dynamo', 'torchscript'):
        raise ValueError(f'exporter must be \'dynamo\' or \'torchscript\', '
                         f'got {exporter!r}')
    if budget_input and exporter != 'dynamo':
        raise ValueError(
            'AdaMTL at a budget exports with the dynamo exporter only: the '
            'tracing exporter would bake in the decisions of the example '
            'input')


def export_onnx(module: TaskOutputs, example: tuple, path: str,
                exporter: str = 'dynamo', opset: Optional[int] = None
                ) -> List[str]:
    """Export ``module`` for inputs shaped like ``example``
    (``module.example(...)``; batch and size fixed) to ``path``: input
    ``image`` (and ``budget``), one output per task, named by task.
    ``exporter``: ``'dynamo'`` (``torch.export``) or ``'torchscript'``
    (the tracing exporter; faster, but it bakes in any data-dependent
    branch, so it is refused for a module with a budget input)."""
    check_exporter(exporter, module.budget_input)
    names = list(module.tasks)
    kwargs = dict(input_names=module.input_names(), output_names=names,
                  dynamo=exporter == 'dynamo')
    if opset is not None:
        kwargs['opset_version'] = opset
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, tuple(example), path, **kwargs)
    return names


def ort_session(path: str, device: str = 'cpu', threads: int = 0,
                spin: bool = False):
    """An ONNX Runtime session of ``path`` on ``device`` (``cpu``, or
    ``cuda`` through the CUDA execution provider).

    ``spin``: whether its worker threads spin-wait for work between runs
    (ONNX Runtime's default). Off here: the verification runs a session
    beside PyTorch and other sessions in one process, and a pool that
    spins after its run takes the cores from whatever runs next (on 2
    cores it slowed the next session's run by up to ~40%); a process
    that serves one session may turn it on."""
    import onnxruntime as ort
    providers = ['CPUExecutionProvider']
    options = ort.SessionOptions()
    options.add_session_config_entry('session.intra_op.allow_spinning',
                                     '1' if spin else '0')
    if not str(device).startswith('cuda'):
        # Not its warnings about initialisers the graph's branches leave
        # unused (on CUDA they would hide nodes falling back to the CPU).
        options.log_severity_level = 3
    if str(device).startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise RuntimeError(
                'ONNX Runtime has no CUDA execution provider here (install '
                'onnxruntime-gpu), so --device cuda cannot verify')
        providers.insert(0, 'CUDAExecutionProvider')
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


def _feed(session, args: tuple) -> dict:
    return {i.name: a.cpu().numpy()
            for i, a in zip(session.get_inputs(), args)}


def _update_diff(diff: dict, module: TaskOutputs, ref, got) -> None:
    """Raise ``diff[task]`` to ``|got - ref|``'s largest value per task
    (ONNX Runtime's outputs ``got``, PyTorch's ``ref``)."""
    for task, r, g in zip(module.tasks, ref, got):
        if tuple(g.shape) != tuple(r.shape):
            raise ValueError(f'ONNX output {task} has shape {g.shape}, '
                             f'PyTorch {tuple(r.shape)}')
        diff[task] = max(diff[task], float(
            np.abs(g - r.float().cpu().numpy()).max()))


def verify_onnx(module: TaskOutputs, path: str, inputs: Sequence[torch.Tensor],
                device: str = 'cpu', repeats: int = 10,
                warmup: int = 2) -> dict:
    """Run ``path`` in ONNX Runtime and ``module`` in PyTorch on every
    input: the largest ``|ONNX Runtime - PyTorch|`` per task over them,
    and the median latency per image of each (``repeats`` timed runs of
    the first input after ``warmup``; 0 repeats: no timing). A module
    with a budget input: see :func:`verify_adaptive_onnx`."""
    session = ort_session(path, device)
    diff = dict.fromkeys(module.tasks, 0.0)
    module.eval()
    with torch.no_grad():
        for x in inputs:
            ref = module(x.to(device))
            got = session.run(None, _feed(session, (x, )))
            _update_diff(diff, module, ref, got)
        result = dict(max_abs_diff=diff, inputs=len(inputs))
        if repeats:
            x = inputs[0]
            ort_ms = _mean_median_ms(
                [(lambda f=_feed(session, (x, )): session.run(None, f),
                  x.shape[0])], 'cpu', repeats, warmup)
            torch_ms = _eager_ms(module, inputs[:1], device, repeats,
                                 warmup)
            result['latency_ms'] = dict(
                pytorch=torch_ms, onnxruntime=ort_ms, repeats=repeats,
                device=str(device))
    return result


def verify_adaptive_onnx(model: nn.Module, control: Control, path: str,
                         inputs: Sequence[torch.Tensor],
                         budgets: Sequence[float], device: str = 'cpu',
                         repeats: int = 10, warmup: int = 2,
                         static_path: Optional[str] = None) -> dict:
    """AdaMTL's exported graph (budget input) against the eager model
    (``SkipRunner``) at each of ``budgets`` on every input: the largest
    ``|ONNX Runtime - PyTorch|`` per task over all, the executed share of
    the blocks' compute and GFLOPs per image (what the decisions ran),
    and with ``repeats`` the latency per image at each budget: of eager
    PyTorch (the mean over the inputs of each input's median), and of
    ONNX Runtime, every budget's graph timed alternately with the others
    over all inputs (:func:`ort_alternated`; the work follows each
    image's decisions). With ``static_path`` (the same model exported
    without a budget: every block) the static graph runs in the same
    rounds: its latency and GFLOPs, and per budget the median over rounds
    of the latency ratio against it (with its spread) over the GFLOPs
    ratio."""
    graph = TaskOutputs(model, control, budget_input=True)
    session = ort_session(path, device)
    diff = dict.fromkeys(graph.tasks, 0.0)
    rows = {}
    model.eval()
    with torch.no_grad():
        for b in budgets:
            eager = TaskOutputs(model, control.replace(budget=float(b)))
            fractions, gflops = [], []
            for x in inputs:
                x = x.to(device)
                got = session.run(None, _feed(session, graph.example(x, b)))
                _update_diff(diff, graph, eager(x), got)
                with model.runtime(budget=float(b),
                                   budget_mode=control.budget_mode,
                                   tasks=list(control.tasks)):
                    meta = model.predict(x)[0].metainfo
                fractions.append(meta['policy']['block_fraction'])
                gflops.append(meta['gflops'])
            row = dict(block_fraction=fractions,
                       gflops=float(np.mean(gflops)))
            if repeats:
                row['pytorch_ms'] = _eager_ms(eager, inputs, device,
                                              repeats, warmup)
            rows[str(b)] = row
        result = dict(max_abs_diff=diff, inputs=len(inputs),
                      budgets=rows, budget_mode=control.budget_mode)
        if not repeats:
            return result
        runs = {b: (session, [graph.example(x.to(device), float(b))
                              for x in inputs]) for b in rows}
        if static_path is not None:
            runs['static'] = (ort_session(static_path, device),
                              [(x, ) for x in inputs])
        times = ort_alternated(runs, repeats, warmup)
        images = sum(x.shape[0] for x in inputs)
        for b, row in rows.items():
            row['onnxruntime_ms'] = \
                1e3 * float(np.median(times[b])) / images
        if static_path is not None:
            with model.runtime(budget=None, tasks=list(control.tasks)):
                static_gflops = float(
                    model.predict(inputs[0].to(device))[0].metainfo['gflops'])
            result['static'] = dict(
                onnxruntime_ms=1e3 * float(np.median(times['static'])) /
                images, gflops=static_gflops)
            for b, row in rows.items():
                paired = paired_summary(times, images, b, 'static')
                row['latency_ratio'] = paired['ratio']
                row['latency_ratio_spread'] = paired['spread']
                row['gflops_ratio'] = row['gflops'] / static_gflops
                row['latency_over_gflops'] = \
                    row['latency_ratio'] / row['gflops_ratio']
        result['latency'] = dict(repeats=repeats, device=str(device),
                                 alternated=True)
    return result


def ort_alternated(runs: Dict[str, tuple], repeats: int, warmup: int = 2
                   ) -> Dict[str, List[float]]:
    """Seconds per round of each named ONNX Runtime run: ``runs[name] =
    (session, [inputs of one call, ...])`` (one tuple of tensors per
    call, in the session's input order); a round makes every call of
    every run, the runs alternately (:func:`alternate_timings`), so that
    drifts of the machine hit them all alike."""
    feeds = {name: [_feed(session, args) for args in calls]
             for name, (session, calls) in runs.items()}
    steps = {len(f) for f in feeds.values()}
    if len(steps) != 1:
        raise ValueError(f'every run needs the same number of calls, got '
                         f'{ {n: len(f) for n, f in feeds.items()} }')
    fns = {name: (lambda step, s=runs[name][0], f=feeds[name]:
                  s.run(None, f[step])) for name in runs}
    return alternate_timings(fns, repeats, warmup, steps.pop(),
                             desc='ONNX Runtime')


def verify_share(model: nn.Module, shape: Sequence[int], path: str,
                 inputs: Sequence[torch.Tensor], exporter: str,
                 device: str = 'cpu', repeats: int = 10,
                 warmup: int = 2) -> dict:
    """The narrow model exported at ``path`` (from the controllable
    ``model``) against ``model``'s widest sub-network (every head and MLP
    neuron, decoders at 1.0, the same tasks) made a narrow model and
    exported the same way, both timed alternately in ONNX Runtime on
    ``inputs``: the widest's latency per image and GFLOPs, and the median
    over rounds of the latency share (narrow / widest) with its spread.
    The widest keeps the slimmable model's BatchNorm statistics (a
    ``--recalibrate-bn`` of the narrow one changes values, not time)."""
    session = ort_session(path, device)
    tasks = [o.name for o in session.get_outputs()]
    # No budget or preference of the config's test_cfg: the widest itself,
    # not a search.
    with model.runtime(budget=None, preference=None,
                       subnet=dict(encoder='max'), tasks=tasks):
        widest_control = model.control(tuple(shape))
    _, widest = narrow_model(model, widest_control)
    module = TaskOutputs(widest, widest.control(tuple(shape)))
    with tempfile.TemporaryDirectory() as tmp:
        ref = osp.join(tmp, 'widest.onnx')
        export_onnx(module, (inputs[0], ), ref, exporter)
        calls = [(x, ) for x in inputs]
        times = ort_alternated(
            dict(narrow=(session, calls),
                 widest=(ort_session(ref, device), calls)), repeats, warmup)
    images = sum(x.shape[0] for x in inputs)
    paired = paired_summary(times, images, 'narrow', 'widest')
    x0 = torch.zeros(1, 3, *shape, device=inputs[0].device)
    return dict(onnxruntime_ms=paired['widest'],
                narrow_onnxruntime_ms=paired['narrow'],
                gflops=_gflops(widest, x0, {}),
                latency_share=paired['ratio'],
                latency_share_spread=paired['spread'],
                repeats=repeats, device=str(device), alternated=True)


def _mean_median_ms(calls, device: str, repeats: int,
                    warmup: int) -> float:
    """Mean over ``calls`` (``(fn, images)`` pairs) of each ``fn``'s
    median latency in ms per image, after ``warmup`` untimed calls."""
    ms = []
    for fn, images in calls:
        for _ in range(warmup):
            fn()
        ms.append(_median_ms(fn, repeats, device) / images)
    return float(np.mean(ms))


def _eager_ms(eager: nn.Module, inputs, device, repeats: int,
              warmup: int) -> float:
    """Mean over ``inputs`` of each one's median latency (ms per image)
    of ``eager``."""
    with torch.no_grad():
        return _mean_median_ms(
            [(lambda x=x.to(device): eager(x), x.shape[0]) for x in inputs],
            device, repeats, warmup)


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
            return 'adamtl'
        raise ValueError(f'--budget needs AdaMTL (AdaptiveSwinTransformer '
                         f'with a policy) or a controllable model; '
                         f'{model.encoder.encoder_name()} always runs every '
                         f'block')
    return 'static'


def _calibrate(model, inputs: Sequence[torch.Tensor], budget: float
               ) -> dict:
    """Make an untrained policy follow ``budget`` (``calibrate_policy``)
    and measure its budget curve on ``inputs`` (``calibrate_budget``), so
    that ``budget_mode='target'`` maps requests to inputs: for timing the
    adaptive graph on random weights."""
    from mmadamtl.models.policies import calibrate_budget, calibrate_policy
    batch = torch.cat(list(inputs))
    with torch.no_grad():
        found = calibrate_policy(model, batch, budget)
        curve = calibrate_budget(model.backbone, [batch],
                                 tasks=model.active_tasks)
    return dict(found, curve=[float(c) for c in curve])


def _gflops(model, x: torch.Tensor, runtime: dict) -> float:
    """GFLOPs per image of ``model``'s prediction of ``x`` (one image)
    under ``runtime`` (its ``runtime(...)`` settings): what its
    prediction's metainfo reports, eager (a captured mode would compile
    graphs just for this count, and count its padding)."""
    with torch.no_grad(), model.runtime(**{**runtime, 'captured': False}):
        return float(model.predict(x)[0].metainfo['gflops'])


def _recalibrate_narrow(cfg: Config, narrow: nn.Module, num_images: int,
                        slimmable: TaskOutputs, deployed: TaskOutputs,
                        checks: Sequence[torch.Tensor]) -> dict:
    """Load into ``narrow`` its BatchNorm statistics re-estimated on
    ``num_images`` training images of ``cfg``; what ``deploy.json`` says
    of it (with the largest change of the outputs on ``checks``)."""
    from mmadamtl.apis.bn_recalibration import recalibrate_bn, train_batches
    batches = train_batches(cfg, num_images)
    stats = recalibrate_bn(narrow, batches)
    narrow.load_state_dict(stats, strict=False)
    return dict(images=num_images, batches=len(batches),
                layers=sum(k.endswith('.running_mean') for k in stats),
                max_abs_change=max_output_diff(slimmable, deployed, checks))


def deploy(config: str, checkpoint: Optional[str], out_dir: str,
           shape: Sequence[int] = (512, 512),
           budget: Optional[float] = None,
           preference: Optional[Dict[str, float]] = None,
           subnet: Optional[dict] = None,
           tasks: Optional[Sequence[str]] = None,
           verify: int = 0, device: str = 'cpu',
           exporter: str = 'dynamo', repeats: int = 10,
           overwrite: bool = False, cfg_options: Optional[dict] = None,
           budgets: Optional[Sequence[float]] = None,
           calibrate: bool = False, recalibrate_bn: int = 0) -> dict:
    """Export ``config``/``checkpoint`` at one control to
    ``out_dir/model.onnx`` and describe it in ``out_dir/deploy.json``
    (see ``tools/deploy.py``). A controllable model's sub-network (from
    ``budget``/``preference`` through its search, or ``subnet``) is first
    made a physically narrow static model (``narrow_config.py`` and
    ``narrow.pth`` in ``out_dir``, checked against the slimmable model);
    an MTLoRA model is merged first. AdaMTL at a ``budget`` is exported
    as an adaptive graph whose second input is the budget (read in the
    config's ``budget_mode``; ``budget`` is the example's); ``verify``
    compares it with the eager model at each of ``budgets`` (default:
    ``budget``) and times it against the same model exported without a
    budget (every block). ``calibrate`` (an untrained policy, for timing
    on random weights) makes the policy follow ``budget`` and measures
    its budget curve on the verification inputs first.
    ``recalibrate_bn`` (a controllable model; 0: off) re-estimates the
    narrow model's BatchNorm statistics on that many images of the
    config's training set at its sub-network
    (:func:`~mmadamtl.apis.bn_recalibration.recalibrate_bn`); the
    slimmable model is not changed. Returns what ``deploy.json``
    holds."""
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
    if budgets is not None and method != 'adamtl':
        raise ValueError('--budgets is for AdaMTL at a --budget (the budgets '
                         'its adaptive graph is verified and timed at)')
    for b in budgets or ():
        check_budget(b, where='--budgets')
    if calibrate and method != 'adamtl':
        raise ValueError('--calibrate is for AdaMTL at a --budget (an '
                         'untrained policy made to follow it)')
    if recalibrate_bn < 0 or (recalibrate_bn and method != 'controllable'):
        raise ValueError(f'--recalibrate-bn N (N >= 0, got '
                         f'{recalibrate_bn}) is for a controllable model\'s '
                         f'narrow export')
    check_exporter(exporter, method == 'adamtl')
    runtime = {}
    if budget is not None:
        runtime['budget'] = budget
    elif 'budget' in model.encoder.controls:
        # AdaMTL without a budget: every block, whatever test_cfg says.
        runtime['budget'] = None
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
                  device_name=device_name(device),
                  control=dict(budget=budget, preference=preference,
                               subnet=subnet, tasks=tasks))
    gen = torch.Generator().manual_seed(0)
    checks = [torch.randn(1, 3, *shape, generator=gen).to(device)
              for _ in range(max(verify, 1))]
    with model.runtime(**runtime):
        control = model.control(shape)
        if method == 'adamtl':
            # Refused before any work, naming why.
            CondRunner.check_cap(control.budget if control.budget_mode ==
                                 'cap' else control.cap)
            if calibrate:
                # For the tasks exported (a per-task policy's union).
                report['calibration'] = _calibrate(model, checks, budget)
            curve = model.backbone.policy.budget_curve
            report['budget_curve_measured'] = \
                not bool(torch.isnan(curve).any())
            if control.budget_mode == 'target' and \
                    not report['budget_curve_measured']:
                warnings.warn(
                    "budget_mode='target' without a measured budget curve: "
                    'the exported graph feeds its budget input to the '
                    'policy as is (calibrate the checkpoint with '
                    'tools/calibrate_budget.py first)')
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
        slimmable = TaskOutputs(model, control)
        # The cut itself, before any recalibration.
        cut_diff = max_output_diff(slimmable, deployed, checks)
        recalibrated = None if not recalibrate_bn else _recalibrate_narrow(
            model.cfg, narrow, recalibrate_bn, slimmable, deployed, checks)
        report['narrow'] = dict(
            config=files['narrow_config'], checkpoint=files['narrow'],
            subnet=cfg.narrow_of,
            max_abs_diff=cut_diff,
            gflops=_gflops(narrow, x0, {}),
            counted_gflops=counted_flops(narrow, x0) / 1e9,
            closed_form_gflops=model.subnet_flops(
                shape, control.subnet, dict(control.decoders)) / 1e9,
            max_gflops=model.max_flops(shape) / 1e9,
            params=own, params_share=own / full)
        if recalibrated is not None:
            report['narrow']['recalibrated_bn'] = recalibrated
        write_text(files['narrow_config'], cfg.pretty_text, inputs=inputs,
                   overwrite=overwrite)
        # Plain dicts only: the weights-only reader refuses a ConfigDict.
        save_torch(dict(state_dict=narrow.state_dict(),
                        meta=dict(narrow_of=str(checkpoint),
                                  recalibrated_bn=recalibrate_bn,
                                  **cfg.narrow_of.to_dict())),
                   files['narrow'], inputs=inputs, overwrite=overwrite)
    else:
        deployed = TaskOutputs(model, control,
                               budget_input=method == 'adamtl')
    with atomic_write(files['onnx'], inputs=inputs,
                      overwrite=overwrite) as tmp:
        export_onnx(deployed, deployed.example(checks[0], budget), tmp,
                    exporter)
    report['onnx'] = files['onnx']
    if verify and method == 'adamtl':
        report['budget_mode'] = control.budget_mode
        with tempfile.TemporaryDirectory() as tmp:
            static_path = None
            if repeats:
                # The reference: the same model exported without a
                # budget (every block, no policy).
                static_path = osp.join(tmp, 'static.onnx')
                export_onnx(TaskOutputs(model, control.replace(budget=None)),
                            (checks[0], ), static_path, exporter)
            report['verify'] = verify_adaptive_onnx(
                model, control, files['onnx'], checks,
                budgets or [budget], device, repeats,
                static_path=static_path)
    elif verify:
        report['verify'] = verify_onnx(deployed, files['onnx'], checks,
                                       device, repeats)
        if method == 'controllable' and repeats:
            # The latency share against the widest sub-network, exported
            # and timed the same way in the same rounds.
            report['verify']['widest'] = verify_share(
                model, shape, files['onnx'], checks, exporter, device,
                repeats)
    write_json(files['json'], report, inputs=inputs, overwrite=overwrite)
    return report
