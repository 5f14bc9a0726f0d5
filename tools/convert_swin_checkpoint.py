"""Convert a Swin checkpoint to the keys of mmseg's SwinTransformer: the
official release (microsoft/Swin-Transformer, e.g.
swin_tiny_patch4_window7_224.pth) or a timm (>= 0.9) Swin state dict
(e.g. saved with ``torch.save(timm_model.state_dict(), ...)``); the format
is told by the keys, and any other layout is refused with the keys that
were not expected.

    python tools/convert_swin_checkpoint.py SRC.pth DST.pth [--config CFG]
        [--overwrite]

DST must differ from SRC, may exist only with ``--overwrite``, and is
written atomically.

timm's layout is first mapped to the official one (its patch merging moves
from the start of stage i to the end of stage i - 1, ``head.fc`` ->
``head``, its buffers ``relative_position_index``/``attn_mask`` are
dropped), then converted as the official one.

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

from mmadamtl.models.backbones.swin_checkpoint import (
    check_pretrained_backbone, convert_swin_checkpoint, load_state_dict_file)
from mmadamtl.utils.safe_io import check_output, save_torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official or timm Swin checkpoint '
                        '(local file)')
    parser.add_argument('dst', help='where to save the converted weights')
    parser.add_argument(
        '--config', help='check the result against this config\'s backbone')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing DST')
    return parser.parse_args()


def main():
    args = parse_args()
    check_output(args.dst, [args.src], args.overwrite)
    state = load_state_dict_file(args.src)
    try:
        fmt, converted = convert_swin_checkpoint(state)
    except ValueError as e:
        raise SystemExit(f'{args.src}: {e}')
    save_torch(dict(state_dict=converted), args.dst, inputs=[args.src],
               overwrite=args.overwrite)
    print(f'converted {len(state)} -> {len(converted)} tensors ({fmt} '
          f'layout): {args.dst}')
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
