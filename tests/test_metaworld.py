"""Meta-World's ML1 and ML10 families (the [metaworld] extra; skipped without it): the train and
test split, the env, bad names, and training with resume on a short horizon."""

import pickle

import numpy as np
import pytest
import torch

from envs import PythonFamily, family_class
from maml.run.checkpoint import load_checkpoint
from maml_rl import train as train_cli
from tests.conftest import cli

pytest.importorskip("metaworld")

from envs.metaworld import MetaWorldEnv, benchmark_tasks  # noqa: E402


def _goals(tasks) -> set[bytes]:
    return {pickle.loads(task.data)["rand_vec"].tobytes() for task in tasks}


def test_ml1_draws_training_and_test_tasks_from_disjoint_sets():
    family = family_class("metaworld-ml1-reach")
    assert isinstance(family, PythonFamily) and family.horizon == 500
    train, test, _ = benchmark_tasks("ML1", "reach-v3")
    assert len(train) == len(test) == 50
    assert not _goals(train) & _goals(test), "a test goal among the training goals"
    rng = np.random.default_rng(0)
    drawn, held_out = family.sample_tasks(200, rng)[:, 0], family.sample_test_tasks(200, rng)[:, 0]
    assert set(drawn) <= set(range(50)) and set(held_out) <= set(range(50, 100))
    env = family()
    for number in (drawn[0], held_out[0]):
        env.set_task(number)
        chosen = env.tasks[int(number)]
        assert chosen in (train if number < 50 else test)
        assert (pickle.loads(chosen.data)["rand_vec"] == env.env._last_rand_vec).all()


def test_ml10_test_classes_are_not_training_classes_and_a_draw_covers_them_evenly():
    family = family_class("metaworld-ml10")
    train, test, classes = benchmark_tasks("ML10", None)
    train_names, test_names = {t.env_name for t in train}, {t.env_name for t in test}
    assert len(train_names) == 10 and len(test_names) == 5 and not train_names & test_names
    env = family()
    drawn = family.sample_tasks(20, np.random.default_rng(1))[:, 0]
    names = [env.tasks[int(k)].env_name for k in drawn]
    assert all(names.count(n) == 2 for n in train_names)
    assert names[:10] == names[10:], "copy i keeps its class from draw to draw"
    held_out = family.sample_test_tasks(10, np.random.default_rng(1))[:, 0]
    assert {env.tasks[int(k)].env_name for k in held_out} == test_names
    env.set_task(held_out[0])
    assert type(env.env) is classes[env.tasks[int(held_out[0])].env_name]


def test_an_episode_is_metaworlds_500_steps_with_success_in_its_info():
    env = MetaWorldEnv("ML1", "reach-v3")
    env.set_task(3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (39,) and (obs[-3:] == 0).all(), "the goal is hidden"
    for t in range(500):
        obs, reward, terminated, truncated, info = env.step(np.zeros(4, dtype=np.float32))
        assert 0 <= reward <= 10 and not terminated and "success" in info
        assert truncated == (t == 499)


@pytest.mark.parametrize(
    "env, message",
    [
        ("metaworld-ml1-nowhere", "unknown Meta-World family 'metaworld-ml1-nowhere'; allowed:"),
        ("metaworld-ml45", "unknown Meta-World family 'metaworld-ml45'"),
    ],
)
def test_a_bad_metaworld_name_is_one_line_exit_2(env, message, capsys):
    assert cli(train_cli.main, ["--env", env]) == 2
    err = capsys.readouterr().err
    assert message in err and "reach" in err and err.count("\n") == 1


def test_training_on_ml1_resumes_as_uninterrupted(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--env", "metaworld-ml1-reach", "--meta-batch", "2", "--rollouts", "2"]
    common += ["--horizon", "10", "--hidden", "8", "--device", "cpu", "--nthread", "2"]
    common += ["--cg-iterations", "3", "--val-every", "2", "--val-tasks", "2"]
    common += ["--checkpoint-every", "1"]
    assert cli(train_cli.main, [*common, "--iterations", "2", "--run-dir", str(straight)]) == 0
    assert cli(train_cli.main, [*common, "--iterations", "1", "--run-dir", str(split)]) == 0
    assert cli(train_cli.main, ["--resume", str(split), "--iterations", "2"]) == 0
    a = load_checkpoint(straight / "checkpoint.pt")["learner"]
    b = load_checkpoint(split / "checkpoint.pt")["learner"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
