"""Convert an official Swin checkpoint (microsoft/Swin-Transformer, e.g.
swin_tiny_patch4_window7_224.pth) to the keys of mmseg's SwinTransformer.

    python tools/convert_swin_checkpoint.py SRC.pth DST.pth [--config CFG]

What changes: ``layers.i`` -> ``stages.i``; ``attn.*`` -> ``attn.w_msa.*``;
``mlp.fc1``/``mlp.fc2`` -> ``ffn.layers.0.0``/``ffn.layers.1``;
``patch_embed.proj`` -> ``patch_embed.projection``; the final ``norm`` ->
``norm3``; PatchMerging's reduction and norm are reordered from the
official 2x2 concatenation to ``nn.Unfold``'s order; the classifier
(``head.*``) is dropped. ``norm0``-``norm2`` (mmseg's per-stage output
norms) have no official counterpart and start from their initialisation.
With ``--config``, the result is checked against that config's backbone.
"""
import argparse
import os
import os.path as osp

import torch

from mmadamtl.models.backbones.swin_checkpoint import (
    check_pretrained_backbone, convert_official_swin, load_state_dict_file,
    looks_like_official_swin)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official Swin checkpoint (local file)')
    parser.add_argument('dst', help='where to save the converted weights')
    parser.add_argument(
        '--config', help='check the result against this config\'s backbone')
    return parser.parse_args()


def main():
    args = parse_args()
    state = load_state_dict_file(args.src)
    if not looks_like_official_swin(state):
        raise SystemExit(
            f'{args.src} does not look like an official Swin checkpoint '
            f'(no "layers.<i>.blocks.<j>" keys); nothing to convert')
    converted = convert_official_swin(state)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=converted), args.dst)
    print(f'converted {len(state)} -> {len(converted)} tensors: {args.dst}')
    if args.config:
        from mmengine.config import Config
        from mmseg.registry import MODELS

        import mmadamtl  # noqa: F401
        cfg = Config.fromfile(args.config)
        backbone_cfg = dict(cfg.model.backbone)
        backbone_cfg['init_cfg'] = dict(
            type='Pretrained', checkpoint=args.dst)
        check_pretrained_backbone(MODELS.build(backbone_cfg))
        print(f'checked: the weights fit the backbone of {args.config}')


if __name__ == '__main__':
    main()
