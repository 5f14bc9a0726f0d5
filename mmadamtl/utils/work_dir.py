"""A training's work dir: one training at a time, and resuming from the
newest checkpoint that loads."""
import contextlib
import glob
import os
import os.path as osp
import re
import socket
from typing import Iterator, Optional, Tuple

LOCK_NAME = '.train.lock'
# Where torchrun, slurm and mpi put a process's global rank before the
# Runner sets up distributed training.
RANK_VARIABLES = ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK')


def launch_rank() -> int:
    """This process's global rank as its launcher set it (0 alone)."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def work_dir_lock(work_dir: str, log=print) -> Iterator[str]:
    """Hold ``work_dir/.train.lock`` (the process id and host) while the
    ``with`` block runs.

    Raises:
        RuntimeError: Another training on this host holds the lock and
            its process is alive (two runs in one work dir interleave
            their logs and replace each other's checkpoints).

    A lock left by a process that is gone (killed) is stale: it is
    replaced, and ``log`` says so.
    """
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    me = f'{os.getpid()} {socket.gethostname()}\n'
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, encoding='utf-8') as f:
                    pid_text, _, host = f.read().strip().partition(' ')
                pid = int(pid_text)
            except (OSError, ValueError):
                pid, host = -1, ''
            if pid > 0 and host == socket.gethostname() and _alive(pid):
                raise RuntimeError(
                    f'work dir {work_dir} is in use by a running training '
                    f'(process {pid}, lock {path}); use another --work-dir '
                    f'or wait for it to finish') from None
            if pid > 0 and host and host != socket.gethostname():
                raise RuntimeError(
                    f'work dir {work_dir} is locked by a training on host '
                    f'{host} (process {pid}, lock {path}); if it is not '
                    f'running, delete the lock file') from None
            log(f'work dir {work_dir}: removing the stale lock of process '
                f'{pid_text if pid > 0 else "?"}, which is not running')
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            continue
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(me)
        break
    else:
        raise RuntimeError(f'could not take the lock {path}')
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding='utf-8') as f:
                mine = f.read() == me
            if mine:
                os.remove(path)


def _loadable(path: str) -> bool:
    from .safe_checkpoint import load_checkpoint_file
    try:
        load_checkpoint_file(path, map_location='cpu')
    except Exception:  # truncated, corrupt, refused: not usable
        return False
    return True


def finished_checkpoint(work_dir: str, max_iters: int
                        ) -> Optional[Tuple[str, int]]:
    """``(path, iteration)`` of the checkpoint ``work_dir/last_checkpoint``
    names if it was saved at ``max_iters`` (its meta read weights-only),
    else None: mmengine writes ``last_checkpoint`` at the first
    checkpoint, so its presence does not mean the run finished.

    mmengine writes the path the training was given: a work dir moved
    since, or trained through another path to it (a symlink, another
    checkout), names a file that is not there; then the checkpoint of
    that name in ``work_dir`` is the one."""
    from .safe_checkpoint import load_checkpoint_file
    last = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(last):
        return None
    with open(last, encoding='utf-8') as f:
        ckpt = f.read().strip()
    if ckpt and not osp.isfile(ckpt):
        ckpt = osp.join(work_dir, osp.basename(ckpt))
    if not ckpt or not osp.isfile(ckpt):
        return None
    try:
        meta = load_checkpoint_file(ckpt, map_location='cpu').get('meta')
    except Exception:  # unreadable: not a finished run
        return None
    done = meta.get('iter') if isinstance(meta, dict) else None
    return (ckpt, done) if done == max_iters else None


def resume_checkpoint(work_dir: str, log=print) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from: the
    one ``work_dir/last_checkpoint`` names if it loads, else the newest
    ``iter_*.pth``/``epoch_*.pth`` of ``work_dir`` that loads (an empty or
    stale ``last_checkpoint`` after a kill; ``log`` says which), else
    None (train from the start)."""
    last = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(last):
        with open(last, encoding='utf-8') as f:
            named = f.read().strip() or None
        if named and _loadable(named):
            return named
    found = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        m = re.fullmatch(r'(?:iter|epoch)_(\d+)\.pth', osp.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    for _, path in sorted(found, reverse=True):
        if _loadable(path):
            why = 'is empty' if osp.isfile(last) and not named else \
                'is missing' if not osp.isfile(last) else \
                f'names {named}, which does not load'
            log(f'{last} {why}: resuming from {path}, the newest checkpoint '
                f'of {work_dir} that loads')
            return path
    return None
