from .bn_recalibration import recalibrate_bn, train_batches
from .controllable import (build_table, config_metrics, heldout_batches,
                           lookup_table, main_metrics, measure_configs)
from .mtlora import (adapter_state, load_adapters, merge_lora_model,
                     save_adapters)
from .inference import (build_test_dataset, collate_batches, init_model,
                        load_batch, measurement_batches, random_batch,
                        static_counterpart, static_variant)

__all__ = [
    'init_model', 'static_variant', 'static_counterpart',
    'build_test_dataset', 'load_batch',
    'collate_batches', 'random_batch', 'merge_lora_model', 'adapter_state',
    'save_adapters', 'load_adapters', 'measure_configs', 'lookup_table',
    'config_metrics', 'main_metrics', 'heldout_batches', 'build_table',
    'measurement_batches', 'recalibrate_bn', 'train_batches'
]
