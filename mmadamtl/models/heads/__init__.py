from .decoders import AdaMTLDecoder, HRFusionDecoder
from .multi_task_head import MultiTaskHead

__all__ = ['MultiTaskHead', 'AdaMTLDecoder', 'HRFusionDecoder']
