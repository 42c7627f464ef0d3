"""The MAML-RL meta-training loop: sample, adapt, sample again, TRPO, log, checkpoint."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from envs import family_class
from envs.mujoco_task import MujocoTaskEnv
from maml.checkpoint import load_checkpoint, save_checkpoint
from maml.config import to_toml
from maml.errors import TrainingError, UsageError
from maml.inner_loop import Params
from maml.learner import MAML
from maml.runs import StopRequest, log_hyperparameters, resolve_device
from maml.threads import ThreadBudget
from maml_rl.config import TrainConfig
from maml_rl.episodes import Episodes, with_advantages
from maml_rl.losses import reinforce_loss
from maml_rl.meta_update import TRPOSettings, adapted_params, trpo_step
from maml_rl.policies import make_policy
from maml_rl.sampler import Sampler


def check_config(config: TrainConfig) -> None:
    """Bounds the dataclass metadata cannot say."""
    if not 0 <= config.fisher_fraction <= 1:
        raise UsageError(
            f"--fisher-fraction must be in (0, 1], or 0 for the device's default; got "
            f"{config.fisher_fraction}"
        )
    if not 0 <= config.gae_lambda <= 1:
        raise UsageError(f"--gae-lambda must be in [0, 1], got {config.gae_lambda}")
    if not 0 < config.gamma <= 1:
        raise UsageError(f"--gamma must be in (0, 1], got {config.gamma}")
    if config.frame_skip and not issubclass(family_class(config.env), MujocoTaskEnv):
        raise UsageError(
            f"--frame-skip applies to the MuJoCo families only, not {config.env}; got "
            f"{config.frame_skip} (use 0)"
        )
    for name in ("horizon", "frame_skip", "nthread"):
        if getattr(config, name) < 0:
            raise UsageError(
                f"--{name.replace('_', '-')} must be 0 (the default) or positive, "
                f"got {getattr(config, name)}"
            )


def build_learner(config: TrainConfig, device: torch.device) -> MAML:
    """A freshly initialised meta-learner around the policy for the family's spaces."""
    check_config(config)
    env = family_class(config.env)()
    torch.manual_seed(config.seed)
    policy = make_policy(
        env.observation_space,
        env.action_space,
        (config.hidden,) * config.depth,
        config.activation,
        config.init,
    ).to(device)
    env.close()
    return MAML(
        policy,
        reinforce_loss(type(policy)),
        inner_steps=config.inner_steps,
        inner_lr=config.inner_lr,
        first_order=config.first_order,
    )


def build(config: TrainConfig, device: torch.device) -> tuple[MAML, Sampler]:
    """The sampler and a freshly initialised meta-learner around the policy."""
    learner = build_learner(config, device)
    sampler = Sampler(
        config.env,
        config.meta_batch,
        config.rollouts,
        horizon=config.horizon or None,
        nthread=config.nthread or None,
        env_kwargs={"frame_skip": config.frame_skip} if config.frame_skip else None,
    )
    return learner, sampler


def trpo_settings(config: TrainConfig, device: torch.device) -> TRPOSettings:
    """The TRPO settings of ``config``, with the Fisher fraction of ``device`` where it is 0."""
    fraction = config.fisher_fraction or (1.0 if device.type == "cuda" else 0.2)
    return TRPOSettings(
        config.max_kl,
        config.cg_iterations,
        config.cg_damping,
        config.line_search_steps,
        config.line_search_ratio,
        fraction,
        direction=config.meta_step,
        fisher_subsample=config.fisher_subsample,
    )


def iteration_seeds(seed: int, iteration: int) -> np.random.SeedSequence:
    """Everything random in an iteration derives from (seed, iteration): resumes are exact."""
    return np.random.SeedSequence([seed, iteration])


def sample_iteration(
    learner: MAML, sampler: Sampler, config: TrainConfig, iteration: int, device: torch.device
) -> tuple[list[Episodes], Episodes, list[Params], dict[str, float]]:
    """Tasks, then train episodes for each inner step and valid episodes after adaptation.

    Also returns every task's parameters after each inner step (those the sampler ran) and the
    seconds spent sampling and adapting.
    """
    seeds = iteration_seeds(config.seed, iteration).generate_state(config.inner_steps + 2)
    sampler.set_tasks(sampler.sample_tasks(np.random.default_rng(int(seeds[0]))))
    times = {"sampling": 0.0, "adaptation": 0.0}
    train: list[Episodes] = []
    adapted: list[Params] = []
    for step in range(config.inner_steps + 1):
        started = time.perf_counter()
        if step == 0:
            params, per_task = learner.meta_params(), False
        else:
            params, per_task = adapted_params(learner, train), True
            adapted.append(params)
        times["adaptation"] += time.perf_counter() - started
        started = time.perf_counter()
        episodes = sampler.sample(learner.model, params, per_task, seed=int(seeds[step + 1]))
        times["sampling"] += time.perf_counter() - started
        started = time.perf_counter()
        episodes = with_advantages(episodes.to(device), config.gamma, config.gae_lambda)
        times["adaptation"] += time.perf_counter() - started
        train.append(episodes)
    return train[:-1], train[-1], adapted, times


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> Path:
    """Meta-train into ``run_dir``, or resume the run there; returns the checkpoint's path."""
    device = resolve_device(config.device)
    learner, sampler = build(config, device)
    settings = trpo_settings(config, device)
    checkpoint_path = run_dir / "checkpoint.pt"
    start, elapsed = 0, 0.0
    if resume:
        state = load_checkpoint(checkpoint_path, map_location=device)
        learner.load_state_dict(state["learner"])
        start, elapsed = state["iteration"], state["elapsed"]
    (run_dir / "config.toml").write_text(to_toml(config))
    started = time.perf_counter()

    def checkpoint(iteration: int) -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "iteration": iteration,
                "elapsed": elapsed + time.perf_counter() - started,
                "learner": learner.state_dict(),
                "config": dataclasses.asdict(config),
            },
        )

    writer = SummaryWriter(run_dir, purge_step=start if resume else None)
    if not resume:
        log_hyperparameters(writer, config)
    print(
        f"run {run_dir}: {config.env}, {config.meta_batch} tasks x {config.rollouts} episodes "
        f"x {sampler.horizon} steps, policy update on {device}"
    )
    progress = tqdm(total=config.iterations, initial=start, desc=config.env, unit="it")
    threads = ThreadBudget()
    try:
        with StopRequest() as stop:
            for iteration in range(start, config.iterations):
                iteration_started = time.perf_counter()
                writer.add_scalar("charts/torch_threads", threads.update(), iteration + 1)
                steps_before = sampler.steps_taken
                train_episodes, valid, adapted, times = sample_iteration(
                    learner, sampler, config, iteration, device
                )
                seeds = iteration_seeds(config.seed, iteration).generate_state(
                    config.inner_steps + 3
                )
                generator = torch.Generator().manual_seed(int(seeds[-1]))  # Fisher subsets
                good = {k: v.clone() for k, v in learner.state_dict().items()}
                update_started = time.perf_counter()
                stats = trpo_step(learner, train_episodes, valid, settings, generator, adapted)
                times["meta_update"] = time.perf_counter() - update_started
                finite = all(torch.isfinite(p).all() for p in learner.parameters())
                if not (finite and np.isfinite(stats["surrogate_before"])):
                    learner.load_state_dict(good)
                    checkpoint(iteration)
                    raise TrainingError(
                        f"the surrogate or the policy is not finite at iteration {iteration + 1}; "
                        f"stopped. The last good state (iteration {iteration}) is in "
                        f"{checkpoint_path}"
                    )
                done = iteration + 1
                returns = [e.returns_per_episode().mean().item() for e in (*train_episodes, valid)]
                _log(
                    writer,
                    done,
                    returns,
                    stats,
                    times,
                    sampler.steps_taken - steps_before,
                    elapsed + time.perf_counter() - started,
                )
                progress.update(1)
                progress.set_postfix(
                    before=f"{returns[0]:.1f}", after=f"{returns[-1]:.1f}", refresh=False
                )
                if done % config.checkpoint_every == 0 or done == config.iterations:
                    checkpoint(done)
                # The whole iteration, logging and checkpoint included (benchmarks.speed_rl).
                writer.add_scalar(
                    "time/iteration_seconds", time.perf_counter() - iteration_started, done
                )
                stop.honour(lambda d=done: checkpoint(d), done, run_dir, progress)
    finally:
        threads.restore()
        progress.close()
        writer.close()
        sampler.close()
    if start >= config.iterations:
        print(f"{run_dir} has finished its {config.iterations} iterations already")
    return checkpoint_path


def _log(writer, step, returns, stats, times, env_steps, wall) -> None:
    writer.add_scalar("returns/before_adaptation", returns[0], step)
    for k, value in enumerate(returns[1:], start=1):
        writer.add_scalar(f"returns/after_{k}_steps", value, step)
    writer.add_scalar("losses/surrogate_before_update", stats["surrogate_before"], step)
    writer.add_scalar("losses/surrogate_after_update", stats["surrogate_after"], step)
    writer.add_scalar("charts/kl", stats["kl"], step)
    writer.add_scalar("charts/line_search_steps", stats["line_search_steps"], step)
    writer.add_scalar("charts/step_accepted", stats["accepted"], step)
    writer.add_scalar("charts/env_steps_per_second", env_steps / max(times["sampling"], 1e-9), step)
    writer.add_scalar("charts/wall_time", wall, step)
    for name, seconds in times.items():
        writer.add_scalar(f"time/{name}_seconds", seconds, step)
