"""How often one adaptive forward makes the host wait for the device.

    python tools/count_syncs.py CONFIG [--checkpoint F] --budget B
        [--batch-size N] [--shape H W] [--device cpu|cuda] [--calibrate]
        [--json]

On noise images of ``--shape`` (default: the config's crop size), after a
warm-up pass, counts for one adaptive encoder forward and one whole
``predict`` (all tasks):

- ``host_reads`` (encoder): the reads of device values on the host that
  ``mmadamtl.utils.host_sync.SyncCounter`` sees (data-dependent operators
  such as ``nonzero`` or ``.item()``, boolean masks,
  ``.tolist()``/``.cpu()``); on any device, so a CPU run shows what a GPU
  would wait for. (Not for ``predict``: it reads figures that are host
  tensors already, which the counter cannot tell from device ones.)
- on CUDA, ``cuda_syncs``: the synchronisations CUDA itself reports
  (``torch.cuda.set_sync_debug_mode``), the ground truth, for both.

The bound ``SkipRunner`` keeps (and ``tests`` hold it to) is one read per
stage, one per block that some image plans to run, and one after the
forward: at most ``stages + blocks + 1``.
"""
import argparse
import contextlib
import copy
import os.path as osp
import sys
import warnings
from collections import Counter

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import init_model, random_batch  # noqa: E402
from mmadamtl.models.policies import calibrate_policy  # noqa: E402
from mmadamtl.utils.cli import positive_int, run_tool  # noqa: E402
from mmadamtl.utils.host_sync import SyncCounter  # noqa: E402
from mmadamtl.utils.timing import device_name  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Host-device synchronisations of an adaptive forward')
    parser.add_argument('config')
    parser.add_argument('--checkpoint')
    parser.add_argument('--budget', type=float, required=True)
    parser.add_argument('--batch-size', type=positive_int, default=1)
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--calibrate', action='store_true',
                        help='calibrate an untrained policy to the budget')
    parser.add_argument('--json', action='store_true')
    return parser.parse_args(argv)


@contextlib.contextmanager
def cuda_syncs(device: str):
    """A list that fills with CUDA's reports of synchronising calls."""
    found = []
    if device != 'cuda':
        yield None
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('warn')
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode('default')
    # (Leaving the debug mode reports itself from torch/cuda: not ours.)
    found.extend(f'{osp.relpath(w.filename, ROOT)}:{w.lineno}'
                 for w in caught if 'synchroniz' in str(w.message)
                 and f'torch{osp.sep}cuda' not in w.filename)


def count(fn, device, reads=True):
    counter = SyncCounter() if reads else contextlib.nullcontext()
    with cuda_syncs(device) as cuda, counter:
        fn()
    out = {}
    if reads:
        out.update(host_reads=counter.count, by_name=dict(counter.by_name))
    if cuda is not None:
        # Where each synchronisation was called from (file:line).
        out.update(cuda_syncs=len(cuda), cuda_sync_sites=dict(Counter(cuda)))
    return out


def measure(args):
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: no CUDA device is available')
    model = init_model(args.config, args.checkpoint, device=args.device)
    if not model.adaptive:
        raise ValueError(f'{args.config} has no adaptive backbone')
    model.set_budget(args.budget)
    shape = args.shape or list(model.cfg.get('crop_size', (512, 512)))
    batch = random_batch(model, args.batch_size, shape, seed=0,
                         device=args.device)
    if args.calibrate:
        calibrate_policy(model, batch['inputs'][:2], args.budget)
    backbone = model.backbone
    # What predict hands the encoder (budget_mode 'target' inverts the
    # policy's budget curve once, in the warm-up below).
    control = model.control()
    ran = {}

    def encoder():
        ran['stats'] = backbone.encode(batch['inputs'], control)[1]

    def predict():
        model.predict(batch['inputs'], copy.deepcopy(batch['data_samples']))

    with torch.no_grad():
        predict()  # warm-up
        result = dict(encoder=count(encoder, args.device),
                      model=count(predict, args.device, reads=False))
    stats = ran['stats']
    stages = len(backbone.stages)
    blocks = int(stats.blocks.shape[1])
    executed = int((stats.blocks.sum(0) > 0).sum())
    return dict(
        config=args.config, checkpoint=args.checkpoint, budget=args.budget,
        batch_size=args.batch_size, shape=shape, device=args.device,
        torch=torch.__version__,
        device_name=device_name(args.device),
        stages=stages, blocks=blocks, executed_blocks=executed,
        bound=stages + blocks + 1, **result)


def render(r) -> str:
    lines = [
        f"{r['config']} at {r['shape'][0]}x{r['shape'][1]}, batch "
        f"{r['batch_size']}, budget {r['budget']:g}, {r['device']} "
        f"({r['device_name']}), torch {r['torch']}",
        f"{r['stages']} stages, {r['blocks']} blocks ({r['executed_blocks']}"
        f" run by some image); bound stages + blocks + 1 = {r['bound']}",
        '',
        '| forward | host reads (SyncCounter) | CUDA-reported syncs |',
        '| --- | --- | --- |']
    for key in ('encoder', 'model'):
        c = r[key]
        lines.append(f"| {key} | {c.get('host_reads', '-')} | "
                     f"{c.get('cuda_syncs', '-')} |")
    return '\n'.join(lines)


def main(argv=None):
    run_tool(argv, parse_args, measure, render)


if __name__ == '__main__':
    main()
