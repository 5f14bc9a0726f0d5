"""What the command-line tools share: progress bars on stderr, a clean
stdout for ``--json``, and one ``main``."""
import argparse
import contextlib
import json
import logging
import sys
from typing import Callable, Iterable, Optional

from mmengine.logging import MMLogger
from rich.console import Console
from rich.progress import track


def _int_at_least(text: str, low: int) -> int:
    """Parse ``text`` as an integer >= ``low`` for argparse: the error
    names the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not an integer') from None
    if value < low:
        raise argparse.ArgumentTypeError(f'must be >= {low}, got {value}')
    return value


def positive_int(text: str) -> int:
    """argparse ``type`` of counts that must be >= 1 (a batch size, a
    number of images, of seeds)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse ``type`` of counts where 0 means off (``--verify N``,
    ``--recalibrate-bn N``)."""
    return _int_at_least(text, 0)


def progress(iterable: Iterable, desc: str, total: Optional[int] = None):
    """Iterate with a rich progress bar on stderr (stdout stays clean for
    ``--json``)."""
    console = Console(file=sys.stderr)
    if total is None and hasattr(iterable, '__len__'):
        total = len(iterable)
    yield from track(iterable, description=desc, total=total,
                     console=console, transient=False)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything printed or logged (mmengine's logger included) to
    stderr, so that a tool's stdout holds only its result."""
    logger = MMLogger.get_current_instance()
    swapped = [
        h for h in logger.handlers if isinstance(h, logging.StreamHandler)
        and getattr(h, 'stream', None) is sys.stdout
    ]
    for h in swapped:
        h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h in swapped:
            h.setStream(sys.stdout)


def run_tool(argv, parse_args: Callable, work: Callable,
             render: Callable) -> dict:
    """The ``main`` of a measurement tool: parse ``argv``, run ``work``
    with every log on stderr, and print its result as one JSON object
    (``--json``) or as the table ``render`` makes of it."""
    args = parse_args(argv)
    with stdout_to_stderr():
        result = work(args)
    print(json.dumps(result) if args.json else render(result))
    return result
