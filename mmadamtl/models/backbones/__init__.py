from .adaptive_swin import AdaptiveStats, AdaptiveSwinTransformer
from .swin_checkpoint import (check_checkpoint_matches,
                              check_pretrained_backbone,
                              convert_official_swin, convert_swin_checkpoint,
                              swin_checkpoint_format, timm_to_official_swin)
from .mtlora_swin import MTLoRASwinTransformer, check_lora_cfg
from .slimmable_swin import SlimmableSwinTransformer, SlimRunner
from .swin_encoder import SwinEncoder

__all__ = [
    'SwinEncoder', 'AdaptiveSwinTransformer', 'MTLoRASwinTransformer',
    'SlimmableSwinTransformer', 'SlimRunner',
    'check_lora_cfg', 'AdaptiveStats',
    'convert_official_swin', 'convert_swin_checkpoint',
    'swin_checkpoint_format', 'timm_to_official_swin',
    'check_pretrained_backbone', 'check_checkpoint_matches'
]
