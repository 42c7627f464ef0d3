"""Run a training command as a child of a benchmark, so that stopping the benchmark stops it."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any


def run_training(command: list[str]) -> None:
    """Run ``command`` (a ``maml_*.train``) to its end; a SIGINT or SIGTERM sent to this process
    is passed on, so the training stops after its iteration, resumable, as when it is sent to the
    training itself. Exits with the training's status if it stopped or failed.

    The child has a session of its own: Ctrl-C in a terminal then reaches it once, through
    here, not twice (a second signal stops a training at once).
    """
    pending: list[int] = []  # a signal that came before the child started
    child: subprocess.Popen | None = None

    def forward(signum: int, frame: Any) -> None:
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen(command, start_new_session=True)
        for signum in pending:
            child.send_signal(signum)
        status = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if status:
        print(f"training stopped with status {status}: {' '.join(command)}", file=sys.stderr)
        sys.exit(status if status > 0 else 128 - status)
