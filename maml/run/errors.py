"""What a command prints: user-facing errors as one line without a traceback, and the progress
messages that library calls log."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

# How long a silent rank that met an error waits before it exits: torchrun stops every rank once
# one exits with an error, and rank 0 must have said it by then.
QUIET_RANK_GRACE = 10.0


class UsageError(Exception):
    """A bad value from the user: printed as one line, exit status 2."""


class TrainingError(Exception):
    """Training had to stop (e.g. a non-finite loss): printed as one line, exit status 1."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None):
    """Run a command-line ``main``; our errors become one line on stderr and an exit status."""
    # Under torchrun every rank meets the same error: rank 0 alone says it.
    speak = os.environ.get("RANK", "0") == "0"
    try:
        code = main(argv)
    except (UsageError, TrainingError) as error:
        if speak:
            print(f"error: {error}", file=sys.stderr)
        else:
            time.sleep(QUIET_RANK_GRACE)
        code = 2 if isinstance(error, UsageError) else 1
    except OSError as error:  # the file system's (a full disk, a folder that cannot be made)
        if speak:
            print(f"error: {error}", file=sys.stderr)
        else:
            time.sleep(QUIET_RANK_GRACE)
        code = 1
    sys.exit(code or 0)


class _Stderr(logging.Handler):
    """Writes to the ``sys.stderr`` of each moment (a test's capture, say), not its first one."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


_STDERR = _Stderr()


@contextmanager
def show_messages(*names: str) -> Iterator[None]:
    """Show the info messages of the loggers ``names`` on stderr inside the block, or the
    function it decorates: a command's progress lines (which run it loaded, how far that run
    trained), which library calls leave to their caller's logging."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(_STDERR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(_STDERR)
            logger.setLevel(level)
