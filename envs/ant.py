"""Ant with a goal velocity or a goal direction (the MAML paper's locomotion tasks).

Reward terms as in the MAML authors' code (rllab's ``ant_env_rand``, also pytorch-maml-rl's
``AntVelEnv``/``AntDirEnv``): a forward term, a control cost ``0.005 * |a|^2``, a contact cost
``0.0005 * sum(clip(cfrc_ext, -1, 1)^2)`` and a survive bonus of 0.05. Unlike the HalfCheetah
families, the rest is Gymnasium's Ant-v5: its model, observation and the torso's displacement as
the velocity (rllab's ant is another model, RK4 with 0.02-s steps and torques of +-150, whose
observation adds the torso's orientation and centre of mass and whose velocity is the centre of
mass's).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from envs._mujoco import contact_forces
from envs.mujoco_task import (
    MujocoTaskEnv,
    control_costs,
    direction_rewards,
    sample_directions,
    sample_speeds,
)

CONTROL_COST = 0.5 * 1e-2
CONTACT_COST = 0.5 * 1e-3
SURVIVE_REWARD = 0.05
HEALTHY_Z = (0.2, 1.0)


class _AntTask(MujocoTaskEnv, AntEnv):
    def __init__(self, task=None, **kwargs) -> None:
        AntEnv.__init__(self, **kwargs)
        self._setup_task(task)

    @classmethod
    def derived_quantities(cls, model, scratch):
        return partial(contact_forces, model, scratch)

    @classmethod
    def observations(cls, qpos, qvel, forces) -> np.ndarray:
        contact = np.clip(forces[:, 1:], -1.0, 1.0).reshape(len(qpos), -1)
        return np.concatenate([qpos[:, 2:], qvel, contact], axis=-1)

    @classmethod
    def rewards(cls, tasks, qpos_before, qpos_after, actions, forces, dt):
        velocity = (qpos_after[:, 0] - qpos_before[:, 0]) / dt
        forward = cls.forward_rewards(tasks, velocity)
        control = control_costs(actions, CONTROL_COST)
        contact = CONTACT_COST * (np.clip(forces, -1.0, 1.0) ** 2).sum(axis=(1, 2))
        survive = np.full(len(velocity), SURVIVE_REWARD)
        height = qpos_after[:, 2]
        healthy = (
            np.isfinite(qpos_after).all(axis=1)
            & (HEALTHY_Z[0] <= height)
            & (height <= HEALTHY_Z[1])
        )
        terms = {
            "x_velocity": velocity,
            "reward_forward": forward,
            "reward_ctrl": -control,
            "reward_contact": -contact,
            "reward_survive": survive,
        }
        return forward - control - contact + survive, ~healthy, terms

    @staticmethod
    def forward_rewards(tasks: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class AntVel(_AntTask):
    """Ant that should walk forward at a goal velocity (Finn et al. 2017, section 5.3).

    ## Action space
    ``Box(-1, 1, (8,), float32)``: torques on the eight hip and ankle joints (Gymnasium's Ant-v5).

    ## Observation space
    ``Box(-inf, inf, (105,), float64)``: Gymnasium's v5 observation: qpos without the x and y
    position, qvel, and the external contact forces ``cfrc_ext`` of the 13 bodies clipped to
    [-1, 1]. The forces are those of the current state (computed from it alone), where Gymnasium
    reports those of the last physics substep.

    ## Rewards
    ``-|v_x - v_goal| + 1 - 0.005 |a|^2 - 0.0005 sum(clip(cfrc_ext, -1, 1)^2) + 0.05``, ``v_x`` the
    torso's forward velocity over the env step (``dt`` = 0.05 s); ``info`` holds the task, the
    velocity and each term.

    ## Episode end
    Terminates when the torso's height leaves [0.2, 1.0] or the state is not finite; truncated at
    200 steps by the registered time limit.

    ## Task
    ``(1,)``: the goal velocity; ``sample_tasks`` draws it uniformly in [0, 3].

    ## Arguments
    ``task`` (default 1.0), and the keyword arguments of Gymnasium's ``AntEnv`` (v5) that keep its
    model and observation.
    """

    default_task = (1.0,)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_speeds(n, rng, 3.0)

    @staticmethod
    def forward_rewards(tasks: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        return -np.abs(velocity - tasks[:, 0]) + 1.0


class AntDir(_AntTask):
    """Ant that should walk forward or backward (Finn et al. 2017, section 5.3).

    ## Action and observation spaces
    As :class:`AntVel`: Gymnasium's Ant-v5.

    ## Rewards
    ``d * v_x - 0.005 |a|^2 - 0.0005 sum(clip(cfrc_ext, -1, 1)^2) + 0.05`` with direction ``d`` =
    +1 or -1; ``info`` holds the task, the velocity and each term.

    ## Episode end
    As :class:`AntVel`.

    ## Task
    ``(1,)``: the direction; ``sample_tasks`` draws +1 or -1 with equal probability.

    ## Arguments
    ``task`` (default +1), and the keyword arguments of Gymnasium's ``AntEnv`` (v5).
    """

    default_task = (1.0,)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_directions(n, rng)

    forward_rewards = staticmethod(direction_rewards)
