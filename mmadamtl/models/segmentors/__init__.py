from .multi_task_encoder_decoder import MultiTaskEncoderDecoder

__all__ = ['MultiTaskEncoderDecoder']
