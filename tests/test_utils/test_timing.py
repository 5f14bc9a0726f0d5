"""utils.timing: what a timing names as its device, and alternated timing
with paired per-round ratios (on a fake clock)."""
import os.path as osp
import re

import pytest
import torch

import mmadamtl.utils.timing as timing
from mmadamtl.apis.deploy import ort_alternated
from mmadamtl.utils.timing import device_name, paired_summary


def test_cpu_device_name_names_the_cpu_and_its_instruction_set():
    name = device_name('cpu')
    suffix = f' ({torch.backends.cpu.get_cpu_capability()})'
    assert name.endswith(suffix)
    model = name[:-len(suffix)]
    assert model
    text = ''
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            text = f.read()
    if not re.search(r'^model name\s*:', text, re.M):
        pytest.skip('no CPU model name in /proc/cpuinfo to compare with')
    assert f'model name\t: {model}\n' in text


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Input:
    def __init__(self, name):
        self.name = name


class _Session:
    """An ONNX Runtime stand-in: each run advances the fake clock by
    ``cost`` seconds per image of its batch and logs its name."""

    def __init__(self, clock, cost, log, name):
        self.clock, self.cost, self.log, self.name = clock, cost, log, name

    def get_inputs(self):
        return [_Input('image')]

    def run(self, outputs, feed):
        self.log.append(self.name)
        self.clock.now += self.cost * feed['image'].shape[0]


def test_ort_alternated_pairs_rounds_and_counts_images(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(timing.time, 'perf_counter', clock)
    log = []
    fast = _Session(clock, 0.01, log, 'fast')
    slow = _Session(clock, 0.04, log, 'slow')
    # Two calls a round, each a batch of 2 images.
    calls = [(torch.zeros(2, 3, 4, 4), ), (torch.zeros(2, 3, 4, 4), )]
    times = ort_alternated(dict(fast=(fast, calls), slow=(slow, calls)),
                           repeats=3, warmup=1)
    # 1 warm-up + 3 timed rounds, 2 calls of each session per round, the
    # order rotating at every call.
    assert log[:4] == ['fast', 'slow', 'slow', 'fast']
    assert len(log) == 4 * 2 * 2
    assert times['fast'] == pytest.approx([0.04] * 3)
    assert times['slow'] == pytest.approx([0.16] * 3)
    summary = paired_summary(times, 4, 'fast', 'slow')
    assert summary['fast'] == pytest.approx(10.0)  # ms per image
    assert summary['slow'] == pytest.approx(40.0)
    assert summary['ratio'] == pytest.approx(0.25)
    with pytest.raises(ValueError, match='same number of calls'):
        ort_alternated(dict(fast=(fast, calls), slow=(slow, calls[:1])), 1)


def test_paired_summary_takes_the_median_of_per_round_ratios():
    # Rounds the machine slowed differently: the median of the per-round
    # ratios is 0.5, the ratio of the medians (3 / 4) would be 0.75.
    times = dict(a=[1.0, 3.0, 5.0], b=[2.0, 6.0, 4.0])
    summary = paired_summary(times, 1, 'a', 'b')
    assert summary['ratio'] == pytest.approx(0.5)
    assert summary['spread'] == pytest.approx(dict(min=0.5, median=0.5,
                                                   max=1.25))
    assert summary['a'] == pytest.approx(3000.0)
