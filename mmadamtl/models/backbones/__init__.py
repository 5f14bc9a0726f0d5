from .adaptive_swin import AdaptiveStats, AdaptiveSwinTransformer
from .encoder import (NO_CONTROL, Control, EncoderStats, ForeignEncoder,
                      MultiTaskEncoder, as_encoder, complete_encoder_config)
from .swin_checkpoint import (check_checkpoint_matches,
                              check_pretrained_backbone,
                              convert_official_swin, convert_swin_checkpoint,
                              swin_checkpoint_format, timm_to_official_swin)
from .mtlora_swin import MTLoRASwinTransformer, check_lora_cfg
from .narrow_swin import NarrowSwinTransformer, narrow_swin_state
from .slimmable_swin import SlimmableSwinTransformer, SlimRunner
from .swin_encoder import SwinEncoder

__all__ = [
    'Control', 'NO_CONTROL', 'EncoderStats', 'MultiTaskEncoder',
    'ForeignEncoder', 'as_encoder', 'complete_encoder_config',
    'SwinEncoder', 'AdaptiveSwinTransformer', 'MTLoRASwinTransformer',
    'SlimmableSwinTransformer', 'SlimRunner', 'NarrowSwinTransformer',
    'narrow_swin_state',
    'check_lora_cfg', 'AdaptiveStats',
    'convert_official_swin', 'convert_swin_checkpoint',
    'swin_checkpoint_format', 'timm_to_official_swin',
    'check_pretrained_backbone', 'check_checkpoint_matches'
]
