from .adamtl_runners import (BlendRunner, CondRunner, PolicyRunner,
                             SkipRunner, index_tensor, mlp_on_rows,
                             scatter_images, to_host, to_host_tensor)
from .block_runner import (BlockRunner, FullRunner, attention_residual,
                           mlp_delta)
from .importance import (head_importance, neuron_importance, permute_heads,
                         permute_neurons, reorder_by_importance)
from .mtlora_runner import MTLoRARunner
from .lora import LoRALinear
from .slimmable import (SlimConvNorm, SlimRunner, qkv_rows, run_slim_block,
                        slim_attention, slim_mlp_delta, slim_window_msa)
from .swin_windows import (partition_tokens, shift_mask, tokens_to_windows,
                           windows_to_tokens)

__all__ = [
    'BlockRunner', 'FullRunner', 'PolicyRunner', 'BlendRunner', 'SkipRunner',
    'CondRunner', 'MTLoRARunner', 'SlimRunner',
    'attention_residual', 'index_tensor', 'mlp_delta', 'mlp_on_rows',
    'scatter_images', 'to_host', 'to_host_tensor',
    'LoRALinear', 'SlimConvNorm', 'qkv_rows', 'run_slim_block',
    'slim_attention', 'slim_mlp_delta', 'slim_window_msa',
    'partition_tokens', 'shift_mask', 'tokens_to_windows', 'windows_to_tokens',
    'head_importance', 'neuron_importance', 'permute_heads',
    'permute_neurons', 'reorder_by_importance'
]
