"""A seed kept in git is taken again only on the same code, libraries and settings."""

import json
import subprocess
import sys

import pytest

from benchmarks import quality_rl, seed_records
from benchmarks.seed_records import CODE, load_seed_record, save_seed_record
from maml.run import provenance
from maml.run.errors import UsageError

SETTINGS = {"env": "ant-vel", "tasks": 3, "samplers": {"episodes": None}}
FIGURES = {"seed": 0, "samplers": {"episodes": {"returns": [[1.0, 2.0, 3.0]]}}}


def git(repo, *args):
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit_file(repo, name, text):
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"change {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A toolkit checkout of its own, and a run trained on its first commit."""
    repo = tmp_path / "toolkit"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.org")
    git(repo, "config", "user.name", "t")
    for path in CODE:
        (repo / path).mkdir()
        (repo / path / "code.py").write_text(f"# {path}\n")
    first = commit_file(repo, "README.md", "toolkit\n")
    monkeypatch.setattr(seed_records, "SOURCE", repo)
    monkeypatch.setattr(provenance, "SOURCE", repo)
    monkeypatch.setattr(seed_records, "SEEDS", tmp_path / "seeds")
    run = tmp_path / "run"
    run.mkdir()
    record = {"event": "start", "time": "t", "commit": first, "uncommitted_changes": False}
    provenance.append_history(run, record)
    return repo, run


def test_a_kept_seed_is_taken_on_the_same_code_settings_and_libraries(repo):
    repo, run = repo
    path = seed_records.seed_record_path("bench", 0)
    save_seed_record(path, SETTINGS, run, FIGURES)
    kept = load_seed_record(path, SETTINGS)
    assert kept["samplers"] == FIGURES["samplers"]
    assert kept["trained_at"] == [git(repo, "rev-parse", "HEAD")]
    # a commit outside the code (notes, results) keeps it
    commit_file(repo, "benchmarks/NOTES.md", "notes\n")
    assert load_seed_record(path, SETTINGS) is not None
    assert load_seed_record(path, {**SETTINGS, "tasks": 4}) is None


def test_other_code_or_libraries_retrain(repo, monkeypatch):
    repo, run = repo
    path = seed_records.seed_record_path("bench", 0)
    save_seed_record(path, SETTINGS, run, FIGURES)
    (repo / "envs" / "code.py").write_text("# changed, not committed\n")
    assert load_seed_record(path, SETTINGS) is None
    commit_file(repo, "envs/code.py", "# changed\n")
    assert load_seed_record(path, SETTINGS) is None
    git(repo, "revert", "--no-edit", "HEAD")
    assert load_seed_record(path, SETTINGS) is not None
    versions = {**provenance.package_versions(), "mujoco": "0.0"}
    monkeypatch.setattr(seed_records, "package_versions", lambda: versions)
    assert load_seed_record(path, SETTINGS) is None


def test_nothing_is_written_for_uncommitted_code_or_a_run_on_other_code(repo, capsys):
    repo, run = repo
    path = seed_records.seed_record_path("bench", 0)
    (repo / "maml" / "code.py").write_text("# not committed\n")
    save_seed_record(path, SETTINGS, run, FIGURES)
    assert not path.exists()
    commit_file(repo, "maml/code.py", "# committed after the run trained\n")
    save_seed_record(path, SETTINGS, run, FIGURES)
    assert not path.exists()
    provenance.append_history(
        run, {"event": "start", "time": "t", "commit": "abc", "uncommitted_changes": True}
    )
    git(repo, "revert", "--no-edit", "HEAD")  # today's code is the run's first commit's again
    save_seed_record(path, SETTINGS, run, FIGURES)  # but a start on uncommitted code refuses it
    assert not path.exists()
    assert "not a commit" in capsys.readouterr().out


def test_a_corrupt_record_is_named(repo):
    path = seed_records.seed_record_path("bench", 0)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="seed0.json is corrupt"):
        load_seed_record(path, SETTINGS)


def test_the_section_is_made_from_kept_seeds_without_training(repo, monkeypatch, capsys):
    repo, run = repo
    returns = {0: [[0.0, 2.0], [10.0, 12.0], [11.0, 13.0], [12.0, 14.0]], 1: [[3.0, 5.0]] * 4}
    for seed, table in returns.items():
        figures = {
            "seed": seed,
            "date": "2026-12-03",
            "machine": quality_rl.machine(),
            "iterations": 376,
            "minutes": 180.0,
            "meta_batch": 40,
            "train_rollouts": 20,
            "test_rollouts": 20,
            "step_sizes": [0.1, 0.05],
            "horizon": 200,
            "samplers": {"episodes": {"returns": table, "lengths": [200.0] * 4}},
        }
        settings = {
            "env": "ant-vel",
            "variant": [],
            "iterations": None,
            "tasks": 2,
            "steps": 3,
            "test_seed": quality_rl.TEST_SEED,
            "samplers": {"episodes": None},
        }
        save_seed_record(
            seed_records.seed_record_path("bench-rl-ant-vel", seed), settings, run, figures
        )

    def no_training(*args, **kwargs):
        raise AssertionError("a kept seed was trained again")

    monkeypatch.setattr(quality_rl, "seed_figures", no_training)
    argv = ["quality_rl", "--env", "ant-vel", "--seeds", "0", "1", "--tasks", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    quality_rl.main()
    out = capsys.readouterr().out
    assert "| seed 0, episodes | 1.0 | 11.0 | 12.0 | 13.0 |" in out
    assert "| seed 1, episodes | 4.0 | 4.0 | 4.0 | 4.0 |" in out
    assert "| **mean over seeds**, episodes | 2.5 | 7.5 | 8.0 | 8.5 |" in out
    # Kept seeds trained in other sessions: each seed's date and machine, even where the
    # machine's description is this one's.
    assert f"seed 0 on 2026-12-03 ({quality_rl.machine()})" in out
    head = git(repo, "rev-parse", "HEAD")[:7]
    assert f"seed 1 (trained at {head}, evaluated at {head})" in out
    assert json.loads(seed_records.seed_record_path("bench-rl-ant-vel", 1).read_text())["seed"] == 1
