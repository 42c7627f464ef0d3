"""Sinusoid regression tasks of the MAML paper (Finn et al. 2017, section 5.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class SinusoidTasks:
    """``y = A sin(x - phase)``, amplitude in [0.1, 5], phase in [0, pi], x uniform in [-5, 5].

    Random numbers come from the generator's device; tasks go to ``device`` (by default the
    generator's), so a CPU generator gives the same tasks on every device.
    """

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    device: torch.device | None = None

    def sample_functions(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Amplitudes and phases of ``n`` tasks, each shaped (n, 1, 1)."""
        amp = self.uniform((n, 1, 1), self.amplitude, generator)
        phase = self.uniform((n, 1, 1), self.phase, generator)
        return amp, phase

    def sample(
        self, n_tasks: int, shots: int, query: int, generator: torch.Generator
    ) -> tuple[Batch, Batch]:
        """``n_tasks`` tasks of ``shots`` support and ``query`` query points, (x, y) each."""
        amp, phase = self.sample_functions(n_tasks, generator)
        x = self.uniform((n_tasks, shots + query, 1), self.x_range, generator)
        y = amp * torch.sin(x - phase)
        return (x[:, :shots], y[:, :shots]), (x[:, shots:], y[:, shots:])

    def uniform(
        self, shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator
    ) -> Tensor:
        """Uniform draws in ``bounds``, on the tasks' device."""
        low, high = bounds
        values = torch.rand(shape, generator=generator, device=generator.device)
        return (values * (high - low) + low).to(self.device or generator.device)
