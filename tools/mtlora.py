"""MTLoRA deployment: merged checkpoints and adapter-only files.

    # fold TA-LoRA into the frozen weights; writes OUT_DIR/merged.pth and
    # OUT_DIR/merged_config.py (loadable by tools/test.py as it is)
    python tools/mtlora.py merge CONFIG CHECKPOINT OUT_DIR

    # save only what fine-tuning trained (adapters, norms, patch
    # embedding, bias tables, reductions, decoders)
    python tools/mtlora.py extract CONFIG CHECKPOINT ADAPTERS.pth

    # a full checkpoint from a base (a Swin checkpoint in mmseg's keys or
    # a whole-model checkpoint) and an adapter file
    python tools/mtlora.py apply CONFIG BASE ADAPTERS.pth OUT.pth

Every file is read weights-only and written atomically; an output that
is an input of the command is refused, an existing one replaced only
with ``--overwrite``. ``merge`` checks the merged model's
outputs against the unmerged ones on a random batch and prints the
largest difference; ``extract`` prints the adapter file's size next to
the full checkpoint's.
"""
import argparse
import os.path as osp
import sys

import torch
from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmadamtl.apis import (init_model, load_adapters,  # noqa: E402
                           merge_lora_model, save_adapters)
from mmadamtl.models.backbones.swin_checkpoint import \
    load_state_dict_file  # noqa: E402
from mmadamtl.utils.safe_io import (check_output, save_torch,  # noqa: E402
                                    write_text)


def merge(args) -> dict:
    ckpt = osp.join(args.out_dir, 'merged.pth')
    cfg_path = osp.join(args.out_dir, 'merged_config.py')
    inputs = [args.config, args.checkpoint]
    for path in (ckpt, cfg_path):
        check_output(path, inputs, args.overwrite)
    model = init_model(args.config, args.checkpoint,
                       cfg_options=args.cfg_options)
    x = torch.rand(2, 3, *args.shape, generator=torch.Generator()
                   .manual_seed(0))
    with torch.no_grad():
        before = model(x, mode='tensor')
    cfg, layers = merge_lora_model(model)
    with torch.no_grad():
        after = model(x, mode='tensor')
    diff = max(float((before[t] - after[t]).abs().max()) for t in before)
    save_torch(dict(state_dict=model.state_dict(),
                    meta=dict(merged_from=str(args.checkpoint))), ckpt,
               inputs=inputs, overwrite=args.overwrite)
    cfg.load_from = None
    write_text(cfg_path, cfg.pretty_text, inputs=inputs,
               overwrite=args.overwrite)
    # The merged checkpoint loads strictly into the merged config.
    init_model(cfg_path, ckpt)
    return dict(merged_layers=layers, max_abs_diff=diff, checkpoint=ckpt,
                config=cfg_path)


def extract(args) -> dict:
    check_output(args.out, [args.config, args.checkpoint], args.overwrite)
    model = init_model(args.config, args.checkpoint,
                       cfg_options=args.cfg_options)
    count = save_adapters(model, args.out, base=args.checkpoint,
                          inputs=[args.config, args.checkpoint],
                          overwrite=args.overwrite)
    full, part = osp.getsize(args.checkpoint), osp.getsize(args.out)
    return dict(tensors=count, adapter_bytes=part, checkpoint_bytes=full,
                size_ratio=part / full, out=args.out)


def apply(args) -> dict:
    inputs = [args.config, args.base, args.adapters]
    check_output(args.out, inputs, args.overwrite)
    model = init_model(args.config, cfg_options=args.cfg_options)
    base = load_state_dict_file(args.base)
    if not any(k.startswith('backbone.') for k in base):
        base = {f'backbone.{k}': v for k, v in base.items()}
    expected = model.state_dict()
    frozen = [n for n, p in model.named_parameters()
              if not p.requires_grad]
    lacking = [n for n in frozen if n not in base]
    if lacking:
        raise ValueError(f'base {args.base} lacks frozen weights of the '
                         f'model, e.g. {lacking[:3]}')
    model.load_state_dict(
        {k: v for k, v in base.items() if k in expected}, strict=False)
    count = load_adapters(model, args.adapters)
    save_torch(dict(state_dict=model.state_dict(),
                    meta=dict(base=str(args.base),
                              adapters=str(args.adapters))), args.out,
               inputs=inputs, overwrite=args.overwrite)
    return dict(tensors=count, out=args.out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('merge', help='fold TA-LoRA into the weights')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out_dir')
    p.add_argument('--shape', type=int, nargs=2, default=(64, 64),
                   help='input size of the output check')
    p = sub.add_parser('extract', help='write the trained weights only')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out')
    p = sub.add_parser('apply', help='base + adapters -> checkpoint')
    p.add_argument('config')
    p.add_argument('base')
    p.add_argument('adapters')
    p.add_argument('out')
    for p in sub.choices.values():
        p.add_argument('--cfg-options', nargs='+', action=DictAction,
                       help='override config keys (key=value)')
        p.add_argument('--overwrite', action='store_true',
                       help='replace existing output files')
    args = parser.parse_args(argv)
    result = dict(merge=merge, extract=extract, apply=apply)[args.command](
        args)
    for k, v in result.items():
        print(f'{k}: {v}')
    return result


if __name__ == '__main__':
    main()
