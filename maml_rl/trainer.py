"""The MAML-RL meta-training loop: sample, adapt, sample again, TRPO, log, checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from envs import family_class, is_mujoco
from maml.inner_step import Params
from maml.learner import MAML
from maml.run import loop
from maml.run.distributed import ONE_PROCESS, Ranks
from maml.run.loop import Clock, NonFinite
from maml_rl.adapt import adapt_step
from maml_rl.build import build, mujoco_threads, resolved
from maml_rl.config import TrainConfig
from maml_rl.episodes import Episodes, with_advantages
from maml_rl.evaluate import default_step_sizes, new_tasks, outcomes_after_steps
from maml_rl.losses import inner_rows
from maml_rl.meta_update import TRPOSettings, trpo_step
from maml_rl.plots import returns_figure
from maml_rl.ppo import PPOSettings, ppo_step
from maml_rl.sampler import Sampler

VAL_STEPS = 3  # inner steps of a validation, as in the paper's figures
VAL_SEED_OFFSET = 10_007  # held-out tasks come from a seed of their own


def trpo_settings(config: TrainConfig) -> TRPOSettings:
    """The TRPO settings of ``config``."""
    return TRPOSettings(
        config.max_kl,
        config.cg_iterations,
        config.cg_damping,
        config.line_search_steps,
        config.line_search_ratio,
        config.fisher_fraction,
    )


def iteration_seeds(seed: int, iteration: int) -> np.random.SeedSequence:
    """Everything random in an iteration derives from (seed, iteration): resumes are exact."""
    return np.random.SeedSequence([seed, iteration])


def sample_iteration(
    learner: MAML,
    sampler: Sampler,
    config: TrainConfig,
    iteration: int,
    device: torch.device,
    ranks: Ranks = ONE_PROCESS,
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
        else:  # one more step from the last one's parameters
            params = adapt_step(learner, train[-1], adapted[-1] if adapted else None)
            per_task = True
            adapted.append(params)
        times["adaptation"] += time.perf_counter() - started
        started = time.perf_counter()
        seed = int(seeds[step + 1])
        episodes = sampler.sample(learner.model, params, per_task, seed)
        times["sampling"] += time.perf_counter() - started
        started = time.perf_counter()
        episodes = with_advantages(episodes.to(device), config.gamma, config.gae_lambda)
        times["adaptation"] += time.perf_counter() - started
        train.append(episodes)
    return train[:-1], train[-1], adapted, times


class RLTrainer:
    """The RL front end of :func:`maml.run.loop.run`: sample, adapt, sample again, TRPO."""

    def __init__(
        self, config: TrainConfig, device: torch.device, ranks: Ranks = ONE_PROCESS
    ) -> None:
        config = resolved(config, device)
        self.config, self.device, self.label, self.ranks = config, device, config.env, ranks
        self.learner, self.sampler = build(config, device, ranks)
        self.settings = trpo_settings(config)
        self.ppo = PPOSettings(config.ppo_epochs, config.ppo_clip, config.inner_kl_penalty)
        self.optimizer = None
        if config.outer == "ppo":
            self.optimizer = torch.optim.Adam(self.learner.parameters(), lr=config.outer_lr)

    def describe(self) -> str:
        config = self.config
        return (
            f"{config.env}, {config.meta_batch} tasks x {config.rollouts} episodes x "
            f"{self.sampler.horizon} steps, policy update on {self.device}"
        )

    def facts(self) -> dict[str, Any]:
        if "nthread" in self.config.inapplicable():
            return {}
        key = "mujoco_threads" if is_mujoco(family_class(self.config.env)) else "env_workers"
        return {key: mujoco_threads(self.config)}

    def state_dict(self) -> dict[str, Any]:
        # Everything random derives from (seed, iteration): the learner (and PPO's Adam) is the
        # whole state.
        state = {"learner": self.learner.state_dict()}
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])

    def metrics(self) -> list[str]:
        steps = range(1, self.config.inner_steps + 1)
        valid = [f"val/return_after_{k}_steps" for k in range(VAL_STEPS + 1)]
        return ["returns/before_adaptation", *(f"returns/after_{k}_steps" for k in steps), *valid]

    def iteration(
        self, iteration: int, writer: SummaryWriter | None, clock: Clock
    ) -> dict[str, str]:
        config, learner, sampler = self.config, self.learner, self.sampler
        started = time.perf_counter()
        done = iteration + 1
        steps_before = sampler.steps_taken
        traffic = self.ranks.counters()
        train_episodes, valid, adapted, times = sample_iteration(
            learner, sampler, config, iteration, self.device, self.ranks
        )
        returns, lengths, successes, stds = self._task_means([*train_episodes, valid], adapted)
        good = {k: v.clone() for k, v in learner.state_dict().items()}
        update_started = time.perf_counter()
        train_rows = [self._rows(inner_rows(e, learner.task_loss)) for e in train_episodes]
        valid_rows = self._rows(valid.packed())
        if self.optimizer is None:
            seeds = iteration_seeds(config.seed, iteration).generate_state(config.inner_steps + 3)
            generator = torch.Generator().manual_seed(int(seeds[-1]))  # Fisher subsets
            stats = trpo_step(
                learner,
                train_rows,
                valid_rows,
                self.settings,
                generator,
                adapted,
                self.ranks,
                config.meta_batch,
            )
        else:
            stats = ppo_step(
                learner,
                self.optimizer,
                train_rows,
                valid_rows,
                self.ppo,
                self.ranks,
                config.meta_batch,
            )
        times["meta_update"] = time.perf_counter() - update_started
        finite = all(torch.isfinite(p).all() for p in learner.parameters())
        if not (finite and np.isfinite(stats["surrogate_before"])):
            learner.load_state_dict(good)
            raise NonFinite("the surrogate or the policy is not finite")
        postfix = {"before": f"{returns[0]:.1f}", "after": f"{returns[-1]:.1f}"}
        if writer is None:
            return postfix
        env_steps = (sampler.steps_taken - steps_before) * self.ranks.world
        if self.ranks.world > 1:  # rank 0's all-reduces: transfer, and waiting for the others
            times["collectives"] = self.ranks.seconds - traffic[0]
            writer.add_scalar("charts/bytes_all_reduced", self.ranks.bytes - traffic[1], done)
            writer.add_scalar("charts/all_reduces", self.ranks.calls - traffic[2], done)
        _log(writer, done, returns, lengths, stats, times, env_steps, clock())
        for k, std in enumerate(stds):
            suffix = f"after_{k}_steps" if k else "before_adaptation"
            writer.add_scalar(f"policy/std_{suffix}", std, done)
        if sampler.reports_success:  # Meta-World's metric: episodes that succeeded at any step
            for k, rate in enumerate(successes):
                suffix = f"after_{k}_steps" if k else "before_adaptation"
                writer.add_scalar(f"success/{suffix}", rate, done)
        # The whole iteration, logging included (benchmarks.speed_rl).
        writer.add_scalar("time/iteration_seconds", time.perf_counter() - started, done)
        every = config.val_every
        if every and (done % every == 0 or done == config.iterations):
            self.validate(writer, done)
        return postfix

    def _rows(self, episodes: Episodes) -> Episodes:
        """Every rank's batch as wide as the widest, so that the Fisher's subsets of rows match
        (the train episodes as the inner loss takes them, the valid ones packed)."""
        return episodes.padded(self.ranks.most(episodes.mask.shape[1], self.device))

    def _task_means(
        self, batches: list[Episodes], adapted: list[Params]
    ) -> tuple[list[float], list[float], list[float], list[float]]:
        """Mean return, mean episode length and success rate of each batch, over every rank's
        tasks; and a Gaussian policy's action standard deviation (mean over the action's
        coordinates) before adaptation and after each inner step (empty for other policies)."""
        rows = [
            [e.returns_per_task().mean(), e.lengths_per_task().mean(), e.success_per_task().mean()]
            for e in batches
        ]
        log_std = self.learner.meta_params().get("log_std")
        if log_std is not None:  # after each step, the mean over tasks, in the same all-reduce
            rows += [[p["log_std"].exp().mean().item(), 0.0, 0.0] for p in adapted]
        means = torch.tensor(rows, dtype=torch.float64)
        if self.ranks.world > 1:
            means *= self.sampler.meta_batch / self.config.meta_batch
            self.ranks.sum([means])
        returns, lengths, successes = means[: len(batches)].T.tolist()
        if log_std is None:
            return returns, lengths, successes, []
        stds = [log_std.detach().exp().mean().item(), *means[len(batches) :, 0].tolist()]
        return returns, lengths, successes, stds

    def validate(self, writer: SummaryWriter, done: int) -> None:
        """Returns (and successes) after 0..VAL_STEPS inner steps on fixed held-out tasks of the
        training split (the test protocol's step sizes, sampled as in training): scalars and a
        figure."""
        config = self.config
        started = time.perf_counter()
        seed = config.seed + VAL_SEED_OFFSET
        outcomes = outcomes_after_steps(
            self.learner,
            config,
            config.val_tasks,
            VAL_STEPS,
            default_step_sizes(config),
            seed,
            config.rollouts,
            new_tasks(config.env, config.val_tasks, seed, split="train"),
        )
        returns = outcomes.returns
        for k, values in enumerate(returns):
            writer.add_scalar(f"val/return_after_{k}_steps", values.mean().item(), done)
        for k, values in enumerate(() if outcomes.successes is None else outcomes.successes):
            writer.add_scalar(f"val/success_after_{k}_steps", values.mean().item(), done)
        title = f"{config.env}, {config.val_tasks} held-out tasks, iteration {done}"
        writer.add_figure("val/returns_per_step", returns_figure(returns, title), done)
        writer.add_scalar("time/validation_seconds", time.perf_counter() - started, done)

    def snapshot(self, writer: SummaryWriter | None, done: int) -> None:
        pass

    def close(self) -> None:
        self.sampler.close()


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> Path:
    """Meta-train into ``run_dir``, or resume the run there; returns the checkpoint's path."""
    return loop.train(RLTrainer, config, run_dir, resume)


def _log(writer, step, returns, lengths, stats, times, env_steps, wall) -> None:
    writer.add_scalar("returns/before_adaptation", returns[0], step)
    writer.add_scalar("episodes/length_before_adaptation", lengths[0], step)
    for k, (value, length) in enumerate(zip(returns[1:], lengths[1:], strict=True), start=1):
        writer.add_scalar(f"returns/after_{k}_steps", value, step)
        writer.add_scalar(f"episodes/length_after_{k}_steps", length, step)
    writer.add_scalar("losses/surrogate_before_update", stats["surrogate_before"], step)
    writer.add_scalar("losses/surrogate_after_update", stats["surrogate_after"], step)
    writer.add_scalar("charts/kl", stats["kl"], step)
    if "accepted" in stats:  # TRPO's line search
        writer.add_scalar("charts/line_search_steps", stats["line_search_steps"], step)
        writer.add_scalar("charts/step_accepted", stats["accepted"], step)
    writer.add_scalar("charts/env_steps_per_second", env_steps / max(times["sampling"], 1e-9), step)
    writer.add_scalar("charts/wall_time", wall, step)
    for name, seconds in times.items():
        writer.add_scalar(f"time/{name}_seconds", seconds, step)
