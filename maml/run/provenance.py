"""Where a result came from: the toolkit's source commit, package versions, the command line."""

from __future__ import annotations

import datetime
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from maml.run.config import toml_table
from maml.run.folder import append_atomic

SOURCE = Path(__file__).resolve().parents[2]  # the checkout
HISTORY = "history.toml"
PACKAGES = ("maml-toolkit", "torch", "numpy", "gymnasium", "mujoco", "tensorboard")
# Files results are written to, not code: a run started beside them is on committed code (the
# benchmarks write RESULTS.md and seed records between the trainings they start).
RESULT_FILES = ("benchmarks/RESULTS.md", "benchmarks/seeds")


def source_commit(exclude: tuple[str, ...] = ()) -> tuple[str | None, bool]:
    """The git commit of the toolkit's source and whether tracked files differ from it.

    ``(None, False)`` where the toolkit is not a git checkout (an installed wheel, say).
    ``exclude`` lists paths whose changes do not count (files that results are written to).
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=SOURCE, capture_output=True, text=True
        )
        if head.returncode != 0:
            return None, False
        pathspec = [".", *(f":!{path}" for path in exclude)]
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", *pathspec], cwd=SOURCE, capture_output=True
        )
    except OSError:  # no git
        return None, False
    return head.stdout.strip(), dirty.returncode != 0


def package_versions() -> dict[str, str]:
    """Installed versions of the toolkit and the libraries its numbers depend on."""
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_record(kind: str, **extra: Any) -> dict[str, Any]:
    """One entry of a run's history: when, how it was started, and on which code."""
    commit, dirty = source_commit(exclude=RESULT_FILES)
    record = {
        "event": kind,
        "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "commit": commit or "not a git checkout",
        "uncommitted_changes": dirty,
        **extra,
    }
    record["versions"] = package_versions()
    return record


def append_history(run_dir: Path, record: dict[str, Any]) -> None:
    """Add ``record`` to the run's ``history.toml`` (one ``[[history]]`` table per start)."""
    scalars = {k: v for k, v in record.items() if not isinstance(v, dict)}
    text = "[[history]]\n" + toml_table(scalars)
    for name, table in record.items():
        if isinstance(table, dict):
            text += f"[history.{name}]\n" + toml_table(table)
    path = run_dir / HISTORY
    append_atomic(path, ("\n" if path.exists() and path.stat().st_size else "") + text)
