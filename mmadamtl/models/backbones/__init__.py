from .swin_checkpoint import (check_checkpoint_matches,
                              check_pretrained_backbone, convert_official_swin)

__all__ = [
    'convert_official_swin', 'check_pretrained_backbone',
    'check_checkpoint_matches'
]
