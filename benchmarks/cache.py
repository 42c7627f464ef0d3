"""Keep a benchmark's slow evaluation of a finished run beside the run, so that a benchmark
started again (to resume its other seeds) does not redo it.

An entry is reused only for the same checkpoint (by its bytes), the same committed code, the
same library versions and the same settings; on uncommitted code nothing is kept, since its
figures could not be regenerated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maml.run.checkpoint import load_checkpoint, save_checkpoint
from maml.run.errors import UsageError
from maml.run.provenance import package_versions, source_commit

CACHE = "benchmark-evaluations.pt"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_evaluation(
    run: Path, settings: dict[str, Any], compute: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """``compute()`` for ``run``'s checkpoint under ``settings`` (JSON-able), or the value kept
    from an earlier call on the same checkpoint, code and settings; and whether it was kept."""
    head, dirty = source_commit(exclude=("benchmarks/RESULTS.md",))
    key = json.dumps(
        {
            "checkpoint": file_digest(run / "checkpoint.pt"),
            "commit": head,
            "versions": package_versions(),
            **settings,
        },
        sort_keys=True,
    )
    path = run / CACHE
    entries: dict[str, Any] = {}
    if path.exists():
        try:
            entries = load_checkpoint(path)["entries"]
        except (UsageError, KeyError):  # unreadable: recompute, then overwrite it
            entries = {}
    if key in entries:
        return entries[key], True
    value = compute()
    if head is not None and not dirty:
        save_checkpoint(path, {"entries": {**entries, key: value}})
    return value, False
