"""User-facing errors and the command-line wrapper that prints them without a traceback."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence

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
