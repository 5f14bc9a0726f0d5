from .analysis import (alternate_timings, build_test_dataset, calibrate_policy,
                       init_model, load_batch, progress, random_batch,
                       run_tool, static_variant, stdout_to_stderr)

__all__ = [
    'init_model', 'static_variant', 'build_test_dataset', 'load_batch',
    'random_batch', 'calibrate_policy', 'alternate_timings', 'progress',
    'stdout_to_stderr', 'run_tool'
]
