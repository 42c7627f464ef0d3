"""Sinusoid tasks and the supervised command lines, end to end at tiny sizes."""

import math
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maml.run.checkpoint import load_checkpoint
from maml_sl import evaluate as evaluate_cli
from maml_sl import train as train_cli
from maml_sl.tasks.sinusoid import SinusoidTasks
from tests.conftest import cli

TINY = ["--meta-batch", "4", "--log-every", "5", "--val-every", "10", "--val-tasks", "8"]
TINY += ["--figure-every", "1000", "--checkpoint-every", "1000", "--device", "cpu"]


def run_train(args):
    return cli(train_cli.main, args)


def test_sinusoid_tasks_have_the_papers_ranges_and_one_function_per_task():
    tasks = SinusoidTasks()
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    amp, phase = tasks.sample_functions(500, g)
    g.set_state(state)
    (xs, ys), (xq, yq) = tasks.sample(500, 5, 7, g)
    assert xs.shape == ys.shape == (500, 5, 1) and xq.shape == yq.shape == (500, 7, 1)
    assert 0.1 <= amp.min() and amp.max() <= 5.0 and 0 <= phase.min() and phase.max() <= math.pi
    assert -5 <= xs.min() and xs.max() <= 5 and amp.max() > 4.5 and xq.min() < -4.5
    torch.testing.assert_close(ys, amp * torch.sin(xs - phase))
    torch.testing.assert_close(yq, amp * torch.sin(xq - phase))


def test_training_writes_config_checkpoint_and_tensorboard(tmp_path):
    run = tmp_path / "run"
    args = ["--iterations", "20", "--run-dir", str(run), "--figure-every", "20"]
    assert run_train(TINY + args) == 0
    assert (run / "config.toml").is_file()
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 20
    events = EventAccumulator(str(run), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "losses/query_loss_before_adaptation",
        "losses/query_loss_after_adaptation",
        "charts/meta_lr",
        "charts/iterations_per_second",
        "charts/wall_time",
    } | {f"val/query_loss_after_{k}_steps" for k in (0, 1, 5, 10)}
    assert expected <= scalars
    assert [e.step for e in events.Scalars("val/query_loss_after_1_steps")] == [10, 20]
    assert "val/held_out_tasks" in events.Tags()["images"]


def test_training_options_for_maml_plus_plus_run_and_log_learned_rates(tmp_path):
    run = tmp_path / "run"
    args = ["--iterations", "10", "--inner-steps", "2", "--multi-step-loss", "--first-order"]
    assert run_train(TINY + args + ["--learn-inner-lr", "per_step", "--run-dir", str(run)]) == 0
    events = EventAccumulator(str(run)).Reload()
    rates = [t for t in events.Tags()["scalars"] if t.startswith("inner_lr/")]
    assert len(rates) == 6  # one per parameter tensor of the 2x40 MLP
    state = load_checkpoint(run / "checkpoint.pt")
    learned = state["learner"]["inner_lr.rates.0__weight"]
    assert learned.shape == (2,) and not torch.equal(learned, torch.full((2,), 0.01))


def test_resume_continues_bit_for_bit(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_train(TINY + ["--iterations", "24", "--run-dir", str(whole)]) == 0
    assert run_train(TINY + ["--iterations", "11", "--run-dir", str(split)]) == 0
    assert load_checkpoint(split / "checkpoint.pt")["iteration"] == 11
    assert run_train(["--resume", str(split), "--iterations", "24"]) == 0
    a = load_checkpoint(whole / "checkpoint.pt")
    b = load_checkpoint(split / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 24
    for name, tensor in a["learner"].items():
        assert torch.equal(tensor, b["learner"][name]), name
    assert torch.equal(a["generator"], b["generator"])


def test_cosine_meta_lr_falls_from_meta_lr_to_zero_over_the_run(tmp_path):
    from maml_sl.config import TrainConfig
    from maml_sl.trainer import meta_lr_at

    config = TrainConfig(meta_lr=0.002, iterations=100, meta_lr_schedule="cosine")
    assert meta_lr_at(config, 0) == 0.002
    assert meta_lr_at(config, 50) == pytest.approx(0.001)
    assert 0 < meta_lr_at(config, 99) < 1e-6
    assert meta_lr_at(TrainConfig(meta_lr=0.002), 99) == 0.002
    run = tmp_path / "run"
    args = TINY + ["--iterations", "10", "--meta-lr-schedule", "cosine", "--run-dir", str(run)]
    assert run_train(args) == 0
    logged = EventAccumulator(str(run)).Reload().Scalars("charts/meta_lr")
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * (done - 1) / 10)) for done in (5, 10)]
    assert [e.value for e in logged] == pytest.approx(expected, rel=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_good_state(tmp_path, monkeypatch, capsys):
    original = SinusoidTasks.sample
    calls = {"n": 0}

    def poisoned(self, n_tasks, *args, **kwargs):
        support, query = original(self, n_tasks, *args, **kwargs)
        calls["n"] += n_tasks == 4  # training batches, not the validation set
        if calls["n"] == 8:
            support = (support[0], support[1] * float("nan"))
        return support, query

    monkeypatch.setattr(SinusoidTasks, "sample", poisoned)
    run = tmp_path / "run"
    code = run_train(
        TINY + ["--iterations", "20", "--checkpoint-every", "5", "--run-dir", str(run)]
    )
    assert code == 1
    assert "not finite at iteration 8" in capsys.readouterr().err
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 7
    assert all(torch.isfinite(t).all() for t in state["learner"].values())


@pytest.mark.slow
def test_short_meta_training_makes_adaptation_help(tmp_path):
    run = tmp_path / "run"
    args = ["--iterations", "1000", "--run-dir", str(run), "--seed", "3", "--device", "cpu"]
    assert run_train(args + ["--val-every", "1000", "--figure-every", "1000"]) == 0
    learner, setup, _ = evaluate_cli.load_run(run, "cpu")
    results = evaluate_cli.evaluate(learner, setup, shots=[10], steps=[0, 1, 10], tasks=200)["loss"]
    before, one, ten = (results[10, k][0] for k in (0, 1, 10))
    assert one < 0.7 * before and ten < 0.5 * before, (before, one, ten)


def test_evaluate_prints_a_table_per_shot(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train(TINY + ["--iterations", "5", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        from maml.run.errors import run_cli

        run_cli(evaluate_cli.main, [str(run), "--tasks", "20", "--shots", "5", "10"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "query MSE on 20 new tasks per K" in out
    rows = [line.split() for line in out.splitlines()[2:] if not line.startswith("K = ")]
    assert [r[0] for r in rows] == ["5", "10"] and all(len(r) == 10 for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "maml_sl.train", "--task", "cifar"], "--task 'cifar' is not allowed"),
        (["-m", "maml_sl.train", "--meta-batch", "0"], "--meta-batch must be positive, got 0"),
        (["-m", "maml_sl.train", "--resume", "nowhere"], "--resume nowhere: no run there"),
        (["-m", "maml_sl.evaluate", "nowhere"], "run directory nowhere does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_corrupt_checkpoint_and_unknown_config_key_exit_2(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_train(TINY + ["--iterations", "2", "--run-dir", str(run)]) == 0
    (run / "checkpoint.pt").write_bytes(b"garbage")
    assert run_train(["--resume", str(run), "--iterations", "4"]) == 2
    assert "corrupt or not a checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("metabatch = 3\n")
    assert run_train(["--config", str(bad)]) == 2
    assert "unknown key(s) metabatch" in capsys.readouterr().err


@pytest.mark.slow
def test_interrupt_saves_a_checkpoint_and_resume_finishes(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "maml_sl.train", *TINY, "--iterations", "100000"]
    process = subprocess.Popen(
        [*command, "--run-dir", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in process.stderr:  # tqdm's progress: training is running
            if "it/s" in line or "it]" in line:
                break
        process.send_signal(subprocess.signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert f"--resume {run}" in out
    stopped = load_checkpoint(run / "checkpoint.pt")["iteration"]
    assert 0 < stopped < 100000
    assert run_train(["--resume", str(run), "--iterations", str(stopped + 3)]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == stopped + 3


@pytest.mark.cuda
def test_training_and_evaluation_run_on_cuda(tmp_path):
    run = tmp_path / "run"
    args = [a for a in TINY if a not in ("--device", "cpu")]
    assert run_train(args + ["--iterations", "12", "--device", "cuda", "--run-dir", str(run)]) == 0
    learner, setup, _ = evaluate_cli.load_run(run, "cuda")
    assert next(learner.parameters()).is_cuda
    results = evaluate_cli.evaluate(learner, setup, shots=[5], steps=[1], tasks=10)["loss"]
    assert math.isfinite(results[5, 1][0])
