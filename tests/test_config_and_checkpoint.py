"""Config files, command-line settings and checkpoints: round trips and clear errors."""

import argparse

import pytest
import torch

from maml.msl import msl_weights
from maml.run.checkpoint import load_checkpoint, save_checkpoint
from maml.run.config import add_arguments, from_dict, read_toml, resolve_config, to_toml
from maml.run.errors import UsageError
from maml_sl.config import TrainConfig


def test_config_round_trips_through_toml(tmp_path):
    config = TrainConfig(iterations=7, first_order=True, learn_inner_lr="per_step", meta_lr=3e-4)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(config))
    assert from_dict(TrainConfig, read_toml(path), str(path)) == config


def test_unknown_config_key_names_the_key_and_the_allowed_ones(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("iterations = 5\nlearning_rate = 0.1\n")
    with pytest.raises(UsageError, match=rf"{path}: unknown key\(s\) learning_rate; allowed: task"):
        resolve_config(TrainConfig, {}, str(path))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"meta_batch": 0}, "--meta-batch must be positive, got 0"),
        ({"inner_lr": -0.1}, "--inner-lr must be positive, got -0.1"),
        ({"task": "cifar"}, "--task 'cifar' is not allowed; choose one of sinusoid"),
        ({"shots": 2.5}, "shots = 2.5 is a float; expected a int"),
        ({"first_order": 1}, "first_order = 1 is a int; expected a bool"),
    ],
)
def test_bad_values_are_named(values, message):
    with pytest.raises(UsageError, match=message):
        from_dict(TrainConfig, values, "test")


def test_flags_override_file_which_overrides_base(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("iterations = 5\nshots = 3\n")
    config = resolve_config(TrainConfig, {"shots": 4}, str(path), {"iterations": 9, "query": 2})
    assert (config.iterations, config.shots, config.query) == (5, 4, 2)


def test_command_line_flags_are_typed_and_absent_unless_given():
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    args = vars(parser.parse_args(["--meta-batch", "4", "--first-order", "--inner-lr", "0.5"]))
    assert args == {"meta_batch": 4, "first_order": True, "inner_lr": 0.5}
    with pytest.raises(UsageError, match="--shots 'ten' is not a valid int"):
        parser.parse_args(["--shots", "ten"])


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("iterations = = 3\n")
    with pytest.raises(UsageError, match=f"config file {path} is not valid TOML"):
        read_toml(path)
    with pytest.raises(UsageError, match="does not exist"):
        read_toml(tmp_path / "missing.toml")


def test_checkpoint_is_written_atomically_and_loads_without_running_code(tmp_path):
    path = tmp_path / "checkpoint.pt"
    state = {"iteration": 3, "weights": torch.arange(4.0), "nested": {"lr": 0.1, "steps": [1, 2]}}
    save_checkpoint(path, state)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    loaded = load_checkpoint(path)
    assert loaded["iteration"] == 3 and loaded["nested"] == state["nested"]
    torch.testing.assert_close(loaded["weights"], state["weights"])
    assert torch.load(path, weights_only=True)["iteration"] == 3


class _Arbitrary:
    pass


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(UsageError, match=f"checkpoint {garbage} is corrupt or not a checkpoint"):
        load_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    save_checkpoint(truncated, {"weights": torch.zeros(1000)})
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(UsageError, match="corrupt or not a checkpoint"):
        load_checkpoint(truncated)
    code = tmp_path / "code.pt"
    torch.save({"format": "maml-toolkit checkpoint v1", "object": _Arbitrary()}, code)
    with pytest.raises(UsageError, match="corrupt or not a checkpoint"):
        load_checkpoint(code)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(UsageError, match="not written by this toolkit"):
        load_checkpoint(foreign)


def test_multi_step_loss_weights_follow_the_maml_plus_plus_schedule():
    assert msl_weights(4, 0.0) == pytest.approx([0.25] * 4)
    end = msl_weights(4, 1.0)
    assert end[:3] == pytest.approx([0.03 / 4] * 3)
    assert sum(end) == pytest.approx(1.0)
    middle = msl_weights(4, 0.5)
    assert middle[0] == pytest.approx(0.125) and sum(middle) == pytest.approx(1.0)
    assert msl_weights(1, 0.3) == [1.0]


def test_a_failed_start_leaves_no_empty_run_directory(tmp_path):
    from maml.run.cli import run_training

    def failing(config, run_dir, resume):
        raise UsageError("--data-dir nowhere does not exist")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError):
        run_training(failing, None, empty, False)
    assert not empty.exists()
    written = tmp_path / "written"
    written.mkdir()
    (written / "config.toml").write_text("")
    with pytest.raises(UsageError):
        run_training(failing, None, written, False)
    assert (written / "config.toml").is_file()


def test_presets_come_from_a_source_checkout_when_not_installed(monkeypatch):
    import sys

    from maml.run.presets import preset_names, read_preset

    monkeypatch.setitem(sys.modules, "maml_configs", None)  # as if only on PYTHONPATH
    assert "halfcheetah-vel" in preset_names()
    assert read_preset("navigation-2d")["meta_batch"] == 20
