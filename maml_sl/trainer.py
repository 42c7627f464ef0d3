"""The supervised meta-training loop: sample tasks, meta-loss, Adam step, log, checkpoint."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from maml.checkpoint import load_checkpoint, save_checkpoint
from maml.config import to_toml
from maml.errors import TrainingError
from maml.learner import MAML
from maml.msl import msl_weights
from maml.runs import StopRequest, log_hyperparameters, resolve_device
from maml.threads import ThreadBudget
from maml_sl.config import TrainConfig
from maml_sl.tasks import TaskSetup, make_task

VAL_STEPS = (0, 1, 5, 10)
VAL_SEED_OFFSET = 10_007  # held-out tasks come from a generator of their own


def build_learner(config: TrainConfig, device: torch.device) -> tuple[MAML, TaskSetup]:
    """The task family and a freshly initialised meta-learner for ``config``."""
    torch.manual_seed(config.seed)
    setup = make_task(config, device)
    learner = MAML(
        setup.model.to(device),
        setup.loss,
        inner_steps=config.inner_steps,
        inner_lr=config.inner_lr,
        first_order=config.first_order,
        learn_inner_lr=None if config.learn_inner_lr == "none" else config.learn_inner_lr,
        path=config.path,
    )
    return learner, setup


def train(config: TrainConfig, run_dir: Path, resume: bool = False) -> Path:
    """Meta-train into ``run_dir``, or resume the run there; returns the checkpoint's path."""
    device = resolve_device(config.device)
    learner, setup = build_learner(config, device)
    meta_parameters = list(learner.parameters())
    optimizer = torch.optim.Adam(meta_parameters, lr=config.meta_lr, foreach=True)
    generator = torch.Generator(device).manual_seed(config.seed)
    checkpoint_path = run_dir / "checkpoint.pt"
    start, elapsed = 0, 0.0
    if resume:
        state = load_checkpoint(checkpoint_path, map_location=device)
        learner.load_state_dict(state["learner"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        start, elapsed = state["iteration"], state["elapsed"]
    (run_dir / "config.toml").write_text(to_toml(config))

    def checkpoint(iteration: int, generator_state: torch.Tensor) -> None:
        save_checkpoint(
            checkpoint_path,
            {
                "iteration": iteration,
                "elapsed": elapsed + time.perf_counter() - started,
                "learner": learner.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator_state,
                "torch_rng": torch.get_rng_state(),
                "config": dataclasses.asdict(config),
            },
        )

    writer = SummaryWriter(run_dir, purge_step=start if resume else None)
    if not resume:
        log_hyperparameters(writer, config)
    validation = _fixed_validation_tasks(setup, config, device)
    print(
        f"run {run_dir}: {config.task}, meta-objective path {learner.path} ({learner.path_reason})"
    )
    started = time.perf_counter()
    window_start, window_loss, count = started, torch.zeros((), device=device), 0
    iteration = start
    progress = tqdm(
        total=config.iterations, initial=start, desc=config.task, mininterval=1.0, unit="it"
    )
    threads = ThreadBudget()
    try:
        with StopRequest() as stop:
            for iteration in range(start, config.iterations):
                threads.update()
                iteration_state = generator.get_state()
                support, query = setup.sampler.sample(
                    config.meta_batch, config.shots, config.query, generator
                )
                weights = None
                if config.multi_step_loss:
                    weights = msl_weights(
                        config.inner_steps, iteration / config.msl_anneal_iterations
                    )
                for group in optimizer.param_groups:
                    group["lr"] = meta_lr_at(config, iteration)
                optimizer.zero_grad(set_to_none=True)
                loss = learner.meta_backward(support, query, step_weights=weights)
                # One host sync: a non-finite loss or gradient shows in this sum.
                total = loss + sum(p.grad.sum() for p in meta_parameters if p.grad is not None)
                if not torch.isfinite(total):
                    checkpoint(iteration, iteration_state)
                    raise TrainingError(
                        f"meta-loss {loss.item()} (or its gradient) is not finite at iteration "
                        f"{iteration + 1}; stopped. The last good state (iteration {iteration}) is "
                        f"in {checkpoint_path}"
                    )
                optimizer.step()
                window_loss += loss
                count += 1
                done = iteration + 1
                progress.update(1)
                if done % config.log_every == 0 or done == config.iterations:
                    now = time.perf_counter()
                    mean_loss = window_loss.item() / count
                    writer.add_scalar("losses/meta_loss", mean_loss, done)
                    _log_adaptation(writer, learner, setup, support, query, done)
                    writer.add_scalar("charts/meta_lr", optimizer.param_groups[0]["lr"], done)
                    writer.add_scalar(
                        "charts/iterations_per_second", count / (now - window_start), done
                    )
                    writer.add_scalar("charts/wall_time", elapsed + now - started, done)
                    writer.add_scalar("charts/torch_threads", threads.threads, done)
                    _log_inner_lrs(writer, learner, done)
                    progress.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
                    window_start, window_loss, count = now, torch.zeros((), device=device), 0
                if done % config.val_every == 0 or done == config.iterations:
                    _validate(writer, learner, setup, validation, done)
                if setup.figure and (done % config.figure_every == 0 or done == config.iterations):
                    _log_figure(writer, learner, setup, config, device, done)
                if done % config.checkpoint_every == 0 or done == config.iterations:
                    checkpoint(done, generator.get_state())
                stop.honour(
                    lambda d=done: checkpoint(d, generator.get_state()), done, run_dir, progress
                )
    finally:
        threads.restore()
        progress.close()
        writer.close()
    if start >= config.iterations:
        print(f"{run_dir} has finished its {config.iterations} iterations already")
    return checkpoint_path


def meta_lr_at(config: TrainConfig, iteration: int) -> float:
    """The meta step size at ``iteration`` (0-based), a function of it alone (exact resumes)."""
    if config.meta_lr_schedule == "cosine":
        return config.meta_lr * 0.5 * (1 + math.cos(math.pi * iteration / config.iterations))
    return config.meta_lr


def _fixed_validation_tasks(setup: TaskSetup, config: TrainConfig, device: torch.device):
    generator = torch.Generator(device).manual_seed(config.seed + VAL_SEED_OFFSET)
    return setup.val_sampler.sample(config.val_tasks, config.shots, setup.val_query, generator)


def _measures(learner: MAML, setup: TaskSetup, support, query, steps: int) -> torch.Tensor:
    """Mean over tasks of every query measure after 0..steps inner steps: (steps + 1, measures)."""
    with torch.no_grad():
        values = learner.step_losses(support, query, steps=steps, measure=setup.measure)
    return (values if values.dim() == 3 else values.unsqueeze(-1)).mean(dim=0)


def _log_adaptation(writer: SummaryWriter, learner: MAML, setup: TaskSetup, support, query, step):
    values = _measures(learner, setup, support, query, learner.inner_steps)
    for m, name in enumerate(setup.measure_names):
        writer.add_scalar(f"losses/query_{name}_before_adaptation", values[0, m].item(), step)
        writer.add_scalar(f"losses/query_{name}_after_adaptation", values[-1, m].item(), step)


def _validate(writer: SummaryWriter, learner: MAML, setup: TaskSetup, tasks, step: int) -> None:
    values = _measures(learner, setup, *tasks, max(VAL_STEPS))
    for m, name in enumerate(setup.measure_names):
        for k in VAL_STEPS:
            writer.add_scalar(f"val/query_{name}_after_{k}_steps", values[k, m].item(), step)


def _log_figure(writer, learner, setup, config, device, step: int) -> None:
    generator = torch.Generator(device).manual_seed(config.seed + VAL_SEED_OFFSET + 1)
    with torch.no_grad():
        figure = setup.figure(learner, setup.val_sampler, generator, config.shots)
    writer.add_figure("val/held_out_tasks", figure, step)


def _log_inner_lrs(writer: SummaryWriter, learner: MAML, step: int) -> None:
    for name, rate in learner.inner_lr.rates.items():
        writer.add_scalar(f"inner_lr/{name}", rate.detach().mean().item(), step)
