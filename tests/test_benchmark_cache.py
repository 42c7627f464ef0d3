"""A benchmark's kept evaluation is reused only for the same checkpoint, code and settings."""

import pytest
import torch

from benchmarks import cache
from benchmarks.cache import CACHE, cached_evaluation


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "source_commit", lambda exclude=(): ("a" * 40, False))
    (tmp_path / "checkpoint.pt").write_bytes(b"weights 1")
    return tmp_path


def counting():
    calls = []

    def compute():
        calls.append(1)
        return {"returns": torch.full((2, 3), float(len(calls)))}

    return compute, calls


def test_a_second_call_reuses_the_first_evaluation(run):
    compute, calls = counting()
    first, kept_first = cached_evaluation(run, {"tasks": 3}, compute)
    second, kept_second = cached_evaluation(run, {"tasks": 3}, compute)
    assert (kept_first, kept_second) == (False, True)
    assert len(calls) == 1
    assert torch.equal(first["returns"], second["returns"])


def test_another_checkpoint_settings_or_commit_is_evaluated_again(run, monkeypatch):
    compute, calls = counting()
    cached_evaluation(run, {"tasks": 3}, compute)
    assert not cached_evaluation(run, {"tasks": 4}, compute)[1]
    (run / "checkpoint.pt").write_bytes(b"weights 2")
    assert not cached_evaluation(run, {"tasks": 3}, compute)[1]
    monkeypatch.setattr(cache, "source_commit", lambda exclude=(): ("b" * 40, False))
    assert not cached_evaluation(run, {"tasks": 3}, compute)[1]
    assert len(calls) == 4
    # every entry is kept: going back to the first checkpoint finds its evaluation
    (run / "checkpoint.pt").write_bytes(b"weights 1")
    monkeypatch.setattr(cache, "source_commit", lambda exclude=(): ("a" * 40, False))
    value, kept = cached_evaluation(run, {"tasks": 3}, compute)
    assert kept and value["returns"][0, 0] == 1.0


@pytest.mark.parametrize("head", [None, "a" * 40])
def test_nothing_is_kept_on_uncommitted_or_unknown_code(run, monkeypatch, head):
    monkeypatch.setattr(cache, "source_commit", lambda exclude=(): (head, head is not None))
    compute, calls = counting()
    cached_evaluation(run, {"tasks": 3}, compute)
    assert not cached_evaluation(run, {"tasks": 3}, compute)[1]
    assert len(calls) == 2
    assert not (run / CACHE).exists()


def test_an_unreadable_cache_is_evaluated_again_and_replaced(run):
    (run / CACHE).write_bytes(b"not a checkpoint")
    compute, calls = counting()
    assert not cached_evaluation(run, {"tasks": 3}, compute)[1]
    assert cached_evaluation(run, {"tasks": 3}, compute)[1]
    assert len(calls) == 1
