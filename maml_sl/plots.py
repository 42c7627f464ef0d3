"""Figures for TensorBoard and PNG files: what a person would rather look at than read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from maml.learner import MAML  # noqa: E402

if TYPE_CHECKING:
    from maml_sl.tasks.sinusoid import SinusoidTasks


def sinusoid_figure(
    learner: MAML,
    tasks: SinusoidTasks,
    generator: torch.Generator,
    shots: int,
    n_tasks: int = 4,
    steps: tuple[int, ...] = (1, 10),
) -> Figure:
    """True curve, support points, and the prediction before and after ``steps`` inner steps."""
    amp, phase = tasks.sample_functions(n_tasks, generator)
    device = amp.device
    xs = tasks.uniform((n_tasks, shots, 1), tasks.x_range, generator)
    low, high = tasks.x_range
    ys = amp * torch.sin(xs - phase)
    grid = torch.linspace(low, high, 200, device=device).view(1, -1, 1)
    truth = amp * torch.sin(grid - phase)
    fig, axes = plt.subplots(1, n_tasks, figsize=(4 * n_tasks, 3.2), sharey=True)
    curves, params, done = {0: _predict(learner, learner.meta_params(), grid[0])}, None, 0
    for target in sorted(steps):
        params = learner.adapt((xs, ys), target - done, params=params, first_order=True)
        params = {n: p.detach() for n, p in params.items()}
        done = target
        curves[target] = torch.stack(
            [
                _predict(learner, {n: p[t] for n, p in params.items()}, grid[0])
                for t in range(n_tasks)
            ]
        )
    for t, ax in enumerate(axes):
        x = grid[0, :, 0].cpu()
        ax.plot(x, truth[t, :, 0].cpu(), color="black", label="true function")
        for n, (k, curve) in enumerate(curves.items()):
            curve = curve if k == 0 else curve[t]
            label = "before adaptation" if k == 0 else f"after {k} step{'s' if k > 1 else ''}"
            ax.plot(x, curve, linestyle=["--", "-", "-"][min(n, 2)], label=label, alpha=0.9)
        ax.scatter(xs[t, :, 0].cpu(), ys[t, :, 0].cpu(), color="red", zorder=3, label="support")
        ax.set_title(f"A={amp[t].item():.2f}, phase={phase[t].item():.2f}")
        ax.set_xlabel("x")
    axes[0].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    return fig


def _predict(learner: MAML, params: dict, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return learner.functional(params)(x)[:, 0].cpu()


def episode_figure(
    learner: MAML, tasks, generator: torch.Generator, shots: int, query: int = 3, steps: int = 3
) -> Figure:
    """One sampled task: support images with labels, query images with predictions after
    ``steps`` inner steps (green when right, red when wrong)."""
    (xs, ys), (xq, yq) = tasks.sample(1, shots, query, generator)
    adapted = learner.adapt((xs, ys), steps, first_order=True)
    predicted = learner.functional({n: p[0] for n, p in adapted.items()})(xq[0]).argmax(-1).cpu()
    columns = max(len(ys[0]), 1)
    rows = 1 + -(-len(yq[0]) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, label) in enumerate(zip(xs[0].cpu(), ys[0].cpu(), strict=True)):
        _show(axes[0, i], image, f"support {label.item()}", "black")
    for i, (image, label) in enumerate(zip(xq[0].cpu(), yq[0].cpu(), strict=True)):
        ok = predicted[i] == label
        title = f"pred {predicted[i].item()}" + ("" if ok else f" (is {label.item()})")
        _show(axes[1 + i // columns, i % columns], image, title, "green" if ok else "red")
    fig.suptitle(f"one held-out task: predictions after {steps} steps", fontsize=9)
    fig.tight_layout()
    return fig


def _show(ax, image: torch.Tensor, title: str, color: str) -> None:
    picture = image.permute(1, 2, 0).squeeze(-1).numpy()
    ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=7, color=color)
