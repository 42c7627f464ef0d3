"""Write one benchmark's section of benchmarks/RESULTS.md, keeping the other sections."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

import torch

from maml.run.provenance import source_commit

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\nEach section is written whole by the command in its header, on the "
    "code as committed; a\nsection's figures change only when that command is run again. History "
    "and one-off\nexperiments are in `NOTES.md`.\n"
)


def machine() -> str:
    """A one-line description of where the numbers came from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # The vector unit torch's kernels dispatch to: hosts of one description differ in it, and
    # with it in speed and in the rounding of a training's floats.
    cpu += f" ({torch.backends.cpu.get_cpu_capability()})"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Python {platform.python_version()}"
    )


def commit() -> str:
    """The commit the code was run at, and whether tracked files differed from it."""
    # RESULTS.md itself is what the benchmarks write: not code.
    head, dirty = source_commit(exclude=("benchmarks/RESULTS.md",))
    if head is None:
        return "unknown commit"
    return f"commit {head[:7]}" + (" with uncommitted changes" if dirty else "")


def write_section(name: str, body: str, module: str) -> None:
    """Replace (or add) the section ``name`` with ``body`` plus the command, machine and date."""
    command = " ".join(["python -m", module, *(shlex.quote(a) for a in sys.argv[1:])])
    stamp = datetime.date.today().isoformat()
    block = (
        f"<!-- {name}:start -->\n## {name}\n\n`{command}` on {stamp}, {commit()}\n\n"
        f"Machine: {machine()}\n\n{body.strip()}\n<!-- {name}:end -->"
    )
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S
    )
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    RESULTS.write_text(text)
