from .inference import (build_test_dataset, init_model, load_batch,
                        random_batch, static_variant)

__all__ = [
    'init_model', 'static_variant', 'build_test_dataset', 'load_batch',
    'random_batch'
]
