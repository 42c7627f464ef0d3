"""Figures of returns after each inner step: for TensorBoard and PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

from maml.run.stats import mean_and_ci95  # noqa: E402


def returns_figure(returns: Tensor, title: str) -> Figure:
    """Average return (with its 95% interval over tasks) after each inner step."""
    stats = [mean_and_ci95(values) for values in returns]
    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    axis.errorbar(range(len(stats)), [m for m, _ in stats], yerr=[c for _, c in stats], marker="o")
    axis.set(xlabel="inner steps", ylabel="average return", title=title)
    axis.set_xticks(range(len(stats)))
    figure.tight_layout()
    return figure


def plot_returns(returns: Tensor, path: Path, title: str) -> None:
    """The figure of :func:`returns_figure`, saved as a PNG file."""
    figure = returns_figure(returns, title)
    figure.savefig(path, dpi=120)
    plt.close(figure)
