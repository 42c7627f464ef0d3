"""Task families a user brings (a Gymnasium id or module:Class with sample_tasks and set_task):
their batch against single envs, success accounting, and training, evaluation and resume on
them through the commands."""

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from envs import PythonFamily, PythonTaskEnv, family_class
from maml.run.checkpoint import load_checkpoint
from maml.run.folder import folder_name
from maml.run.saved import read_run_config
from maml_rl import evaluate as evaluate_cli
from maml_rl import train as train_cli
from maml_rl.config import TrainConfig
from maml_rl.episodes import Episodes
from maml_rl.evaluate import new_tasks
from maml_rl.policies import make_policy
from maml_rl.sampler import Sampler
from maml_rl.trainer import VAL_SEED_OFFSET
from tests.conftest import cli
from tests.task_families import Countdown, PendulumMass

PENDULUM = "tests.task_families:PendulumMass"
TINY = ["--meta-batch", "3", "--rollouts", "2", "--hidden", "8", "--device", "cpu"]
TINY += ["--cg-iterations", "3", "--val-every", "0", "--checkpoint-every", "1"]


@pytest.mark.parametrize(
    "name, horizon",
    [
        (PENDULUM, 20),  # the class's horizon
        ("tests/PendulumMass-v0", 20),  # registered on importing tests.task_families
        ("tests.task_families:tests/PendulumMass-v0", 20),  # module:id imports, then makes
    ],
)
def test_a_family_is_named_by_class_or_gymnasium_id(name, horizon):
    family = family_class(name)
    assert isinstance(family, PythonFamily) and family.horizon == horizon
    assert family_class(family) is family and family_class(name) is family
    tasks = family.sample_tasks(4, np.random.default_rng(0))
    assert tasks.shape == (4, 1)
    np.testing.assert_array_equal(
        tasks[:, 0], PendulumMass().sample_tasks(4, np.random.default_rng(0))
    )
    env = family()
    env.unwrapped.set_task(1.5)
    assert env.unwrapped.m == 1.5


@pytest.mark.parametrize(
    "env, message",
    [
        ("tests.task_families:Missing", "tests.task_families has no Missing"),
        ("tests.no_such_module:Env", "cannot import tests.no_such_module"),
        ("tests.task_families:NoSetTask", "lacks set_task; a family needs sample_tasks and"),
        ("Pendulum-v1", "lacks sample_tasks and set_task"),
        ("numpy:ndarray", "is <class 'numpy.ndarray'>, not a gymnasium.Env class"),
        ("cheetah", "unknown task family 'cheetah'; allowed: navigation-2d,"),
    ],
)
def test_a_bad_family_is_one_line_exit_2(env, message, capsys, tmp_path):
    assert cli(train_cli.main, ["--env", env, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_metaworld_without_the_extra_names_the_install(capsys, tmp_path):
    pytest.importorskip("envs.metaworld")
    try:
        import metaworld  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("metaworld is installed")
    assert cli(train_cli.main, ["--env", "metaworld-ml1-reach"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e '.[metaworld]'" in err and err.count("\n") == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_the_batch_steps_each_copy_as_its_single_env(workers):
    family = family_class(PENDULUM)
    tasks = family.sample_tasks(5, np.random.default_rng(1))
    actions = np.random.default_rng(2).uniform(-2, 2, size=(25, 5, 1))
    batch = PythonTaskEnv(family, 5, workers=workers)
    try:
        batch.set_tasks(tasks)
        obs, _ = batch.reset(seed=[7, 8, 9, 10, 11])
        steps = [batch.step(a) for a in actions]
    finally:
        batch.close()
    for i in range(5):
        env = PendulumMass()
        env.set_task(float(tasks[i, 0]))
        first, _ = env.reset(seed=7 + i)
        np.testing.assert_array_equal(obs[i], first)
        for t in range(20):
            single_obs, reward, *_ = env.step(actions[t, i].astype(np.float32))
            np.testing.assert_array_equal(steps[t][0][i], single_obs)
            assert steps[t][1][i] == reward
        # After the horizon (20): truncated once, then frozen with reward 0 until reset.
        assert steps[19][3][i] and not steps[20][3][i]
        assert all(s[1][i] == 0 and (s[0][i] == single_obs).all() for s in steps[20:])


def test_an_ended_episode_stays_ended_and_reports_its_successes():
    batch = PythonTaskEnv(family_class("tests.task_families:Countdown"), 3, workers=1)
    batch.set_tasks([0.0, 3.0, 4.0])
    batch.reset(seed=0)
    seen = [batch.step(np.zeros((3, 1))) for _ in range(8)]
    successes = np.array([info["success"] for *_, info in seen])
    # Countdown ends its episodes at step 6 (terminated); nan: no step, no report.
    np.testing.assert_array_equal(successes[:, 1], [0, 0, 1, 0, 1, 0, np.nan, np.nan])
    np.testing.assert_array_equal(successes[:, 2], [0, 0, 0, 1, 0, 1, np.nan, np.nan])
    assert [bool(s[2][0]) for s in seen] == [False] * 5 + [True, False, False]
    assert batch.reports_success


def test_success_rates_count_an_episode_once_and_never_its_padding():
    # Hand-made: task 0's episodes succeed at steps 1 and 2 / never; task 1's second episode
    # succeeds only after it ended (masked), its third is padding.
    mask = torch.tensor([[[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]]] * 2, dtype=torch.float32)
    mask[1, 1, 2:] = 0
    successes = torch.zeros(2, 3, 4)
    successes[0, 0, 1:3] = 1
    successes[1, 0, 0] = 1
    successes[1, 1, 3] = 1
    zeros = torch.zeros(2, 3, 4)
    episodes = Episodes(zeros[..., None], zeros[..., None], zeros, mask, zeros, zeros, successes)
    torch.testing.assert_close(episodes.success_per_task(), torch.tensor([0.5, 0.5]))


@pytest.mark.parametrize("sampling", ["episodes", "steps"])
def test_the_sampler_counts_each_episodes_success(sampling):
    env = Countdown()
    policy = make_policy(env.observation_space, env.action_space, (4,), "tanh")
    params = dict(policy.named_parameters())
    with Sampler("tests.task_families:Countdown", 3, 2, nthread=2, sampling=sampling) as sampler:
        sampler.set_tasks(np.array([0.0, 3.0, 7.0]))
        episodes = sampler.sample(policy, params, per_task=False, seed=0)
        assert sampler.reports_success
    # Task 7 would succeed at step 7, after its episodes' end at 6; "steps": 16 steps per task,
    # episodes of 6: two whole and one cut at the horizon of 8 (kept: started under budget).
    torch.testing.assert_close(episodes.success_per_task(), torch.tensor([0.0, 1.0, 0.0]))
    assert episodes.mask.sum(-1).max() == 6


def test_training_evaluation_and_resume_on_a_users_family(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--env", "tests.task_families:Countdown", *TINY]
    assert cli(train_cli.main, [*common, "--iterations", "3", "--run-dir", str(straight)]) == 0
    assert cli(train_cli.main, [*common, "--iterations", "2", "--run-dir", str(split)]) == 0
    assert cli(train_cli.main, ["--resume", str(split), "--iterations", "3"]) == 0
    a = load_checkpoint(straight / "checkpoint.pt")["learner"]
    b = load_checkpoint(split / "checkpoint.pt")["learner"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    config = (straight / "config.toml").read_text()
    assert 'env = "tests.task_families:Countdown"' in config and "horizon = 8" in config
    assert "frame_skip" not in config
    capsys.readouterr()
    assert cli(evaluate_cli.main, [str(straight), "--tasks", "4", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    # The family's own test tasks (4 and 5) succeed in every episode, whatever the policy.
    assert "success rate over test tasks" in out
    assert "after 0 steps:  100.0% ± 0.0" in out and "after 1 step:  100.0% ± 0.0" in out


def test_training_logs_success_and_validates_on_training_tasks(tmp_path):
    run = tmp_path / "run"
    args = ["--env", "tests.task_families:Countdown", *TINY, "--iterations", "2"]
    assert cli(train_cli.main, [*args, "--val-every", "2", "--run-dir", str(run)]) == 0
    events = EventAccumulator(str(run)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"success/before_adaptation", "success/after_1_steps"} <= tags
    # Success depends on the task only: task 3's episodes succeed, tasks 0 and 7's never.
    config = read_run_config(run, TrainConfig, "train")
    for step, rate in enumerate(
        [e.value for e in events.Scalars(f"val/success_after_{k}_steps")] for k in range(4)
    ):
        tasks = new_tasks(config.env, config.val_tasks, config.seed + VAL_SEED_OFFSET, "train")
        assert set(tasks[:, 0]) <= {0.0, 3.0, 7.0}, "validation reads the training tasks"
        assert rate == [pytest.approx(np.mean(tasks[:, 0] == 3.0))], step


def test_a_family_name_becomes_one_folder_name():
    assert folder_name("tests.task_families:Countdown") == "tests.task_families-Countdown"
    assert folder_name("ns/Env-v0") == "ns-Env-v0" and folder_name("halfcheetah-vel") == (
        "halfcheetah-vel"
    )
