"""HalfCheetah with a goal velocity or a goal direction (the MAML paper's locomotion tasks).

The MDP of the MAML authors' rllab HalfCheetah (cbfinn/maml_rl, ``rllab/envs/mujoco/
half_cheetah_env_rand.py`` and ``mujoco_env.py``) on Gymnasium's model, which is the same XML:
the observation ends with the centre of mass of the whole cheetah (``com_subtree`` of the torso,
whose subtree is every moving body), the forward velocity is that centre of mass's velocity after
the step (rllab's ``get_body_comvel``), and a reset perturbs qpos by N(0, 0.01) and qvel by
N(0, 0.1). Keep ``frame_skip=1`` for their 0.01-s steps (the presets do).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from envs._planar import PlanarSubtreeCom
from envs.checks import check_actions
from envs.mujoco_task import (
    MujocoTaskEnv,
    check_env_kwargs,
    control_costs,
    direction_rewards,
    rllab_reset_qpos_qvel,
    sample_directions,
    sample_speeds,
    sum_of_squares,
)

CONTROL_COST = 0.05  # 0.5 * 1e-1 in the MAML authors' code (Gymnasium's HalfCheetah uses 0.1)


class _HalfCheetahTask(MujocoTaskEnv, HalfCheetahEnv):
    def __init__(self, task=None, frame_skip: int = 5, **kwargs) -> None:
        frame_skip = check_env_kwargs(type(self), frame_skip, kwargs)
        HalfCheetahEnv.__init__(self, frame_skip=frame_skip, **kwargs)
        size = self.model.nq - 1 + self.model.nv + 3
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float64)
        self._setup_task(task)

    @classmethod
    def derived_quantities(cls, model, nthread=1, pool=None):
        return PlanarSubtreeCom(model, "torso")  # (n, 6): centre of mass, its velocity

    @classmethod
    def observations(cls, qpos, qvel, com) -> np.ndarray:
        return np.concatenate([qpos[:, 1:], qvel, com[:, :3]], axis=-1)

    @classmethod
    def rewards(cls, tasks, qpos_before, qpos_after, actions, com, dt):
        velocity = com[:, 3]
        reward, terms = cls._reward(tasks[:, 0], velocity, control_costs(actions, CONTROL_COST))
        return reward, np.zeros(len(velocity), dtype=bool), terms

    @classmethod
    def _reward(cls, goal, velocity, control) -> tuple:
        """The reward and its terms from the goal, the velocity and the control cost: one
        copy's floats (``step``) or arrays over copies (``rewards``)."""
        forward = cls.forward_rewards(goal, velocity)
        terms = {"x_velocity": velocity, "reward_forward": forward, "reward_ctrl": -control}
        return forward - control, terms

    reset_qpos_qvel = staticmethod(rllab_reset_qpos_qvel)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        # The MDP of ``observations`` and ``rewards`` on one copy's Python floats: numpy's cost
        # per call on one-copy arrays would be most of a step. The same operations in the same
        # order as the arrays of a batched env (tests hold the two equal bit for bit).
        action = check_actions(action, self.action_space.shape, type(self).__name__)
        self.data.qacc_warmstart[:] = 0.0  # as ``MujocoTaskEnv.step``: a cold solver start
        self.do_simulation(action, self.frame_skip)
        qpos, qvel = self.data.qpos.tolist(), self.data.qvel.tolist()
        com = self._derive.one(qpos, qvel)
        control = CONTROL_COST * sum_of_squares(action.tolist())
        reward, terms = self._reward(float(self._task[0]), com[3], control)
        if self.render_mode == "human":
            self.render()
        info = {"task": self.get_task(), **terms}
        return np.array(qpos[1:] + qvel + com[:3]), reward, False, False, info

    @staticmethod
    def forward_rewards(goal, velocity):
        """The forward term from the task's number and the velocity (floats or arrays)."""
        raise NotImplementedError


class HalfCheetahVel(_HalfCheetahTask):
    """HalfCheetah that should run at a goal velocity (Finn et al. 2017, section 5.3).

    ## Action space
    ``Box(-1, 1, (6,), float32)``: torques on the six joints (Gymnasium's HalfCheetah-v5).

    ## Observation space
    ``Box(-inf, inf, (20,), float64)``: qpos without the x position, qvel, and the cheetah's centre
    of mass (x, y, z), as in the MAML authors' rllab env.

    ## Rewards
    ``-|v_x - v_goal| - 0.05 * |a|^2``, with ``v_x`` the forward velocity of the cheetah's centre of
    mass at the end of the env step (``dt`` = 0.05 s; 0.01 s with ``frame_skip=1``, the authors'
    rllab HalfCheetah, whose 200-step episodes last 2 s). ``info`` holds the task, ``x_velocity``
    and the terms ``reward_forward`` and ``reward_ctrl``.

    ## Starting state
    Gymnasium's initial pose with qpos + N(0, 0.01) and qvel + N(0, 0.1) (rllab's noise).

    ## Episode end
    Never terminates; truncated at 200 steps by the registered time limit.

    ## Task
    ``(1,)``: the goal velocity, any finite number (given as a number or a length-1 array);
    ``sample_tasks`` draws it uniformly in [0, 2]. Fixed across resets until ``set_task`` (or
    ``reset(options={"task": ...})``) changes it.

    ## Arguments
    ``task`` (default 1.0), ``frame_skip`` (a positive integer, default 5), and Gymnasium's
    rendering arguments (``render_mode``, ``width``, ``height``, ...); the MDP's are refused.
    """

    default_task = (1.0,)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_speeds(n, rng, 2.0)

    @staticmethod
    def forward_rewards(goal, velocity):
        return -abs(velocity - goal)


class HalfCheetahDir(_HalfCheetahTask):
    """HalfCheetah that should run forward or backward (Finn et al. 2017, section 5.3).

    ## Action and observation spaces
    As :class:`HalfCheetahVel`: Gymnasium's HalfCheetah-v5 actions, rllab's observation.

    ## Rewards
    ``d * v_x - 0.05 * |a|^2`` with direction ``d`` = +1 or -1 and ``v_x`` as in
    :class:`HalfCheetahVel`; ``info`` holds the task and the reward terms.

    ## Episode end
    Never terminates; truncated at 200 steps by the registered time limit.

    ## Task
    ``(1,)``: the direction, +1 or -1 (a number or a length-1 array); ``sample_tasks`` draws
    +1 or -1 with equal probability.

    ## Arguments
    ``task`` (default +1), and the other arguments as :class:`HalfCheetahVel`.
    """

    default_task = (1.0,)
    task_values = (-1.0, 1.0)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_directions(n, rng)

    forward_rewards = staticmethod(direction_rewards)
