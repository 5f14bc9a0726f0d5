"""Crafted checkpoints cannot run code in a process that imported
mmadamtl; real mmengine checkpoints still load."""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader
from torch._tensor import _rebuild_from_type_v2

import mmadamtl  # noqa: F401  (what every config's custom_imports does)
from mmadamtl.utils import load_checkpoint_file
from mmadamtl.utils.safe_checkpoint import (HISTORY_BUFFER_ATTRIBUTES,
                                            checkpoint_safe_globals)


class _Reduce:
    """Pickles as ``fn(*args)`` (what a crafted file contains)."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _eval_payload(start, marker: str):
    """The reviewer's chain: ``getattr`` from ``start`` to
    ``__builtins__.get``, ``_rebuild_from_type_v2`` to call it for
    ``eval``, and again to eval a string that creates ``marker``."""
    init = _Reduce(getattr, start, '__init__')
    builtins = _Reduce(getattr, init, '__builtins__')
    get = _Reduce(getattr, builtins, 'get')
    fn_type = _Reduce(getattr, get, '__class__')
    evaluate = _Reduce(_rebuild_from_type_v2, get, fn_type, ('eval', ), {})
    code = f'open({marker!r}, "w").write("pwned")'
    return _Reduce(_rebuild_from_type_v2, evaluate, fn_type, (code, ), {})


def _save(tmp_path, payload, name='crafted.pth'):
    path = str(tmp_path / name)
    torch.save(dict(state_dict={'w': torch.zeros(1)}, meta=payload), path)
    return path


def test_payload_is_real_without_the_restriction(tmp_path):
    """Control: with the unrestricted getattr the file runs its code, so
    the refusals below are refusals of a working exploit."""
    marker = str(tmp_path / 'ran')
    path = _save(tmp_path, _eval_payload(HistoryBuffer, marker))
    with torch.serialization.safe_globals([HistoryBuffer, getattr]):
        with pytest.raises(Exception):
            torch.load(path, weights_only=True)
    assert osp.isfile(marker)


@pytest.mark.parametrize('loader', ['torch.load', 'mmadamtl', 'mmengine'])
def test_crafted_checkpoint_is_refused(tmp_path, loader):
    marker = str(tmp_path / 'ran')
    path = _save(tmp_path, _eval_payload(HistoryBuffer, marker))
    with pytest.raises(pickle.UnpicklingError) as e:
        if loader == 'torch.load':
            # Importing mmadamtl widened nothing process-wide.
            torch.load(path)
        elif loader == 'mmadamtl':
            load_checkpoint_file(path)
        else:  # what the Runner, load_from and Pretrained init call
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not osp.exists(marker)
    if loader != 'torch.load':
        assert path in str(e.value)
        assert "refused getattr(<HistoryBuffer>, '__init__')" in str(e.value)
    # The process-wide allow-list is still torch's own.
    assert not any(g is getattr or g is HistoryBuffer
                   for g in torch.serialization.get_safe_globals())


def _numpy_reconstruct():
    return [g for g in checkpoint_safe_globals()
            if isinstance(g, tuple) and g[1].endswith('_reconstruct')][0][0]


def _numpy_scalar():
    return [g for g in checkpoint_safe_globals()
            if isinstance(g, tuple) and g[1].endswith('.scalar')][0][0]


def _variants(marker):
    """Payloads through each callable the loader allows."""
    code = f'open({marker!r}, "w").write("pwned")'
    stat = _Reduce(getattr, HistoryBuffer, 'min')
    rebuild = _Reduce(_rebuild_from_type_v2, stat, torch.Tensor,
                      (code, ), {})
    return {
        # An allowed attribute, then onwards to its globals.
        'getattr of an allowed method':
        _Reduce(getattr, stat, '__globals__'),
        'getattr of HistoryBuffer.__class__':
        _Reduce(getattr, HistoryBuffer, '__class__'),
        'getattr on another object': _eval_payload(np.ndarray, marker),
        # An allowed callable called with hostile arguments.
        'HistoryBuffer.min called on a string': rebuild,
        'numpy _reconstruct of a foreign type':
        _Reduce(_numpy_reconstruct(), HistoryBuffer, (0, ), b'b'),
        'numpy scalar of an object dtype':
        _Reduce(_numpy_scalar(), np.dtype(object), code),
        'HistoryBuffer called with code':
        _Reduce(_rebuild_from_type_v2, HistoryBuffer, torch.Tensor,
                ([code], ), {}),
    }


@pytest.mark.parametrize('name', list(_variants('m')))
def test_variants_through_allowed_callables_run_no_code(tmp_path, name):
    marker = str(tmp_path / 'ran')
    path = _save(tmp_path, _variants(marker)[name])
    try:
        loaded = load_checkpoint_file(path)
    except (pickle.UnpicklingError, ValueError) as e:
        assert path in str(e)
    else:
        # Loading may succeed (a scalar holding the string, say): it must
        # hold data only, never the result of running the string.
        assert not callable(loaded['meta'])
    assert not osp.exists(marker)


def test_allowed_getattr_is_exactly_history_buffer_statistics(tmp_path):
    for attr in HISTORY_BUFFER_ATTRIBUTES:
        path = _save(tmp_path, _Reduce(getattr, HistoryBuffer, attr), attr)
        assert load_checkpoint_file(path)['meta'] is getattr(
            HistoryBuffer, attr)


def test_message_hub_and_numpy_round_trip(tmp_path):
    """What an mmengine checkpoint holds besides tensors."""
    hub = MessageHub.get_instance('safe_checkpoint_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float32(0.25))
    hub.update_info('iter', 3)
    state = dict(
        state_dict={'w': torch.arange(3.)},
        message_hub=hub.state_dict(),
        meta=dict(arrays=[np.arange(4, dtype=np.int64),
                          np.ones((2, 2), np.float16)],
                  scalar=np.float64(1.5), flag=np.bool_(True)))
    path = str(tmp_path / 'real.pth')
    torch.save(state, path)
    loaded = load_checkpoint_file(path)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(0.375)
    assert buf.current() == pytest.approx(0.25)
    np.testing.assert_array_equal(loaded['meta']['arrays'][0], np.arange(4))
    assert loaded['meta']['arrays'][1].dtype == np.float16
    assert loaded['meta']['scalar'] == 1.5
    # Through mmengine, as the Runner loads it.
    again = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert torch.equal(again['state_dict']['w'], state['state_dict']['w'])


def test_unreadable_checkpoint_names_the_file(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict={'w': torch.zeros(100)}), good)
    data = open(good, 'rb').read()
    for name, content in (('truncated.pth', data[:len(data) // 2]),
                          ('garbage.pth', b'not a checkpoint')):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match='is unreadable') as e:
            load_checkpoint_file(str(path))
        assert str(path) in str(e.value)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))
