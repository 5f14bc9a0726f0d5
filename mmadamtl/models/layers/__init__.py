from .block_runners import (BlendRunner, BlockRunner, FullRunner,
                            PolicyRunner, SkipRunner, attention_residual,
                            mlp_delta, mlp_on_tokens, scatter_images)
from .lora import LoRALinear

__all__ = [
    'BlockRunner', 'FullRunner', 'PolicyRunner', 'BlendRunner', 'SkipRunner',
    'attention_residual', 'mlp_delta', 'mlp_on_tokens', 'scatter_images',
    'LoRALinear'
]
