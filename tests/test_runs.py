"""The life of a run, for both front ends: stops, kills, resumes, history, and the NaN guard."""

import signal
import time

import pytest
import torch

from maml.run.checkpoint import load_checkpoint
from maml.run.config import read_toml
from maml_rl import train as rl_train
from maml_sl import train as sl_train
from tests.conftest import TINY_NAVIGATION, TINY_SINUSOID, cli, finish, start_training

SINUSOID = ["-m", "maml_sl.train", *TINY_SINUSOID]
# Iterations of seconds, so that a signal lands inside one.
SLOW = ["-m", "maml_sl.train", "--meta-batch", "300", "--hidden", "200", "--inner-steps", "5"]
SLOW += ["--val-tasks", "8", "--device", "cpu", "--checkpoint-every", "100000"]
NAVIGATION = [*TINY_NAVIGATION, "--nthread", "1"]


@pytest.mark.slow
def test_a_run_killed_before_its_first_periodic_checkpoint_resumes(tmp_path):
    run = tmp_path / "run"
    process, _ = start_training(SINUSOID, run)
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    finish(process)
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 0  # the initial state
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "3"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 3
    started = read_toml(run / "history.toml")["history"][0]
    assert "-m maml_sl.train --meta-batch 4" in started["command"]


def test_a_run_stopped_while_starting_resumes_from_the_beginning(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*SINUSOID[2:], "--iterations", "2", "--run-dir", str(run)]
    assert cli(sl_train.main, args) == 0
    (run / "checkpoint.pt").unlink()  # as if killed between config.toml and the first checkpoint
    assert cli(sl_train.main, ["--resume", str(run)]) == 0
    assert "starting it afresh" in capsys.readouterr().out
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_one_signal_stops_after_the_iteration_with_a_checkpoint(tmp_path, sig, status):
    run = tmp_path / "run"
    process, _ = start_training(SINUSOID, run)
    time.sleep(0.5)
    process.send_signal(sig)
    done = finish(process)
    out, err = done.stdout, done.stderr
    assert process.returncode == status, err
    assert f"{signal.Signals(sig).name}: stopping after this iteration" in err
    assert f"--resume {run}" in out
    stopped = load_checkpoint(run / "checkpoint.pt")["iteration"]
    assert stopped > 0
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", str(stopped + 2)]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == stopped + 2


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_stops_at_once_and_the_run_resumes(tmp_path, sig, status):
    run = tmp_path / "run"
    process, _ = start_training(SLOW, run)
    process.send_signal(sig)
    for line in process.stderr:
        if "stopping after this iteration" in line:
            break
    process.send_signal(sig)
    done = finish(process)
    out, err = done.stdout, done.stderr
    assert process.returncode == status
    assert "Traceback" not in err
    # Stopped inside the first iteration (they take seconds), or, on a very fast machine, at its
    # end: either way the run is resumable.
    saved = load_checkpoint(run / "checkpoint.pt")["iteration"]
    assert saved == 0 and "stopped at once" in err or f"stopped at iteration {saved}" in out
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", str(saved + 1)]) == 0


def test_a_second_signal_turned_into_another_error_still_stops_at_once(
    tmp_path, monkeypatch, capsys
):
    # As when it lands in the import of a C extension, which reports an ImportError instead.
    import os

    from maml_sl.trainer import SupervisedTrainer

    def iteration(self, *args):
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler runs here at the latest
        except BaseException as error:
            raise ImportError("initialization failed") from error
        raise AssertionError("the second signal did not interrupt")

    monkeypatch.setattr(SupervisedTrainer, "iteration", iteration)
    run = tmp_path / "run"
    assert cli(sl_train.main, [*SINUSOID[2:], "--iterations", "3", "--run-dir", str(run)]) == 143
    assert "stopped at once; --resume" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 0


@pytest.mark.slow
def test_rl_ctrl_c_leaves_a_resumable_run(tmp_path):
    run = tmp_path / "run"
    process, _ = start_training(
        ["-m", "maml_rl.train", *NAVIGATION, "--checkpoint-every", "100000"], run
    )
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    done = finish(process)
    out, err = done.stdout, done.stderr
    assert process.returncode == 130, err
    stopped = load_checkpoint(run / "checkpoint.pt")["iteration"]
    assert f"stopped at iteration {stopped}" in out
    assert cli(rl_train.main, ["--resume", str(run), "--iterations", str(stopped + 1)]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == stopped + 1


def test_rl_nan_guard_keeps_the_last_good_state(tmp_path, monkeypatch, capsys):
    import maml_rl.trainer as trainer

    real = trainer.trpo_step
    calls = []

    def poisoned(learner, *args, **kwargs):
        stats = real(learner, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                next(learner.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(trainer, "trpo_step", poisoned)
    run = tmp_path / "run"
    args = [*NAVIGATION, "--iterations", "5", "--checkpoint-every", "1", "--run-dir", str(run)]
    assert cli(rl_train.main, args) == 1
    assert "not finite at iteration 3" in capsys.readouterr().err
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["learner"].values())


def test_resume_refuses_what_changes_training_and_records_what_it_allows(tmp_path, capsys):
    run = tmp_path / "run"
    common = [*NAVIGATION, "--checkpoint-every", "1"]
    assert cli(rl_train.main, [*common, "--iterations", "1", "--run-dir", str(run)]) == 0
    assert cli(rl_train.main, ["--resume", str(run), "--inner-lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--inner-lr 0.5 (the run has 0.1) would change what it trains" in err
    assert "--iterations" in err  # what may change
    assert cli(rl_train.main, ["--resume", str(run), "--iterations", "2", "--nthread", "1"]) == 0
    history = read_toml(run / "history.toml")["history"]
    assert [h["event"] for h in history] == ["start", "resume"]
    assert history[1]["changed"] == {"iterations": 2}
    assert history[0]["versions"]["torch"] == torch.__version__
    assert history[0]["commit"] and isinstance(history[0]["uncommitted_changes"], bool)


def test_resuming_a_finished_run_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*SINUSOID[2:], "--iterations", "2", "--run-dir", str(run)]
    assert cli(sl_train.main, args) == 0
    files = sorted(p.name for p in run.iterdir())
    assert cli(sl_train.main, ["--resume", str(run)]) == 0
    assert "has done 2 iterations already" in capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == files


def test_a_cosine_schedule_cannot_be_extended(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*SINUSOID[2:], "--iterations", "2", "--meta-lr-schedule", "cosine"]
    assert cli(sl_train.main, [*args, "--run-dir", str(run)]) == 0
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "4"]) == 2
    assert "cosine meta step size anneals over its 2 iterations" in capsys.readouterr().err


def test_help_shows_the_presets_values(capsys):
    with pytest.raises(SystemExit):
        rl_train.main(["--env", "navigation-2d", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 100, from preset navigation-2d; built-in 500)" in text


def test_evaluate_names_the_iterations_and_the_right_command(tmp_path, capsys):
    from maml_rl import evaluate as rl_evaluate
    from maml_sl import evaluate as sl_evaluate

    run = tmp_path / "run"
    assert cli(rl_train.main, [*NAVIGATION, "--iterations", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert cli(sl_evaluate.main, [str(run)]) == 2
    assert "is an RL run: use python -m maml_rl.evaluate" in capsys.readouterr().err
    args = [str(run), "--tasks", "2", "--steps", "1", "--rollouts", "2", "--device", "cpu"]
    assert cli(rl_evaluate.main, args) == 0
    out, err = capsys.readouterr()
    assert "trained for 1 of 1 iterations" in err
    assert "mean episode length after 0..1 steps: " in out
    sl_run = tmp_path / "sl"
    assert cli(sl_train.main, [*SINUSOID[2:], "--iterations", "1", "--run-dir", str(sl_run)]) == 0
    capsys.readouterr()
    assert cli(rl_evaluate.main, [str(sl_run)]) == 2
    assert "is a supervised run: use python -m maml_sl.evaluate" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.parametrize(("first", "then"), [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_run_resumes_on_the_other_device(tmp_path, first, then):
    run = tmp_path / "run"
    args = ["--meta-batch", "4", "--device", first, "--iterations", "3", "--run-dir", str(run)]
    assert cli(sl_train.main, args) == 0
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "6", "--device", then]) == 0
    rl = tmp_path / "rl"
    args = [*NAVIGATION[:10], "--device", first, "--iterations", "2", "--run-dir", str(rl)]
    assert cli(rl_train.main, args) == 0
    assert cli(rl_train.main, ["--resume", str(rl), "--iterations", "3", "--device", then]) == 0


@pytest.mark.cuda
def test_a_seed_gives_the_same_tasks_on_cpu_and_cuda():
    from maml_sl.config import TrainConfig
    from maml_sl.trainer import SupervisedTrainer

    cpu = SupervisedTrainer(TrainConfig(val_tasks=5), torch.device("cpu"))
    cuda = SupervisedTrainer(TrainConfig(val_tasks=5), torch.device("cuda"))
    for a, b in zip(cpu.validation, cuda.validation, strict=True):
        torch.testing.assert_close(a[0], b[0].cpu())


def events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def test_the_sinusoid_fit_is_drawn_at_the_start_and_at_the_end(tmp_path):
    run = tmp_path / "run"
    args = [*SINUSOID[2:], "--iterations", "3", "--run-dir", str(run)]
    assert cli(sl_train.main, args) == 0
    steps = [image.step for image in events(run).Images("val/held_out_tasks")]
    assert steps == [0, 3]


def test_rl_validation_logs_returns_per_step_on_held_out_tasks(tmp_path):
    run = tmp_path / "run"
    args = [*NAVIGATION, "--iterations", "2", "--val-every", "2", "--val-tasks", "2"]
    assert cli(rl_train.main, [*args, "--run-dir", str(run)]) == 0
    found = events(run)
    assert [i.step for i in found.Images("val/returns_per_step")] == [2]
    for k in range(4):
        assert [s.step for s in found.Scalars(f"val/return_after_{k}_steps")] == [2]
    assert "hparams" in plugins(run)


def plugins(run):
    """The TensorBoard plugins a run's events are for."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return {
        value.metadata.plugin_data.plugin_name
        for path in run.glob("events.*")
        for event in EventFileLoader(str(path)).Load()
        for value in event.summary.value
    }
