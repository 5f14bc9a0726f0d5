from .controllable_encoder_decoder import (ControllableEncoderDecoder,
                                           SandwichDDP)
from .multi_task_encoder_decoder import MultiTaskEncoderDecoder

__all__ = ['MultiTaskEncoderDecoder', 'ControllableEncoderDecoder',
           'SandwichDDP']
