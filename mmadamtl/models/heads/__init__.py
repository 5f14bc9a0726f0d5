from .decoders import AdaMTLDecoder, HRFusionDecoder
from .multi_task_head import MultiTaskHead
from .slimmable_decoder import AtWidth, SlimmableAdaMTLDecoder

__all__ = ['MultiTaskHead', 'AdaMTLDecoder', 'HRFusionDecoder',
           'SlimmableAdaMTLDecoder', 'AtWidth']
