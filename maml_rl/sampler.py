"""Collect episodes of every task at once: one batched env, one policy call per time step."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from envs import make_batched
from maml.inner_step import Params
from maml.run.threads import fixed_threads
from maml_rl.config import SAMPLINGS
from maml_rl.episodes import Episodes


class Sampler:
    """``meta_batch x rollouts`` copies of a task family in one :class:`BatchedTaskEnv`.

    ``sample`` runs the policy with shared parameters (before adaptation) or with each task's own
    (a leading task axis on every tensor) and returns the episodes as tensors (tasks, rollouts,
    horizon, ...) on the CPU. The policy is one of ``maml_rl.policies`` (or anything with their
    methods: ``batched`` for per-task parameters, ``sample``).

    Continuous policies act in [-1, 1] per dimension, rescaled to the env's action box and clipped
    to it (as the MAML authors' code does with rllab's ``normalize``): the identity for the
    MuJoCo families, whose boxes are [-1, 1], and a factor 0.1 for navigation-2d's [-0.1, 0.1].
    A Gaussian policy's initial standard deviation of 1 is then a tenth of a step there, not ten
    steps, and a MuJoCo env's control cost sees the torques it applies, not the raw samples.
    Episodes hold the policy's own actions. ``env_kwargs`` go to the env (``frame_skip``, say).

    ``sampling`` is its one budget rule (``maml_rl.config.SAMPLINGS``): ``rollouts`` whole
    episodes per task, or ``"steps"``: the episodes one env per task runs back to back until
    they hold ``rollouts x horizon`` steps, as the MAML authors' training sampler gathered them.

    ``tasks`` (a slice of ``range(meta_batch)``) makes this sampler one rank's share of a
    meta-batch: it draws every task and every random number of the whole batch and keeps its
    block, so each of its episodes is the one a sampler of the whole batch would give.
    """

    def __init__(
        self,
        env: str,
        meta_batch: int,
        rollouts: int,
        horizon: int | None = None,
        nthread: int | None = None,
        torch_threads_while_sampling: int = 1,
        env_kwargs: dict | None = None,
        tasks: slice | None = None,
        sampling: str = "episodes",
    ) -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling {sampling!r} is unknown; allowed: {', '.join(SAMPLINGS)}")
        self.sampling = sampling
        self.all_tasks, self.rollouts = meta_batch, rollouts
        self.share = tasks or slice(0, meta_batch)
        self.meta_batch = self.share.stop - self.share.start  # the tasks sampled here
        self.env = make_batched(
            env,
            self.meta_batch * rollouts,
            max_episode_steps=horizon,
            nthread=nthread,
            **(env_kwargs or {}),
        )
        self.horizon = self.env.horizon
        self._action_box = box_rescaling(self.env.single_action_space)
        self._action_shape = self.env.single_action_space.shape  # () for a discrete action
        self.threads = torch_threads_while_sampling
        self.steps_taken = 0

    @property
    def reports_success(self) -> bool:
        """Whether the family's episodes say if they succeeded (Meta-World's info["success"])."""
        return getattr(self.env, "reports_success", False)

    def sample_tasks(self, rng: np.random.Generator) -> np.ndarray:
        """This sampler's block of ``meta_batch`` tasks drawn from ``rng``."""
        return self.env.sample_tasks(self.all_tasks, rng)[self.share]

    def set_tasks(self, tasks: np.ndarray) -> None:
        """Give task i to its ``rollouts`` copies."""
        self.env.set_tasks(np.repeat(np.asarray(tasks), self.rollouts, axis=0))

    def acting(self, policy: nn.Module, params: Params, per_task: bool):
        """The policy's outputs for (tasks, rollouts, obs) observations, and its action draws
        from a generator (those of the whole meta-batch, of which this sampler keeps its block)."""
        params = {n: p.detach().cpu() for n, p in params.items()}

        def outputs_of(obs: Tensor) -> Tensor:
            if per_task:
                return policy.batched(params, obs)
            return torch.func.functional_call(policy, params, (obs,))

        def sample(outputs: Tensor, generator: torch.Generator) -> Tensor:
            if self.meta_batch == self.all_tasks:
                return policy.sample(outputs, generator)
            # The whole batch's draws (a Gaussian's noise does not depend on its mean), then ours.
            whole = outputs.new_zeros((self.all_tasks, *outputs.shape[1:]))
            whole[self.share] = outputs
            return policy.sample(whole, generator)[self.share]

        return outputs_of, sample

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """The policy's actions in [-1, 1] rescaled to the env's box and clipped to it."""
        lanes = self.meta_batch * self.rollouts
        env_actions = actions.reshape(lanes, *self._action_shape).double().numpy()
        if self._action_box is not None:
            center, half, low, high = self._action_box
            env_actions = np.clip(center + half * env_actions, low, high)
        return env_actions

    def sample(self, policy: nn.Module, params: Params, per_task: bool, seed: int) -> Episodes:
        """Every task's episodes under ``params`` (shared, or per task with ``per_task=True``),
        by the sampler's one budget rule: ``rollouts`` whole episodes, or with ``sampling =
        "steps"`` the episodes that run back to back until ``rollouts x horizon`` steps."""
        if self.sampling == "steps":
            return self._budget(policy, params, per_task, seed, self.rollouts * self.horizon)
        return self._episodes(policy, params, per_task, seed)

    def _episodes(self, policy: nn.Module, params: Params, per_task: bool, seed: int) -> Episodes:
        """``rollouts`` whole episodes per task, one per copy."""
        tasks, rollouts, horizon = self.meta_batch, self.rollouts, self.horizon
        outputs_of, sample = self.acting(policy, params, per_task)
        generator = torch.Generator().manual_seed(seed)
        columns: dict[str, list[Tensor]] = {
            k: [] for k in ("obs", "act", "rew", "mask", "out", "success")
        }
        first = self.share.start * rollouts  # copy i of the whole batch resets from seed + i
        with fixed_threads(self.threads), torch.no_grad():
            obs, _ = self.env.reset(seed=[seed + first + i for i in range(tasks * rollouts)])
            alive = np.ones(tasks * rollouts, dtype=bool)
            for _ in range(horizon):
                observations = torch.as_tensor(obs, dtype=torch.float32).view(tasks, rollouts, -1)
                outputs = outputs_of(observations)
                actions = sample(outputs, generator)
                obs, rewards, terminated, _, info = self.env.step(self.env_actions(actions))
                columns["success"].append(successes_of(info, alive))
                columns["obs"].append(observations)
                columns["act"].append(actions)
                columns["out"].append(outputs)
                columns["rew"].append(torch.as_tensor(rewards * alive, dtype=torch.float32))
                columns["mask"].append(torch.as_tensor(alive, dtype=torch.float32))
                alive = alive & ~terminated
        self.steps_taken += tasks * rollouts * horizon

        def stack(key: str) -> Tensor:
            return torch.stack(columns[key], dim=2 if key in ("obs", "act", "out") else 1)

        rewards = stack("rew").view(tasks, rollouts, horizon)
        return Episodes(
            observations=stack("obs"),
            actions=stack("act"),
            rewards=rewards,
            mask=stack("mask").view(tasks, rollouts, horizon),
            outputs=stack("out"),
            advantages=torch.zeros_like(rewards),
            successes=stack("success").view(tasks, rollouts, horizon),
        )

    def _budget(
        self, policy: nn.Module, params: Params, per_task: bool, seed: int, budget: int
    ) -> Episodes:
        """The episodes one env per task runs back to back until they hold ``budget`` steps.

        That is the MAML authors' training sampler (rllab's ``VectorizedSampler`` with
        ``n_envs = meta_batch_size``, ``cbfinn/maml_rl``, ``sandbox/rocky/tf/samplers/
        vectorized_sampler.py``): each task keeps its episodes
        1..k, k the first at which their steps reach ``budget``. Episodes are independent, and
        whether episode j is kept depends only on those before it, so they need not run one
        after another: a lane starts a task's next episode only when it is sure to be kept (the
        task's completed steps plus a whole horizon for each of its running episodes are still
        short of the budget), and only lanes with a running episode are stepped. No step is
        wasted, and ``budget / horizon`` lanes per task start the whole budget at once. Each
        episode draws its start state and action noise from its own seed (``seed``, task,
        number; :func:`episode_seed`), so the episodes do not depend on the number of lanes:
        with one lane per task this is the authors' sampler itself (tested), up to the rounding
        of the policy's matrix products, which depends on how many rows they have. Returns
        (tasks, E, horizon, ...), each task's episodes in their order, E the most any task
        kept, the others padded.
        """
        tasks, horizon = self.meta_batch, self.horizon
        lanes = tasks * self.rollouts
        outputs_of, _ = self.acting(policy, params, per_task)
        task_of = np.arange(lanes) // self.rollouts
        running = np.full(lanes, -1)  # the number of the episode each lane runs; -1: idle
        elapsed = np.zeros(lanes, dtype=np.int64)
        started = np.zeros(tasks, dtype=np.int64)  # episodes started (all of them are kept)
        ongoing = np.zeros(tasks, dtype=np.int64)
        completed = np.zeros(tasks, dtype=np.int64)  # steps of each task's completed episodes
        ends: list[tuple[int, int, int, int, int]] = []  # (task, number, lane, last t, length)
        rows: dict[str, list[Tensor]] = {k: [] for k in ("obs", "act", "rew", "out", "success")}
        row_of: list[np.ndarray] = []  # per time step, each lane's row in ``rows`` (-1: idle)
        count = 0
        with fixed_threads(self.threads), torch.no_grad():
            obs = np.zeros((lanes, *self.env.single_observation_space.shape))
            # One row of outputs, for the shape of an episode's noise: (horizon, ...).
            template = outputs_of(torch.zeros(tasks, self.rollouts, obs.shape[-1]))[0, :1]
            template = template.expand(horizon, -1)
            noise = policy.noise(template, torch.Generator()).expand(lanes, -1, -1).clone()
            t = 0
            while True:
                starting = np.zeros(lanes, dtype=bool)
                for lane in np.flatnonzero(running < 0):
                    task = task_of[lane]
                    if completed[task] + horizon * ongoing[task] < budget:
                        running[lane], starting[lane] = started[task], True
                        started[task] += 1
                        ongoing[task] += 1
                if starting.any():
                    seeds = [0] * lanes
                    for lane in np.flatnonzero(starting):
                        task = self.share.start + int(task_of[lane])
                        seeds[lane] = episode_seed(seed, task, int(running[lane]))
                        draws = torch.Generator().manual_seed(seeds[lane])
                        noise[lane] = policy.noise(template, draws)
                    fresh, _ = self.env.reset(seed=seeds, options={"reset_mask": starting})
                    obs[starting] = fresh[starting]
                    elapsed[starting] = 0
                active = running >= 0
                if not active.any():
                    break
                index = np.flatnonzero(active)
                observations = torch.as_tensor(obs[index], dtype=torch.float32)
                if per_task:  # each task's parameters act on its lanes: the whole grid
                    grid = torch.as_tensor(obs, dtype=torch.float32)
                    outputs = outputs_of(grid.view(tasks, self.rollouts, -1))
                    outputs = outputs.reshape(lanes, -1)[index]
                else:
                    outputs = outputs_of(observations)
                taken = policy.act(outputs, noise[index, elapsed[index]])
                actions = taken.new_zeros(lanes, *taken.shape[1:])  # idle lanes: not stepped
                actions[index] = taken
                obs, rewards, terminated, _, info = self.env.step(
                    self.env_actions(actions), active=active
                )
                rows["success"].append(successes_of(info, active)[index])
                rows["obs"].append(observations)
                rows["act"].append(taken)
                rows["out"].append(outputs)
                rows["rew"].append(torch.as_tensor(rewards[index], dtype=torch.float32))
                where = np.full(lanes, -1)
                where[index] = count + np.arange(len(index))
                row_of.append(where)
                count += len(index)
                elapsed[index] += 1
                for lane in np.flatnonzero(active & (terminated | (elapsed >= horizon))):
                    task = task_of[lane]
                    ends.append((task, running[lane], lane, t, elapsed[lane]))
                    completed[task] += elapsed[lane]
                    ongoing[task] -= 1
                    running[lane] = -1
                t += 1
        self.steps_taken += count
        return _episodes_from_rows(rows, np.stack(row_of), ends, tasks, int(started.max()), horizon)

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def episode_seed(seed: int, task: int, number: int) -> int:
    """The seed of a sampling's episode ``number`` of ``task`` (of the whole meta-batch): its
    start state (the env's ``reset(seed=...)``) and its action noise (a torch generator)."""
    return int(np.random.SeedSequence([seed, task, number]).generate_state(1, np.uint64)[0])


def _episodes_from_rows(
    rows: dict[str, list[Tensor]],
    row_of: np.ndarray,
    ends: list[tuple[int, int, int, int, int]],
    tasks: int,
    most: int,
    horizon: int,
) -> Episodes:
    """Episodes (task, number, lane, last time step, length) gathered from the rows of the
    stepped lanes (``row_of``: (time steps, lanes) row numbers): (tasks, most, horizon, ...)."""
    index = np.zeros((tasks, most, horizon), dtype=np.int64)
    mask = np.zeros((tasks, most, horizon), dtype=bool)
    for task, number, lane, last, length in ends:
        index[task, number, :length] = row_of[last - length + 1 : last + 1, lane]
        mask[task, number, :length] = True
    index = torch.from_numpy(index)
    return masked_episodes(lambda key: torch.cat(rows[key])[index], torch.from_numpy(mask))


def masked_episodes(take: Callable[[str], Tensor], mask: Tensor) -> Episodes:
    """Episodes of the fields ``take(key)`` gathers, (tasks, E, horizon, ...), zero where
    ``mask`` (tasks, E, horizon) is False."""

    def cut(key: str) -> Tensor:
        values = take(key)
        return values * mask.view(*mask.shape, *[1] * (values.dim() - 3)).to(values.dtype)

    rewards = cut("rew")
    return Episodes(
        observations=cut("obs"),
        actions=cut("act"),
        rewards=rewards,
        mask=mask.float(),
        outputs=cut("out"),
        advantages=torch.zeros_like(rewards),
        successes=cut("success"),
    )


def successes_of(info: dict, stepped: np.ndarray) -> Tensor:
    """Each copy's info["success"] at a step as 0 or 1 (0 where it has none or did not step)."""
    if "success" not in info:  # our MuJoCo families and navigation: nothing to read
        return torch.zeros(len(stepped))
    success = np.nan_to_num(np.asarray(info["success"], dtype=np.float64))
    return torch.as_tensor((success * stepped) > 0, dtype=torch.float32)


def box_rescaling(space) -> tuple[np.ndarray, ...] | None:
    """Center, half-width, low and high (float64) of a Box with finite bounds, mapping [-1, 1]
    onto it; None where the space is discrete or a bound is infinite."""
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is None or not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None
    low, high = low.astype(np.float64), high.astype(np.float64)
    return (high + low) / 2, (high - low) / 2, low, high
