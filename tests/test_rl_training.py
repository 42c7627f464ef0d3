"""MAML-RL end to end at tiny sizes: adaptation, the TRPO step, learning, the command line."""

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maml.run.checkpoint import load_checkpoint
from maml_rl import train as train_cli
from maml_rl.adapt import adapted_params
from maml_rl.build import build
from maml_rl.config import TrainConfig
from maml_rl.meta_update import TRPOSettings, trpo_step
from maml_rl.trainer import sample_iteration
from tests.conftest import cli

TINY = ["--meta-batch", "3", "--rollouts", "2", "--horizon", "5", "--hidden", "8"]
TINY += ["--device", "cpu", "--nthread", "1", "--cg-iterations", "3"]


def run_train(args):
    return cli(train_cli.main, args)


def tiny_batch(inner_steps=1, env="navigation-2d", seed=0):
    config = TrainConfig(
        env=env,
        meta_batch=4,
        rollouts=5,
        horizon=20,
        hidden=16,
        inner_steps=inner_steps,
        device="cpu",
        nthread=1,
        seed=seed,
    )
    learner, sampler = build(config, torch.device("cpu"))
    try:
        train, valid, _, _ = sample_iteration(learner, sampler, config, 0, torch.device("cpu"))
    finally:
        sampler.close()
    return config, learner, train, valid


def test_policy_actions_in_unit_box_are_rescaled_to_the_env_box():
    # navigation-2d's box is [-0.1, 0.1]: a policy action a moves the point by 0.1 * clip(a, -1, 1)
    _, _, train, _ = tiny_batch()
    episodes = train[0]
    moved = episodes.observations[:, :, 1:] - episodes.observations[:, :, :-1]
    expected = 0.1 * episodes.actions[:, :, :-1].clamp(-1, 1)
    alive = episodes.mask[:, :, 1:].bool()
    assert alive.sum() > 50 and (episodes.actions.abs() > 1).any()
    torch.testing.assert_close(moved[alive], expected[alive], rtol=0, atol=1e-6)


def test_env_gets_actions_clipped_to_its_box_and_episodes_keep_the_policys_own():
    # As rllab's normalize: HalfCheetah's control cost sees the clipped torques.
    config = TrainConfig(env="halfcheetah-vel", meta_batch=2, rollouts=3, horizon=6, hidden=8)
    config.frame_skip, config.device, config.nthread = 1, "cpu", 1
    learner, sampler = build(config, torch.device("cpu"))
    sent = []
    step = sampler.env.step
    sampler.env.step = lambda actions: sent.append(actions.copy()) or step(actions)
    try:
        episodes = sampler.sample(learner.model, learner.meta_params(), per_task=False, seed=0)
    finally:
        sampler.close()
    sent = torch.as_tensor(np.stack(sent, axis=1)).view(2, 3, 6, -1)
    own = episodes.actions.double()
    assert (own.abs() > 1).any() and (sent.abs() <= 1).all()
    torch.testing.assert_close(sent, own.clamp(-1, 1), rtol=0, atol=0)


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_batched_adaptation_equals_a_loop_over_tasks(inner_steps):
    """Every task's parameters after each inner step, taken one step at a time for all tasks
    at once, are those of adapting each task alone by that many steps."""
    from torch.utils._pytree import tree_map

    from maml import PerStep

    config, learner, train, _ = tiny_batch(inner_steps)
    batched = adapted_params(learner, train)
    assert len(batched) == inner_steps
    for t in range(config.meta_batch):
        support = PerStep([tree_map(lambda x, t=t: x[t : t + 1], e) for e in train])
        for k in range(inner_steps):
            with torch.no_grad():
                one = learner.adapt(support, steps=k + 1)
            for name, value in one.items():
                torch.testing.assert_close(batched[k][name][t], value[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("env", ["navigation-2d", "halfcheetah-vel"])
def test_trpo_step_respects_the_trust_region_and_never_gets_worse(env):
    config, learner, train, valid = tiny_batch(env=env)
    before = [p.detach().clone() for p in learner.parameters()]
    settings = TRPOSettings(max_kl=0.01, cg_iterations=5)
    stats = trpo_step(learner, train, valid, settings, torch.Generator().manual_seed(0))
    assert stats["accepted"] == 1.0  # an untrained policy always has a step that helps
    assert any((p != q).any() for p, q in zip(learner.parameters(), before, strict=True))
    from maml import PerStep
    from maml_rl.losses import surrogate_and_kl

    with torch.no_grad():
        after = learner.step_losses(
            PerStep(train), valid, record=False, measure=surrogate_and_kl(type(learner.model))
        )[:, -1].mean(0)
    assert after[1].item() <= settings.max_kl + 1e-7
    assert 0 < after[1].item()
    assert after[0].item() == pytest.approx(stats["surrogate_after"], abs=1e-6)
    assert after[0].item() < stats["surrogate_before"]


def _surrogate_gradient(learner, train, valid):
    from maml import PerStep
    from maml_rl.losses import surrogate_and_kl

    values = learner.step_losses(
        PerStep(train), valid, record=False, measure=surrogate_and_kl(type(learner.model))
    )[:, -1].mean(0)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(values[0], learner.parameters())])


@pytest.mark.parametrize("env", ["navigation-2d", "halfcheetah-vel"])
def test_the_natural_meta_step_is_not_the_plain_gradient_and_stays_in_the_trust_region(env):
    _, learner, train, valid = tiny_batch(env=env)
    gradient = _surrogate_gradient(learner, train, valid)
    before = [p.detach().clone() for p in learner.parameters()]
    settings = TRPOSettings(max_kl=0.01, cg_iterations=5)
    stats = trpo_step(learner, train, valid, settings, torch.Generator().manual_seed(0))
    assert stats["accepted"] == 1.0
    assert 0 < stats["kl"] <= settings.max_kl
    moved = zip(learner.parameters(), before, strict=True)
    step = torch.cat([(p.detach() - q).reshape(-1) for p, q in moved])
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(step, -gradient, dim=0) < 0.99  # the natural step is another one


def test_a_rejected_step_leaves_the_policy_unchanged():
    _, learner, train, valid = tiny_batch()
    before = [p.detach().clone() for p in learner.parameters()]
    # a trust region so small that no step of the line search fits in it
    stats = trpo_step(
        learner,
        train,
        valid,
        TRPOSettings(max_kl=1e-30, line_search_steps=2),
        torch.Generator().manual_seed(0),
    )
    assert stats["accepted"] == 0.0
    for p, q in zip(learner.parameters(), before, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.slow
def test_short_meta_training_on_navigation_learns_to_adapt(tmp_path):
    run = tmp_path / "nav"
    args = ["--env", "navigation-2d", "--meta-batch", "10", "--rollouts", "10", "--hidden", "32"]
    args += ["--iterations", "25", "--device", "cpu", "--nthread", "1", "--run-dir", str(run)]
    assert run_train(args) == 0
    events = EventAccumulator(str(run))
    events.Reload()
    before = [e.value for e in events.Scalars("returns/before_adaptation")]
    after = [e.value for e in events.Scalars("returns/after_1_steps")]
    assert np.mean(after[-5:]) > np.mean(before[-5:])  # adaptation helps
    assert np.mean(after[-5:]) > np.mean(before[:3])  # and beats the initial policy


def test_training_can_sample_a_step_budget_as_the_authors_did(tmp_path):
    """--sampling steps: the episodes of one env per task until rollouts x horizon steps, before
    and after adaptation; an untrained Ant ends about half its episodes early, so there are more
    of them."""
    config = TrainConfig(env="ant-vel", meta_batch=4, rollouts=3, init="xavier", nthread=1)
    config.sampling = "steps"
    learner, sampler = build(config, torch.device("cpu"))
    try:
        train, valid, _, _ = sample_iteration(learner, sampler, config, 0, torch.device("cpu"))
    finally:
        sampler.close()
    assert sampler.steps_taken == sum(int(e.mask.sum()) for e in (*train, valid))  # none wasted
    for episodes in (*train, valid):
        steps = episodes.mask.sum(-1)
        assert (steps.sum(1) >= 600).all()  # per task, the 3 x 200 steps' budget
        assert (steps[steps > 0] < 200).any() and episodes.mask.shape[1] > 3
        lengths = episodes.lengths_per_task()
        assert (lengths < 200).any()
        for task, length in enumerate(lengths.tolist()):
            kept = [int(n) for n in steps[task] if n > 0]
            assert length == pytest.approx(sum(kept) / len(kept))
        assert torch.isfinite(episodes.advantages).all()
    run = tmp_path / "run"
    args = ["--env", "navigation-2d", *TINY, "--iterations", "2", "--sampling", "steps"]
    assert run_train([*args, "--run-dir", str(run)]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["config"]["sampling"] == "steps"


def test_every_preset_runs_two_iterations_and_resume_continues_exactly(tmp_path):
    for env in ("navigation-2d", "halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir"):
        run = tmp_path / env
        assert run_train(["--env", env, *TINY, "--iterations", "2", "--run-dir", str(run)]) == 0
        assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 2
        events = EventAccumulator(str(run))
        events.Reload()
        tags = events.Tags()["scalars"]
        for tag in (
            "returns/before_adaptation",
            "returns/after_1_steps",
            "episodes/length_before_adaptation",
            "episodes/length_after_1_steps",
            "charts/kl",
            "time/sampling_seconds",
            "charts/env_steps_per_second",
            "policy/std_before_adaptation",
            "policy/std_after_1_steps",
        ):
            assert tag in tags, (env, tag)
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--env", "navigation-2d", *TINY, "--checkpoint-every", "1"]
    assert run_train([*common, "--iterations", "4", "--run-dir", str(straight)]) == 0
    assert run_train([*common, "--iterations", "2", "--run-dir", str(split)]) == 0
    at_two = load_checkpoint(split / "checkpoint.pt")["learner"]["model.log_std"]
    assert run_train(["--resume", str(split), "--iterations", "4"]) == 0
    a = load_checkpoint(straight / "checkpoint.pt")["learner"]
    b = load_checkpoint(split / "checkpoint.pt")["learner"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    # The logged std is the policy's that sampled: the initial one (std 1), then the one after
    # the first two updates (the split run's checkpoint at 2) at the third.
    events = EventAccumulator(str(straight)).Reload()
    std = {e.step: e.value for e in events.Scalars("policy/std_before_adaptation")}
    after = {e.step: e.value for e in events.Scalars("policy/std_after_1_steps")}
    assert std[1] == pytest.approx(1.0)
    assert std[3] == pytest.approx(at_two.exp().mean().item())
    assert all(v > 0 and v != pytest.approx(std[k]) for k, v in after.items())


def test_a_run_config_with_retired_settings_reads_only_at_the_value_still_trained(tmp_path):
    from maml.run.config import to_toml
    from maml.run.errors import UsageError
    from maml.run.saved import read_run_config

    text = to_toml(TrainConfig(env="navigation-2d"))
    (tmp_path / "config.toml").write_text(text + 'meta_step = "natural"\n')
    assert read_run_config(tmp_path, TrainConfig, "evaluate") == TrainConfig(env="navigation-2d")
    (tmp_path / "config.toml").write_text(text + 'fisher_subsample = "tasks"\n')
    with pytest.raises(UsageError, match="fisher_subsample = 'tasks' is not offered"):
        read_run_config(tmp_path, TrainConfig, "evaluate")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "cheetah"], "--env: unknown task family 'cheetah'; allowed: navigation-2d"),
        (["--meta-batch", "0"], "--meta-batch must be positive"),
        (["--fisher-fraction", "1.5"], "--fisher-fraction must be in"),
        (["--frame-skip", "-1"], "--frame-skip must be positive or auto, got -1"),
        (["--env", "navigation-2d", "--frame-skip", "2"], "MuJoCo families only"),
        (["--init", "he"], "--init 'he' is not allowed"),
        (["--meta-step", "gradient"], "unrecognized arguments: --meta-step"),
    ],
)
def test_bad_settings_exit_2_with_a_message(args, message, capsys, tmp_path):
    assert run_train([*args, "--run-dir", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_reports_returns_per_step_and_plots(tmp_path, capsys):
    from maml_rl import evaluate as evaluate_cli
    from maml_rl import paper as paper_cli

    run = tmp_path / "run"
    assert (
        run_train(["--env", "navigation-2d", *TINY, "--iterations", "1", "--run-dir", str(run)])
        == 0
    )
    capsys.readouterr()
    plot = tmp_path / "returns.png"
    assert (
        cli(evaluate_cli.main, [str(run), "--tasks", "3", "--steps", "2", "--plot", str(plot)]) == 0
    )
    out = capsys.readouterr().out
    assert "after 0 steps" in out and "after 2 steps" in out and "after 3" not in out
    assert plot.stat().st_size > 0
    budget = [str(run), "--tasks", "3", "--steps", "1", "--rollouts", "2", "--budget", "500"]
    assert cli(paper_cli.main, budget) == 0
    assert "after 1 step" in capsys.readouterr().out
    assert cli(paper_cli.main, [*budget[:-1], "0"]) == 2
    assert "--budget must be positive, got 0" in capsys.readouterr().err
    assert cli(evaluate_cli.main, budget) == 2  # the paper's sampler is paper's option only
    assert "unrecognized arguments: --budget 500" in capsys.readouterr().err
    assert cli(evaluate_cli.main, [str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _report_means(out: str) -> list[list[float]]:
    """The means of each block of ``after N steps`` lines of an evaluate report."""
    blocks: list[list[float]] = []
    for line in out.splitlines():
        if line.startswith("  after "):
            blocks[-1].append(float(line.split(":")[1].split("±")[0]))
        else:
            blocks.append([])
    return [b for b in blocks if b]


def test_evaluate_against_another_run_pairs_tasks_and_episodes(tmp_path, capsys):
    from maml_rl import paper as paper_cli

    run = tmp_path / "run"
    assert (
        run_train(["--env", "navigation-2d", *TINY, "--iterations", "1", "--run-dir", str(run)])
        == 0
    )
    settings = ["--tasks", "4", "--steps", "2", "--rollouts", "2", "--against", str(run)]
    assert cli(paper_cli.main, [str(run), *settings]) == 0  # against itself: the same episodes
    out = capsys.readouterr().out
    assert f"this policy minus {run} (mean ± 95% interval over tasks, paired)" in out
    mine, theirs, difference = _report_means(out)
    assert mine == theirs and len(mine) == 3
    assert difference == [0.0, 0.0, 0.0] and out.count("0.00 ± 0.00") == 3
    assert (
        cli(paper_cli.main, ["--untrained", "navigation-2d", "--init-seed", "5", *settings]) == 0
    )  # another policy: the mean of the differences
    mine, theirs, difference = _report_means(capsys.readouterr().out)
    assert mine != theirs
    assert difference == pytest.approx(
        [a - b for a, b in zip(mine, theirs, strict=True)], abs=0.011
    )
    assert cli(paper_cli.main, ["--untrained", "halfcheetah-vel", *settings]) == 2
    assert f"--against {run} is a navigation-2d run; this one is halfcheetah-vel" in (
        capsys.readouterr().err
    )


def test_evaluate_an_untrained_policy_the_papers_random_baseline(capsys):
    from maml_rl import paper as paper_cli
    from maml_rl.paper import untrained_learner

    args = ["--untrained", "navigation-2d", "--tasks", "2", "--steps", "1", "--rollouts", "2"]
    assert cli(paper_cli.main, [*args, "--init", "xavier", "--step-sizes", "1.0"]) == 0
    assert "after 1 step" in capsys.readouterr().out
    learner, config = untrained_learner("navigation-2d", "xavier", 3, torch.device("cpu"))
    again, _ = untrained_learner("navigation-2d", "xavier", 3, torch.device("cpu"))
    assert config.init == "xavier" and config.seed == 3 and config.meta_batch == 20
    for name, value in learner.meta_params().items():  # the seed fixes the initialisation
        torch.testing.assert_close(value, again.meta_params()[name], rtol=0, atol=0)
    for bad, message in [
        (["--untrained", "cartpole"], "--untrained 'cartpole' is unknown; allowed: navigation-2d"),
        ([], "give a run directory or --untrained ENV"),
        (["somewhere", "--untrained", "ant-vel"], "give a run directory or --untrained ENV"),
    ]:
        assert cli(paper_cli.main, bad) == 2
        assert message in capsys.readouterr().err


def test_evaluation_follows_each_familys_test_script():
    from maml_rl.evaluate import default_rollouts, default_step_sizes

    expected = {  # cbfinn/maml_rl maml_examples/test_maml_*.py: batch_size, later step sizes
        "navigation-2d": (40, [0.1, 0.05]),
        "halfcheetah-vel": (20, [0.1, 0.05]),
        "halfcheetah-dir": (20, [0.1, 0.05]),
        "ant-vel": (20, [0.1, 0.05]),
        "ant-dir": (40, [0.1, 0.001]),
    }
    for env, (rollouts, step_sizes) in expected.items():
        config = TrainConfig(env=env, inner_lr=0.1)
        assert default_rollouts(config) == rollouts
        assert default_step_sizes(config) == pytest.approx(step_sizes)
    assert default_rollouts(TrainConfig(env="halfcheetah-vel", horizon=100)) == 40


def test_paper_tasks_are_the_authors_test_goals(capsys):
    from maml_rl import paper as paper_cli
    from maml_rl.evaluate import returns_after_steps
    from maml_rl.paper import paper_tasks, untrained_learner

    first_draw_of_seed_1 = 0.417022004702574  # np.random.seed(1); np.random.uniform()
    ant = paper_tasks("ant-vel")
    assert ant.shape == (40, 1) and ant[0, 0] == pytest.approx(3.0 * first_draw_of_seed_1)
    assert paper_tasks("navigation-2d")[0, 0] == pytest.approx(first_draw_of_seed_1 - 0.5)
    assert np.abs(paper_tasks("navigation-2d")).max() <= 0.5
    cheetah = paper_tasks("halfcheetah-dir")  # the authors' pkl: 22 backward, 18 forward tasks
    assert set(np.unique(cheetah)) == {-1.0, 1.0} and (cheetah < 0).sum() == 22
    # The authors' ant-dir pkl: 20 backward, 20 forward, the first task forward (0.1 + 0.7 x seed
    # 2's first draw 0.436 is just above 0.4; 3 x 0.436 would be under the final env's 1.5).
    ant_dir = paper_tasks("ant-dir")
    assert set(np.unique(ant_dir)) == {-1.0, 1.0} and (ant_dir < 0).sum() == 20
    assert ant_dir[0, 0] == 1.0

    learner, config = untrained_learner("navigation-2d", None, 0, torch.device("cpu"))
    goals = np.array([[0.5, 0.5], [0.01, 0.0]])  # far from the start at the origin, and near
    returns = returns_after_steps(learner, config, 2, 0, [0.1], 0, 2, goals)
    swapped = returns_after_steps(learner, config, 2, 0, [0.1], 0, 2, goals[::-1])
    assert returns[0, 0] < returns[0, 1] and swapped[0, 1] < swapped[0, 0]
    with pytest.raises(ValueError, match="task_array has 2 tasks, expected 3"):
        returns_after_steps(learner, config, 3, 0, [0.1], 0, 2, goals)
    args = ["--untrained", "navigation-2d", "--paper-tasks", "--steps", "0", "--rollouts", "1"]
    assert cli(paper_cli.main, args) == 0
    assert "navigation-2d: the MAML paper's 40 test tasks" in capsys.readouterr().out
    assert cli(paper_cli.main, [*args, "--tasks", "3"]) == 2
    assert "--paper-tasks are the paper's 40; drop --tasks 3" in capsys.readouterr().err


def test_evaluation_in_blocks_of_tasks_draws_what_one_sampler_would():
    import dataclasses
    from functools import partial

    from maml_rl.evaluate import outcomes_after_steps, returns_after_steps
    from maml_rl.paper import sample_lockstep, untrained_learner

    learner, config = untrained_learner("navigation-2d", None, 0, torch.device("cpu"))
    # Whole episodes; the run's step budget (--sampling steps: rollouts x horizon steps per
    # task, as in training); the authors' test-time sampler with 300 steps: several rounds of
    # episodes that end at the goal.
    steps_config = dataclasses.replace(config, sampling="steps")
    lockstep = partial(sample_lockstep, budget=300)
    for run_config, sample in ((config, None), (steps_config, None), (config, lockstep)):
        whole, whole_lengths, _ = outcomes_after_steps(
            learner, run_config, 5, 2, [0.5], 3, 2, block=5, sample=sample
        )
        blocks = returns_after_steps(learner, run_config, 5, 2, [0.5], 3, 2, block=2, sample=sample)
        assert whole.shape == whole_lengths.shape == (3, 5)
        torch.testing.assert_close(blocks, whole, rtol=1e-5, atol=1e-3)
        assert ((whole_lengths >= 1) & (whole_lengths <= 100)).all()
    with pytest.raises(ValueError, match="block must be positive, got 0"):
        returns_after_steps(learner, config, 5, 0, [0.5], 3, 2, block=0)


def test_evaluation_reports_the_mean_episode_length():
    from maml_rl.evaluate import outcomes_after_steps
    from maml_rl.paper import untrained_learner

    # HalfCheetahs never end early: every episode is the horizon long, before and after steps.
    learner, config = untrained_learner("halfcheetah-vel", None, 0, torch.device("cpu"))
    _, lengths, _ = outcomes_after_steps(learner, config, 2, 1, [0.1], 0, 2)
    assert torch.equal(lengths, torch.full((2, 2), 200.0))
    # An untrained Ant ends about half its episodes early, by its torso rising above 1 m.
    learner, config = untrained_learner("ant-vel", None, 0, torch.device("cpu"))
    _, lengths, _ = outcomes_after_steps(learner, config, 2, 0, [0.1], 0, 4)
    assert lengths.max() <= 200 and lengths.min() < 200


@pytest.mark.parametrize("estimator", ["dice", "lvc"])
def test_an_inner_estimator_takes_reinforces_step_and_changes_only_second_order_updates(estimator):
    """The estimators share REINFORCE's gradient: the sampler's adapted parameters and a
    first-order update are REINFORCE's; a second-order update differs (its Hessian)."""

    def update(name, first_order):
        config = TrainConfig(
            env="navigation-2d",
            meta_batch=3,
            rollouts=4,
            horizon=10,
            hidden=16,
            device="cpu",
            nthread=1,
            inner_estimator=name,
            first_order=first_order,
        )
        learner, sampler = build(config, torch.device("cpu"))
        with sampler:
            train, valid, adapted, _ = sample_iteration(
                learner, sampler, config, 0, torch.device("cpu")
            )
        settings = TRPOSettings(cg_iterations=3, cg_damping=0.01, fisher_fraction=1.0)
        trpo_step(learner, train, valid, settings, torch.Generator().manual_seed(0), adapted)
        step = torch.cat([p.detach().reshape(-1) for p in learner.parameters()])
        return adapted[-1], step

    for first_order in (True, False):
        (adapted, step), (reference, reference_step) = (
            update(name, first_order) for name in (estimator, "reinforce")
        )
        for name in adapted:
            torch.testing.assert_close(adapted[name], reference[name], rtol=1e-5, atol=1e-6)
        if first_order:
            torch.testing.assert_close(step, reference_step, rtol=1e-4, atol=1e-6)
        else:
            assert (step - reference_step).abs().max() > 1e-4


def test_the_ppo_objectives_gradient_at_ratio_one_is_the_trpo_surrogates():
    from maml import PerStep
    from maml_rl.losses import surrogate_and_kl
    from maml_rl.ppo import PPOSettings, ppo_objective

    config, learner, train, valid = tiny_batch(inner_steps=2)
    params = list(learner.parameters())
    loss, kl = ppo_objective(learner, train, valid, PPOSettings(inner_kl_penalty=0.5))
    ppo = torch.autograd.grad(loss, params, allow_unused=True)
    measure = surrogate_and_kl(type(learner.model))
    surrogate = learner.step_losses(PerStep(train), valid, record=False, measure=measure)
    trpo = torch.autograd.grad(surrogate[:, -1, 0].mean(), params, allow_unused=True)
    assert kl.item() == pytest.approx(0.0, abs=1e-10)  # the sampler's own adapted policy
    for a, b in zip(ppo, trpo, strict=True):  # the inner KL penalty is flat there too
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_a_ppo_step_improves_the_clipped_objective_within_its_epochs():
    from maml_rl.ppo import PPOSettings, ppo_objective, ppo_step

    _, learner, train, valid = tiny_batch()
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
    settings = PPOSettings(epochs=4, clip=0.3, inner_kl_penalty=5e-4)
    stats = ppo_step(learner, optimizer, train, valid, settings)
    assert stats["surrogate_after"] < stats["surrogate_before"]
    assert 0 < stats["kl"]
    assert optimizer.state[next(iter(learner.parameters()))]["step"] == 4
    with torch.no_grad():
        loss, _ = ppo_objective(learner, train, valid, settings)
    assert loss.item() == pytest.approx(stats["surrogate_after"], abs=1e-6)


def test_a_ppo_run_resumes_exactly_with_its_optimizer(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--env", "navigation-2d", *TINY, "--checkpoint-every", "1"]
    common += ["--outer", "ppo", "--inner-estimator", "lvc", "--inner-kl-penalty", "5e-4"]
    assert run_train([*common, "--iterations", "3", "--run-dir", str(straight)]) == 0
    assert run_train([*common, "--iterations", "2", "--run-dir", str(split)]) == 0
    assert "optimizer" in load_checkpoint(split / "checkpoint.pt")
    assert run_train(["--resume", str(split), "--iterations", "3"]) == 0
    a = load_checkpoint(straight / "checkpoint.pt")["learner"]
    b = load_checkpoint(split / "checkpoint.pt")["learner"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    config = (straight / "config.toml").read_text()
    assert 'outer = "ppo"' in config and "max_kl" not in config and "ppo_epochs = 5" in config


@pytest.mark.parametrize(
    "algorithm, estimator, outer, penalty",
    [("promp", "lvc", "ppo", 5e-4), ("maml-ppo", "reinforce", "ppo", 0.0)],
)
def test_an_algorithm_preset_combines_with_the_familys(
    tmp_path, algorithm, estimator, outer, penalty
):
    from maml.run.presets import read_preset

    run = tmp_path / "run"
    args = ["--env", "navigation-2d", "--config", algorithm, "--iterations", "1"]
    args += ["--rollouts", "2", "--horizon", "5", "--meta-batch", "3", "--nthread", "1"]
    assert run_train([*args, "--device", "cpu", "--run-dir", str(run)]) == 0
    config = load_checkpoint(run / "checkpoint.pt")["config"]
    assert (config["inner_estimator"], config["outer"]) == (estimator, outer)
    assert config["inner_kl_penalty"] == penalty
    assert config["hidden"] == read_preset("navigation-2d")["hidden"]  # the family's
    assert "env" not in read_preset(algorithm)  # combines with every family
