from .decoders import AdaMTLDecoder, HRFusionDecoder
from .multi_task_head import AtWidth, MultiTaskHead
from .slimmable_decoder import SlimmableAdaMTLDecoder

__all__ = ['MultiTaskHead', 'AdaMTLDecoder', 'HRFusionDecoder',
           'SlimmableAdaMTLDecoder', 'AtWidth']
