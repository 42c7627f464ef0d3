"""A trained run from Python: maml_rl.load / maml_sl.load, adapting a policy to one task, acting
with it, and the README's and docstrings' examples run as written."""

import math
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the task families)
import maml_rl
import maml_sl
from maml.run.checkpoint import load_checkpoint
from maml_rl import train as rl_train
from maml_rl.episodes import with_advantages
from maml_rl.sampler import Sampler
from maml_rl.trained import adaptation
from maml_sl import train as sl_train
from tests.conftest import cli

README = Path(__file__).parents[1] / "README.md"
TINY_RL = ["--meta-batch", "3", "--rollouts", "2", "--horizon", "5", "--hidden", "8"]
TINY_RL += ["--device", "cpu", "--cg-iterations", "3", "--iterations", "1"]


def train(main, args):
    assert cli(main, args) == 0


@pytest.fixture(scope="module")
def rl_runs(tmp_path_factory):
    """Tiny runs of one iteration: navigation-2d and halfcheetah-vel."""
    runs = {}
    for env in ("navigation-2d", "halfcheetah-vel"):
        runs[env] = tmp_path_factory.mktemp("runs") / env
        train(rl_train.main, ["--env", env, *TINY_RL, "--run-dir", str(runs[env])])
    return runs


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    """A tiny sinusoid run of one iteration."""
    run = tmp_path_factory.mktemp("runs") / "sine"
    args = ["--meta-batch", "4", "--val-tasks", "4", "--device", "cpu", "--iterations", "1"]
    train(sl_train.main, [*args, "--figure-every", "100", "--run-dir", str(run)])
    return run


def python_blocks(text: str) -> list[str]:
    """The code of every ```python block in markdown, or every ``::`` block of a docstring."""
    fenced = re.findall(r"```python\n(.*?)```", text, re.S)
    literal = re.findall(r"::\n\n((?:        .*\n|\n)+)", text)
    return fenced + [re.sub(r"^        ", "", block, flags=re.M) for block in literal]


def test_the_readme_loads_a_run_adapts_to_a_task_and_acts_in_a_gymnasium_env(rl_runs):
    (example,) = [b for b in python_blocks(README.read_text()) if "maml_rl.load(" in b]
    placeholder = '"runs/halfcheetah-vel-<timestamp>"'
    assert placeholder in example
    scope = {}
    exec(example.replace(placeholder, repr(str(rl_runs["halfcheetah-vel"]))), scope)
    meta = scope["trained"].learner.meta_params()
    assert any(not torch.equal(scope["params"][n], p) for n, p in meta.items())
    assert scope["truncated"] and scope["env"].unwrapped.get_task().tolist() == [1.5]
    assert math.isfinite(scope["episode_return"])


def test_the_load_docstrings_examples_run(rl_runs, sine_run):
    (example,) = python_blocks(maml_rl.load.__doc__)
    scope = {}
    exec(example.replace('"runs/nav"', repr(str(rl_runs["navigation-2d"]))), scope)
    assert scope["env"].action_space.contains(scope["action"].astype(np.float32))
    (example,) = python_blocks(maml_sl.load.__doc__)
    scope = {}
    exec(example.replace('"runs/sine"', repr(str(sine_run))), scope)
    assert scope["predictions"].shape == (100, 1)


def test_load_gives_the_runs_learner_model_and_config(rl_runs, sine_run):
    run = rl_runs["navigation-2d"]
    learner, policy, config = maml_rl.load(run, device="cpu")
    assert policy is learner.model and config.env == "navigation-2d" and config.hidden == 8
    saved = load_checkpoint(run / "checkpoint.pt")["learner"]
    for name, value in learner.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)

    trained = maml_sl.load(sine_run, device="cpu")
    assert trained.model is trained.learner.model and trained.config.task == "sinusoid"
    assert trained.setup.measure_names == ("loss",)
    saved = load_checkpoint(sine_run / "checkpoint.pt")["learner"]
    for name, value in trained.learner.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)


def reinforce_step(policy, params, episodes, config, step_size):
    """A reference inner step: REINFORCE with the toolkit's advantages, a Gaussian's log density
    written out, and autograd, for one task's episodes (its first axis)."""
    episodes = with_advantages(episodes, config.gamma, config.gae_lambda)
    params = {n: p.detach().requires_grad_() for n, p in params.items()}
    out = torch.func.functional_call(policy, params, (episodes.observations[0],))
    mean, log_std = out.chunk(2, dim=-1)
    normal = torch.distributions.Normal(mean, log_std.exp())
    log_probs = normal.log_prob(episodes.actions[0]).sum(-1)
    mask = episodes.mask[0]
    loss = -(log_probs * episodes.advantages[0] * mask).sum() / mask.sum()
    grads = torch.autograd.grad(loss, list(params.values()))
    return {
        n: (p - step_size * g).detach() for (n, p), g in zip(params.items(), grads, strict=True)
    }


def test_adapting_to_a_task_takes_policy_gradient_steps_on_fresh_episodes_of_it(
    rl_runs, monkeypatch
):
    trained = maml_rl.load(rl_runs["navigation-2d"], device="cpu")
    tasks, samples = [], []
    set_tasks, sample = Sampler.set_tasks, Sampler.sample

    def recording_set_tasks(self, task_array):
        tasks.append(np.array(task_array))
        return set_tasks(self, task_array)

    def recording_sample(self, policy, params, per_task, seed):
        samples.append((dict(params), per_task, sample(self, policy, params, per_task, seed)))
        return samples[-1][2]

    monkeypatch.setattr(Sampler, "set_tasks", recording_set_tasks)
    monkeypatch.setattr(Sampler, "sample", recording_sample)
    goal = [0.3, -0.2]
    before, once, twice = adaptation(trained, goal, steps=2, step_sizes=[0.5, 0.2], rollouts=4)
    assert [t.tolist() for t in tasks] == [[goal]]
    for name, value in trained.learner.meta_params().items():
        assert torch.equal(before[name], value)
    assert len(samples) == 2 and samples[0][2].observations.shape[:2] == (1, 4)
    for (params, per_task, episodes), start, end, size, own in (
        (samples[0], before, once, 0.5, False),  # the meta-parameters, shared
        (samples[1], once, twice, 0.2, True),  # the task's own, a task axis of one
    ):
        assert per_task == own
        acting = {n: p[0] for n, p in params.items()} if own else params
        assert all(torch.equal(acting[n], start[n]) for n in start)
        expected = reinforce_step(trained.policy, start, episodes, trained.config, size)
        for name in expected:
            torch.testing.assert_close(end[name], expected[name], rtol=1e-5, atol=1e-6)
    last = maml_rl.adapt_to_task(trained, goal, steps=2, step_sizes=[0.5, 0.2], rollouts=4)
    assert all(torch.equal(last[n], twice[n]) for n in twice)  # the same seed, the same steps
    samples.clear()
    unadapted = maml_rl.adapt_to_task(trained, goal, steps=0)
    assert not samples and all(torch.equal(unadapted[n], before[n]) for n in before)
    with pytest.raises(ValueError, match="step sizes must be positive"):
        maml_rl.adapt_to_task(trained, goal, step_sizes=[0.0])


def test_act_rescales_the_policys_action_to_the_env_box_as_the_sampler_does(rl_runs):
    trained = maml_rl.load(rl_runs["navigation-2d"], device="cpu")
    params = trained.learner.meta_params()
    env = gym.make("navigation-2d")  # actions in [-0.1, 0.1]
    obs = np.array([0.2, -0.3])
    with torch.no_grad():
        mean, log_std = trained.policy(torch.tensor(obs, dtype=torch.float32)).chunk(2)
    action = maml_rl.act(trained.policy, params, obs, env.action_space)
    assert action.dtype == np.float64 and env.action_space.contains(action.astype(np.float32))
    np.testing.assert_allclose(action, np.clip(0.1 * mean.double().numpy(), -0.1, 0.1))
    drawn = maml_rl.act(
        trained.policy, params, obs, env.action_space, True, torch.Generator().manual_seed(3)
    )
    noise = torch.randn(2, generator=torch.Generator().manual_seed(3))
    expected = np.clip(0.1 * (mean + log_std.exp() * noise).double().numpy(), -0.1, 0.1)
    np.testing.assert_allclose(drawn, expected, rtol=1e-6)
    far = maml_rl.act(trained.policy, params, np.array([1e4, -1e4]), env.action_space)
    assert np.all(np.abs(far) <= 0.1)


@pytest.mark.cuda
def test_a_policy_loaded_on_cuda_adapts_and_acts_as_on_the_cpu(rl_runs):
    goal = [0.3, -0.2]
    trained = maml_rl.load(rl_runs["navigation-2d"], device="cuda")
    params = maml_rl.adapt_to_task(trained, goal, steps=1, rollouts=2)
    assert all(p.is_cuda for p in params.values())
    on_cpu = maml_rl.load(rl_runs["navigation-2d"], device="cpu")
    on_cpu = maml_rl.adapt_to_task(on_cpu, goal, steps=1, rollouts=2)
    for name, value in on_cpu.items():  # the same episodes: sampled on the CPU either way
        torch.testing.assert_close(params[name].cpu(), value, rtol=1e-4, atol=1e-5)
    env = gym.make("navigation-2d", task=goal)
    obs, _ = env.reset(seed=0)
    action = maml_rl.act(trained.policy, params, obs, env.action_space)
    assert env.action_space.contains(action.astype(np.float32))
