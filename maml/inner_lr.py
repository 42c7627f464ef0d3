"""Inner-loop step sizes: fixed, learned per step and tensor (LSLR), or per element (Meta-SGD)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

LearnedLR = Literal["per_step", "per_element"]
LEARNED_LR_MODES: tuple[str, ...] = ("per_step", "per_element")


class InnerLR(nn.Module):
    """The step sizes of the inner loop.

    - ``learn=None``: the fixed float ``init`` for every tensor and step (MAML).
    - ``learn="per_step"``: one learned scalar per parameter tensor per inner step
      (LSLR, Antoniou et al. 2019, "How to train your MAML"); steps past the trained number reuse
      the last step's rates.
    - ``learn="per_element"``: one learned rate per parameter element, shared by all steps
      (Meta-SGD, Li et al. 2017).
    """

    def __init__(
        self,
        shapes: dict[str, torch.Size],
        init: float,
        steps: int,
        learn: LearnedLR | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if learn is not None and learn not in LEARNED_LR_MODES:
            raise ValueError(
                f"learned inner lr mode {learn!r} is unknown; allowed: None, {LEARNED_LR_MODES}"
            )
        self.init = float(init)
        self.learn = learn
        self.names = list(shapes)
        # ParameterDict keys may not contain dots; parameter names do ("0.weight").
        self.rates = nn.ParameterDict()
        for name, shape in shapes.items():
            size = (steps,) if learn == "per_step" else shape
            if learn is not None:
                self.rates[_key(name)] = nn.Parameter(
                    torch.full(size, self.init, device=device, dtype=dtype)
                )

    def at_step(self, step: int, sizes: Sequence[float] | None = None) -> dict[str, Tensor | float]:
        """The rate of every parameter tensor at inner step ``step`` (0-based); ``sizes`` (one
        per step, the last repeats) replace them for one call."""
        if sizes is not None:
            if not sizes or min(sizes) <= 0:
                raise ValueError(f"step sizes must be positive, got {list(sizes)}")
            return dict.fromkeys(self.names, float(sizes[min(step, len(sizes) - 1)]))
        if self.learn is None:
            return {name: self.init for name in self.names}
        if self.learn == "per_element":
            return {name: self.rates[_key(name)] for name in self.names}
        return {
            name: self.rates[_key(name)][min(step, len(self.rates[_key(name)]) - 1)]
            for name in self.names
        }


def _key(name: str) -> str:
    return name.replace(".", "__")
