from .block_runners import (BlendRunner, BlockRunner, FullRunner,
                            PolicyRunner, SkipRunner, attention_residual,
                            mlp_delta, mlp_on_tokens, scatter_images)
from .lora import LoRALinear
from .slimmable import (SlimConvNorm, qkv_rows, run_slim_block, slim_attention,
                        slim_mlp_delta, slim_window_msa)
from .swin_windows import tokens_to_windows, windows_to_tokens

__all__ = [
    'BlockRunner', 'FullRunner', 'PolicyRunner', 'BlendRunner', 'SkipRunner',
    'attention_residual', 'mlp_delta', 'mlp_on_tokens', 'scatter_images',
    'LoRALinear', 'SlimConvNorm', 'qkv_rows', 'run_slim_block',
    'slim_attention', 'slim_mlp_delta', 'slim_window_msa',
    'tokens_to_windows', 'windows_to_tokens'
]
