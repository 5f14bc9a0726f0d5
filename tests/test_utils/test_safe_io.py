"""The one writer: atomic, never over an input, never over an existing file
unless asked; standard JSON only."""
import json
import os

import pytest
import torch

from mmadamtl.utils.safe_io import (atomic_write, check_output, inside,
                                    save_torch, write_json, write_text)


def test_refuses_an_input_of_the_command_also_through_a_link(tmp_path):
    src = tmp_path / 'ck.pth'
    src.write_bytes(b'weights')
    link = tmp_path / 'link.pth'
    os.symlink(src, link)
    for out in (src, link, tmp_path / '.' / 'ck.pth'):
        with pytest.raises(ValueError, match='is the input'):
            write_text(str(out), 'x', inputs=[str(src)], overwrite=True)
    assert src.read_bytes() == b'weights'


def test_refuses_an_existing_file_unless_overwrite(tmp_path):
    out = tmp_path / 'table.json'
    out.write_text('mine')
    with pytest.raises(FileExistsError, match=r'table.json exists.*--over'):
        write_text(str(out), 'new')
    assert out.read_text() == 'mine'
    write_text(str(out), 'new', overwrite=True)
    assert out.read_text() == 'new'
    with pytest.raises(ValueError, match='is a directory'):
        check_output(str(tmp_path), overwrite=True)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    out = tmp_path / 'ck.pth'
    save_torch(dict(w=torch.ones(3)), str(out))
    # torch.save fails half-way (an object it cannot pickle after the
    # tensors), as a full disk or a kill would.
    with pytest.raises(Exception):
        save_torch(dict(w=torch.zeros(3), f=lambda: 0), str(out),
                   overwrite=True)
    assert torch.equal(torch.load(out)['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['ck.pth']
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(str(out), overwrite=True) as tmp:
            open(tmp, 'wb').write(b'partial')
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ['ck.pth']


def test_json_is_standard_and_names_a_non_finite_value(tmp_path):
    out = tmp_path / 'm.json'
    with pytest.raises(ValueError, match=r"metrics\[1\].delta_m is nan"):
        write_json(str(out), dict(metrics=[dict(a=1.0),
                                           dict(delta_m=float('nan'))]))
    assert not out.exists()
    write_json(str(out), dict(a=[1.5, 2]))
    assert json.loads(out.read_text()) == dict(a=[1.5, 2])


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep')
    out = tmp_path / 'out' / 'x.txt'
    out.parent.mkdir()
    os.symlink(victim, out)
    write_text(str(out), 'new', overwrite=True)
    assert victim.read_text() == 'keep' and out.read_text() == 'new'
    assert not out.is_symlink()


def test_inside(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    os.symlink(tmp_path / 'a', tmp_path / 'ln')
    assert inside(str(tmp_path / 'a' / 'b'), str(tmp_path / 'a'))
    assert inside(str(tmp_path / 'ln' / 'b'), str(tmp_path / 'a'))
    assert not inside(str(tmp_path / 'ab'), str(tmp_path / 'a'))
