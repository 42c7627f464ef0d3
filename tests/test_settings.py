"""A run folder says what ran: resolved settings, only those that apply; and the command lines'
messages name what is wrong and what is allowed."""

import pytest
import torch

from maml.run.cli import parse_train_args
from maml.run.config import from_dict, read_toml
from maml.run.errors import UsageError
from maml.run.presets import preset_names
from maml.run.saved import read_run_config
from maml_rl import train as rl_train
from maml_rl.build import resolved
from maml_rl.config import TrainConfig
from maml_rl.trainer import trpo_settings
from maml_sl import train as sl_train
from tests.conftest import cli
from tests.test_runs import NAVIGATION, SINUSOID

CHEETAH = ["--env", "halfcheetah-vel", "--meta-batch", "2", "--rollouts", "2", "--horizon", "5"]
CHEETAH += ["--hidden", "8", "--device", "cpu", "--cg-iterations", "2", "--val-every", "0"]


def test_an_rl_run_records_the_values_it_chose_for_auto(tmp_path):
    run = tmp_path / "run"
    args = [*CHEETAH, "--iterations", "1"]
    assert cli(rl_train.main, [*args, "--run-dir", str(run)]) == 0
    config = read_toml(run / "config.toml")
    assert config["frame_skip"] == 1  # the preset's, never Gymnasium's 5
    assert config["horizon"] == 5 and config["fisher_fraction"] == 0.2
    assert config["device"] == "cpu" and config["threads"] >= 1
    assert "auto" not in (run / "config.toml").read_text()
    # MuJoCo's threads change only the speed: chosen at each start, recorded in the history.
    assert "nthread" not in config
    assert read_toml(run / "history.toml")["history"][0]["mujoco_threads"] >= 1
    nav = tmp_path / "nav"
    assert cli(rl_train.main, [*NAVIGATION, "--iterations", "1", "--run-dir", str(nav)]) == 0
    config = read_toml(nav / "config.toml")
    assert config["horizon"] == 5 and "frame_skip" not in config and "nthread" not in config


def test_auto_takes_the_envs_own_frame_skip_and_records_it(tmp_path):
    run = tmp_path / "run"
    args = [*CHEETAH, "--frame-skip", "auto", "--iterations", "1", "--run-dir", str(run)]
    assert cli(rl_train.main, args) == 0
    assert read_toml(run / "config.toml")["frame_skip"] == 5  # Gymnasium's, over the preset's 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frame-skip", "0"], "--frame-skip must be positive or auto, got 0"),
        (["--horizon", "0"], "--horizon must be positive or auto, got 0"),
        (["--nthread", "0"], "--nthread must be positive or auto, got 0"),
        (["--fisher-fraction", "0"], "--fisher-fraction must be positive, got 0.0"),
        (["--fisher-fraction", "1.5"], "--fisher-fraction must be in (0, 1], got 1.5"),
        (["--fisher-fraction", "auto"], "--fisher-fraction 'auto' is not a valid float"),
        (["--fisher-subsample", "tasks"], "unrecognized arguments: --fisher-subsample tasks"),
        (["--threads", "0"], "--threads must be positive or auto, got 0"),
        (["--horizon", "long"], "--horizon 'long' is not a int or auto"),
        (["--iteration", "1"], "unrecognized arguments: --iteration 1"),
        (["--config", "nosuchpreset"], "no such file, and no preset of that name; the presets"),
    ],
)
def test_bad_rl_settings_are_one_line(args, message, capsys, tmp_path):
    code = cli(rl_train.main, [*NAVIGATION, *args, "--run-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_fisher_fraction_is_a_fifth_on_every_device_unless_given():
    for device in (torch.device("cpu"), torch.device("cuda")):  # nothing is put on the device
        assert resolved(TrainConfig(env="navigation-2d"), device).fisher_fraction == 0.2
        given = TrainConfig(env="navigation-2d", fisher_fraction=0.5)
        assert resolved(given, device).fisher_fraction == 0.5
    assert trpo_settings(TrainConfig()).fisher_fraction == 0.2
    assert trpo_settings(TrainConfig(fisher_fraction=0.5)).fisher_fraction == 0.5


def test_the_presets_are_listed_in_help_and_in_the_error(capsys, tmp_path):
    with pytest.raises(SystemExit):
        sl_train.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "preset: " + ", ".join(preset_names()) in help_text
    assert "--threads {INT,auto}" in help_text
    assert cli(sl_train.main, ["--config", "omniglot-5way"]) == 2
    assert "the presets are " + ", ".join(preset_names()) in capsys.readouterr().err


def test_a_supervised_run_records_only_its_settings(tmp_path):
    run = tmp_path / "run"
    assert cli(sl_train.main, [*SINUSOID[2:], "--iterations", "1", "--run-dir", str(run)]) == 0
    config = read_toml(run / "config.toml")
    assert {"hidden", "depth", "threads", "device"} <= set(config)
    assert not {"ways", "filters", "data", "train_on", "msl_anneal_iterations"} & set(config)
    assert config["device"] == "cpu"
    history = read_toml(run / "history.toml")["history"][0]
    assert history["ranks"] == 1 and history["threads"] == config["threads"]


def test_resuming_with_the_other_trainer_names_the_right_command(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(sl_train.main, [*SINUSOID[2:], "--iterations", "1", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert cli(rl_train.main, ["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {run} is a supervised run: use python -m maml_sl.train --resume {run}\n"


def test_resuming_a_run_that_did_more_says_how_many_it_did(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(sl_train.main, [*SINUSOID[2:], "--iterations", "3", "--run-dir", str(run)]) == 0
    capsys.readouterr()
    assert cli(sl_train.main, ["--resume", str(run), "--iterations", "2"]) == 0
    assert f"{run} has done 3 iterations already" in capsys.readouterr().out


def test_auto_on_resume_keeps_what_the_run_chose(tmp_path):
    run = tmp_path / "run"
    assert cli(rl_train.main, [*CHEETAH, "--iterations", "1", "--run-dir", str(run)]) == 0
    chosen = read_toml(run / "config.toml")
    assert cli(rl_train.main, ["--resume", str(run), "--iterations", "2", "--horizon", "auto"]) == 0
    assert read_toml(run / "config.toml") == {**chosen, "iterations": 2}


def test_a_settings_file_takes_auto_where_the_run_may_choose():
    assert from_dict(TrainConfig, {"horizon": "auto"}, "file").horizon is None
    with pytest.raises(UsageError, match='horizon = .long. is a str; expected a int or "auto"'):
        from_dict(TrainConfig, {"horizon": "long"}, "file")
    with pytest.raises(UsageError, match="expected a int$"):
        from_dict(TrainConfig, {"meta_batch": "auto"}, "file")


def test_a_runs_file_that_says_0_for_auto_still_resumes_and_evaluates(tmp_path):
    run = tmp_path / "run"
    assert cli(rl_train.main, [*CHEETAH, "--iterations", "1", "--run-dir", str(run)]) == 0
    text = (run / "config.toml").read_text().replace("frame_skip = 1", "frame_skip = 0")
    (run / "config.toml").write_text(text.replace("horizon = 5", "horizon = 0"))
    config = read_run_config(run, TrainConfig, "evaluate")
    assert config.frame_skip is None and config.horizon is None
    with pytest.raises(UsageError, match="--horizon must be positive or auto, got 0"):
        from_dict(TrainConfig, {"horizon": 0}, "file")  # a user's 0 is still refused
    assert cli(rl_train.main, ["--resume", str(run), "--iterations", "2"]) == 0
    resolved = read_toml(run / "config.toml")
    assert (resolved["horizon"], resolved["frame_skip"]) == (200, 5)  # the env's: what 0 meant


def test_a_torchrun_restart_resumes_an_rl_run_whose_settings_were_auto(tmp_path, monkeypatch):
    run = tmp_path / "run"
    args = ["--env", "navigation-2d", "--meta-batch", "2", "--rollouts", "2", "--hidden", "8"]
    args += ["--device", "cpu", "--val-every", "0", "--iterations", "2", "--run-dir", str(run)]
    assert cli(rl_train.main, [*args[:-4], "--iterations", "1", "--run-dir", str(run)]) == 0
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    config, path, resume = parse_train_args(args, TrainConfig, "train", "", "env")
    assert resume and path == run
    assert (config.horizon, config.fisher_fraction) == (100, 0.2)  # what the run chose
