"""A benchmark seed's figures kept in git, so that a benchmark of several long trainings
survives a change of machine.

A RESULTS section over several training seeds of hours each (the Ant families: 3-10 hours a seed on
2 cores) takes several sessions, and its run folders (git-ignored, with the checkpoints) live only
as long as the machine. So once a seed is trained and evaluated on committed code, its figures
(returns per test task and step, not weights) go to ``benchmarks/seeds/BENCHMARK/seedN.json`` to be
committed, and a later run of the same command takes them instead of training that seed again,
while the code they depend on (``CODE``, at every commit the seed trained on and at the commit it
was evaluated on), the library versions and the benchmark's settings are unchanged. ``--retrain``
ignores them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from maml.run.config import parse_toml
from maml.run.errors import UsageError
from maml.run.provenance import HISTORY, RESULT_FILES, SOURCE, package_versions, source_commit

SEEDS = Path(__file__).with_name("seeds")
# What a trained and evaluated seed's figures depend on: the toolkit, the envs and the presets.
CODE = ("maml", "maml_rl", "envs", "configs")


def code_trees(commit: str = "HEAD") -> dict[str, str]:
    """Git tree hash of each of ``CODE`` at ``commit``."""
    trees = {}
    for path in CODE:
        out = subprocess.run(
            ["git", "rev-parse", f"{commit}:{path}"], cwd=SOURCE, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise UsageError(f"cannot read {path!r} at commit {commit!r}: {out.stderr.strip()}")
        trees[path] = out.stdout.strip()
    return trees


def code_changed() -> bool:
    """Whether ``CODE`` in the working tree differs from the commit checked out."""
    try:
        out = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *CODE], cwd=SOURCE)
    except OSError:  # no git: nothing can be matched to a commit
        return True
    return out.returncode != 0


def training_commits(run: Path) -> list[str]:
    """The commits a run trained on, from its history; an error if any start had other code."""
    path = run / HISTORY
    try:
        starts = parse_toml(path.read_text(encoding="utf-8"), str(path))["history"]
    except (OSError, KeyError) as error:
        raise UsageError(f"cannot read the history of run {run}: {error}") from error
    for start in starts:
        if start.get("uncommitted_changes", True) or start.get("commit") == "not a git checkout":
            raise UsageError(
                f"run {run} was started at {start.get('time')} on code that is not a commit; "
                "its figures cannot be kept"
            )
    return list(dict.fromkeys(start["commit"] for start in starts))


def seed_record_path(benchmark: str, seed: int) -> Path:
    """Where ``benchmark``'s (a folder name: the module and its variant) ``seed`` is kept."""
    return SEEDS / benchmark / f"seed{seed}.json"


def load_seed_record(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The record at ``path`` if it was made under ``settings`` on today's code and libraries;
    otherwise None, saying why when a record is there."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        kept = (record["settings"], record["code"], record["versions"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UsageError(
            f"seed record {path} is corrupt ({error}); delete it to retrain"
        ) from error
    if code_changed():
        print(f"{path}: {', '.join(CODE)} have uncommitted changes, so the seed is trained again")
        return None
    now = (settings, code_trees(), package_versions())
    for what, old, new in zip(("settings", "code", "library versions"), kept, now, strict=True):
        if old != new:
            print(f"{path}: other {what} than today's, so the seed is trained again", flush=True)
            return None
    return record


def save_seed_record(
    path: Path, settings: dict[str, Any], run: Path, figures: dict[str, Any]
) -> None:
    """Write a finished seed's ``figures`` for committing, if they came from committed code that
    is today's ``CODE`` from training to evaluation; otherwise say why nothing was written."""
    head, dirty = source_commit(exclude=RESULT_FILES)
    if head is None or dirty:
        print(f"not writing {path}: the code is not committed", flush=True)
        return
    trees = code_trees(head)
    try:
        trained = training_commits(run)
        differing = [c[:7] for c in trained if code_trees(c) != trees]
    except UsageError as error:  # the section can still be written: only the record is refused
        print(f"not writing {path}: {error}", flush=True)
        return
    if differing:
        print(
            f"not writing {path}: the run trained on commits {', '.join(differing)}, whose "
            f"{', '.join(CODE)} differ from today's",
            flush=True,
        )
        return
    record = {
        "settings": settings,
        "code": trees,
        "versions": package_versions(),
        "trained_at": trained,
        "evaluated_at": head,
        **figures,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(path)
    print(f"wrote {path}: commit it to keep this seed beyond this machine", flush=True)
