"""Meta-World's ML1 and ML10 benchmarks (Farama's ``metaworld`` 3.x, the ``[metaworld]`` extra)
as task families: ``metaworld-ml1-<env>`` (``metaworld-ml1-reach``: the 50 training and 50 test
goal positions of ``reach-v3``) and ``metaworld-ml10`` (10 training classes of 50 tasks each, 5
other test classes).

A task is a number, an index into the benchmark's tasks: the training tasks first, then the test
tasks. ``sample_tasks`` draws from the training tasks, ``sample_test_tasks`` from the test tasks,
so the two never mix. The benchmark's tasks are fixed by ``BENCHMARK_SEED`` (metaworld draws
them afresh for each process without one). Task i of a draw of n belongs to class i mod (the
split's classes), as metaworld's own vector envs spread a meta-batch evenly over the classes;
its goal within that class is uniform. A copy then keeps its class from one draw to the next, and
only its task's goal changes.

Episodes are metaworld's: 500 steps (``max_path_length``), observations of 39 numbers with the
goal zeroed (its partially observable meta-learning setting), actions in [-1, 1]^4, rewards in
[0, 10], and ``info["success"]`` at each step.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np

from envs.python_family import PythonFamily

BENCHMARK_SEED = 0
HORIZON = 500  # metaworld's max_path_length
INSTALL = "pip install -e '.[metaworld]'"


def metaworld_family(name: str) -> PythonFamily:
    """The family ``metaworld-ml10`` or ``metaworld-ml1-<env>``; ValueError for another name or
    where metaworld is not installed."""
    try:
        import metaworld  # noqa: F401
    except ImportError:
        raise ValueError(
            f"task family {name!r} needs metaworld, the [metaworld] extra: {INSTALL} (it brings "
            f"mujoco 3.3.0; see the README)"
        ) from None
    benchmark, env_name = _parse(name)
    make = functools.partial(MetaWorldEnv, benchmark, env_name)
    return PythonFamily(name, make, HORIZON, dict(MetaWorldEnv.metadata))


def _parse(name: str) -> tuple[str, str | None]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    if name == "metaworld-ml10":
        return "ML10", None
    known = sorted(n.removesuffix("-v3") for n in ALL_V3_ENVIRONMENTS)
    env = name.removeprefix("metaworld-ml1-")
    if name.startswith("metaworld-ml1-") and env in known:
        return "ML1", f"{env}-v3"
    raise ValueError(
        f"unknown Meta-World family {name!r}; allowed: metaworld-ml10 or metaworld-ml1-<env>, "
        f"<env> one of {', '.join(known)}"
    )


@functools.cache
def benchmark_tasks(benchmark: str, env_name: str | None) -> tuple[list, list, dict[str, type]]:
    """The benchmark's training tasks, test tasks and env classes by name (built once per
    process: building resets every class 50 times)."""
    import metaworld

    if benchmark == "ML1":
        made = metaworld.ML1(env_name, seed=BENCHMARK_SEED)
    else:
        made = metaworld.ML10(seed=BENCHMARK_SEED)
    classes = {**made.train_classes, **made.test_classes}
    return list(made.train_tasks), list(made.test_tasks), classes


class MetaWorldEnv(gymnasium.Env):
    """One Meta-World env of a benchmark whose task (a number) picks one of its tasks, the
    training ones first; it builds the task's class's env when the class changes."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}
    horizon = HORIZON

    def __init__(
        self, benchmark: str, env_name: str | None = None, render_mode: str | None = None
    ) -> None:
        train, test, self.classes = benchmark_tasks(benchmark, env_name)
        self.tasks, self.train_count = train + test, len(train)
        self.render_mode = render_mode
        self.env: Any = None
        self.task = -1
        self.set_task(0)
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space

    def _draw(self, first: int, stop: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n task numbers of tasks[first:stop], task i of class i mod the classes there."""
        by_class: dict[str, list[int]] = {}
        for number in range(first, stop):
            by_class.setdefault(self.tasks[number].env_name, []).append(number)
        groups = list(by_class.values())
        return np.array(
            [groups[i % len(groups)][rng.integers(len(groups[i % len(groups)]))] for i in range(n)]
        )

    def sample_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n of the benchmark's training tasks."""
        return self._draw(0, self.train_count, n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n of the benchmark's test tasks."""
        return self._draw(self.train_count, len(self.tasks), n, rng)

    def set_task(self, task: float) -> None:
        number = int(task)
        if number != task or not 0 <= number < len(self.tasks):
            raise ValueError(
                f"a Meta-World task is a whole number in [0, {len(self.tasks)}); got {task!r}"
            )
        chosen = self.tasks[number]
        if self.env is None or self.tasks[self.task].env_name != chosen.env_name:
            if self.env is not None:
                self.env.close()
            self.env = self.classes[chosen.env_name](render_mode=self.render_mode)
        self.env.set_task(chosen)
        self.task = number

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        return self.env.step(action)

    def render(self) -> np.ndarray | None:
        return self.env.render()

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
