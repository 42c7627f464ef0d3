"""Ant with a goal velocity or a goal direction (the MAML paper's locomotion tasks).

The MDP of the MAML authors' rllab ant (cbfinn/maml_rl, ``rllab/envs/mujoco/ant_env_rand.py``,
``ant_env_rand_direc.py``, ``mujoco_env.py`` and ``vendor/mujoco_models/ant.xml``) on Gymnasium's
model. Compiled side by side, the two XMLs give the same bodies, masses, inertias, geoms, joints
and ranges; rllab's differs in three things, set here on the compiled model: a physics step of
0.02 s (RK4 in both) taken once per env step, contact softness ``solimp .8 .8 .01`` on every
geom, and a start with the torso at 0.55 and the legs bent. Its motors take +-150 with gear 1
where Gymnasium's take +-1 with gear 150: the same torques for the normalized actions in [-1, 1]
that rllab's ``normalize`` gave the authors' policies, and the control cost is on those. As rllab
computed them after each step (``model.forward()``), the observation is qpos, qvel, the external
contact forces of the 14 bodies clipped to [-1, 1], the torso's rotation matrix and the ant's
centre of mass; the velocity is that centre of mass's. They are read from MuJoCo sensors added
to the model (contact, frame axes, subtree centre of mass and velocity) after one more
``mj_forward`` of each new state (``ForwardSensors``, on the batched env's threads). Resets add
N(0, 0.01) to qpos and N(0, 0.1) to qvel. Reward terms: a forward term, a control cost
``0.005 |a|^2``, a contact cost ``0.0005 sum(clip(cfrc_ext, -1, 1)^2)`` and a survive bonus of
0.05.
"""

from __future__ import annotations

from functools import partial

import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from envs._mujoco import FULLPHYSICS, ForwardSensors
from envs.mujoco_task import (
    MujocoTaskEnv,
    check_env_kwargs,
    control_costs,
    direction_rewards,
    rllab_reset_qpos_qvel,
    sample_directions,
    sample_speeds,
)

CONTROL_COST = 0.5 * 1e-2
CONTACT_COST = 0.5 * 1e-3
SURVIVE_REWARD = 0.05
HEALTHY_Z = (0.2, 1.0)
TIMESTEP = 0.02  # rllab's ant.xml: <option timestep="0.02" integrator="RK4"/>
SOLIMP = (0.8, 0.8, 0.01)  # rllab's default geom solimp (Gymnasium's keeps MuJoCo's default)
# rllab's <numeric name="init_qpos">: torso at 0.55, upright, hips 0, ankles +-1 rad
INIT_QPOS = (0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 1.0)


# Columns of the derived quantities (``_derived``): contact forces, then the torso's pose (xmat and
# centre of mass, both in the observation), then the centre of mass's velocity.
_CONTACT, _POSE, _VELOCITY = slice(None, -15), slice(-15, -3), slice(-3, None)
_CONTACT_DATA = ("FORCE", "TORQUE", "POS")  # per body, in MuJoCo's order: 9 numbers
# MuJoCo 4.x has contact sensors; 3.3.0 (which metaworld pins) has not, and computes the same
# quantities with mj_rnePostConstraint, state by state.
CONTACT_SENSORS = hasattr(mujoco.mjtSensor, "mjSENS_CONTACT")


def _add_sensors(spec: mujoco.MjSpec) -> None:
    """Sensors for the observation and reward: the net contact wrench of every body but the
    world's, the torso's axes (its xmat), and its subtree's centre of mass and velocity (the
    torso's subtree is the whole ant)."""
    for index, body in enumerate(spec.bodies[1:], start=1):
        body.name = body.name or f"body_{index}"  # a sensor names its body; the ankles have none
        if not CONTACT_SENSORS:
            continue
        fields = (getattr(mujoco.mjtConDataField, f"mjCONDATA_{f}") for f in _CONTACT_DATA)
        data = sum(1 << field.value for field in fields)
        contact = spec.add_sensor(
            type=mujoco.mjtSensor.mjSENS_CONTACT,
            objtype=mujoco.mjtObj.mjOBJ_BODY,
            objname=body.name,
        )
        contact.intprm[:3] = [data, 3, 1]  # data, reduce="netforce", num=1
    sensor = mujoco.mjtSensor
    for kind in (sensor.mjSENS_FRAMEXAXIS, sensor.mjSENS_FRAMEYAXIS, sensor.mjSENS_FRAMEZAXIS):
        spec.add_sensor(type=kind, objtype=mujoco.mjtObj.mjOBJ_XBODY, objname="torso")
    for kind in (sensor.mjSENS_SUBTREECOM, sensor.mjSENS_SUBTREELINVEL):
        spec.add_sensor(type=kind, objtype=mujoco.mjtObj.mjOBJ_BODY, objname="torso")


def _derived(sensors: ForwardSensors, states: np.ndarray, ctrls: np.ndarray) -> np.ndarray:
    """cfrc_ext of every body (nbody x 6), then the torso's xmat (9), subtree_com (3) and
    subtree_linvel (3), from the sensors of ``_add_sensors``."""
    if not CONTACT_SENSORS:
        return _derived_by_forward(sensors, states, ctrls)
    readings = sensors(states, ctrls)
    n = len(readings)
    contact = readings[:, :-15].reshape(n, -1, 9)
    force, torque, point = contact[..., :3], contact[..., 3:6], contact[..., 6:]
    com = readings[:, -6:-3]
    # The sensor gives the wrench each body exerts on what it touches, about ``point``; cfrc_ext
    # is the wrench the body receives, about its root's subtree centre of mass (the ant's), as
    # MuJoCo's mj_rnePostConstraint gives it (equal to rounding, tested). The world's is zero.
    (rx, ry, rz), (fx, fy, fz) = np.moveaxis(point - com[:, None], -1, 0), np.moveaxis(force, -1, 0)
    moment = np.stack([ry * fz - rz * fy, rz * fx - rx * fz, rx * fy - ry * fx], axis=-1)  # r x f
    received = -np.concatenate([moment + torque, force], axis=-1)
    xmat = readings[:, -15:-6].reshape(n, 3, 3).transpose(0, 2, 1)  # rows of axes -> columns
    return np.concatenate(
        [np.zeros((n, 6)), received.reshape(n, -1), xmat.reshape(n, 9), readings[:, -6:]], axis=1
    )


def _derived_by_forward(
    sensors: ForwardSensors, states: np.ndarray, ctrls: np.ndarray
) -> np.ndarray:
    """``_derived`` without contact sensors (MuJoCo 3.3.0): MuJoCo's own cfrc_ext
    (``mj_rnePostConstraint``) and the torso's subtree velocity (``mj_subtreeVel``) after the
    ``mj_forward`` the sensors would follow, one state after another on one thread."""
    model, data, rows = sensors.model, sensors.datas[0], []
    torso = model.body("torso").id
    for state, ctrl in zip(states, ctrls, strict=True):
        mujoco.mj_setState(model, data, state, FULLPHYSICS)
        data.ctrl[:] = ctrl
        data.qacc_warmstart[:] = 0.0
        mujoco.mj_forward(model, data)
        mujoco.mj_rnePostConstraint(model, data)
        mujoco.mj_subtreeVel(model, data)
        pose = (data.xmat[torso], data.subtree_com[torso], data.subtree_linvel[torso])
        rows.append(np.concatenate([data.cfrc_ext.ravel(), *pose]))
    return np.array(rows)


class _AntTask(MujocoTaskEnv, AntEnv):
    def __init__(self, task=None, frame_skip: int = 1, **kwargs) -> None:
        frame_skip = check_env_kwargs(type(self), frame_skip, kwargs)
        AntEnv.__init__(self, frame_skip=frame_skip, **kwargs)
        self.init_qpos = np.array(INIT_QPOS)
        size = self.model.nq + self.model.nv + 6 * self.model.nbody + 9 + 3
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float64)
        self._setup_task(task)

    @classmethod
    def configure_model(cls, model: mujoco.MjModel) -> None:
        model.opt.timestep = TIMESTEP
        model.geom_solimp[:, :3] = SOLIMP

    add_sensors = staticmethod(_add_sensors)

    @classmethod
    def derived_quantities(cls, model, nthread=1, pool=None):
        return partial(_derived, ForwardSensors(model, nthread, pool))

    @classmethod
    def observations(cls, qpos, qvel, derived) -> np.ndarray:
        contact = np.clip(derived[:, _CONTACT], -1.0, 1.0)
        return np.concatenate([qpos, qvel, contact, derived[:, _POSE]], axis=-1)

    @classmethod
    def rewards(cls, tasks, qpos_before, qpos_after, actions, derived, dt):
        velocity = derived[:, _VELOCITY][:, 0]
        forward = cls.forward_rewards(tasks[:, 0], velocity)
        control = control_costs(actions, CONTROL_COST)
        contact = CONTACT_COST * (np.clip(derived[:, _CONTACT], -1.0, 1.0) ** 2).sum(axis=1)
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

    reset_qpos_qvel = staticmethod(rllab_reset_qpos_qvel)

    @staticmethod
    def forward_rewards(goal, velocity):
        """The forward term from the task's first number and the velocity (floats or arrays)."""
        raise NotImplementedError


class AntVel(_AntTask):
    """Ant that should walk forward at a goal velocity (Finn et al. 2017, section 5.3).

    ## Action space
    ``Box(-1, 1, (8,), float32)``: torques on the eight hip and ankle joints (Gymnasium's Ant-v5).

    ## Observation space
    ``Box(-inf, inf, (125,), float64)``: rllab's: qpos (15, with the torso's x and y), qvel (14),
    the external contact forces ``cfrc_ext`` of the 14 bodies clipped to [-1, 1] (84), the torso's
    rotation matrix (9) and the ant's centre of mass (3), all of the state after the step.

    ## Rewards
    ``-|v_x - v_goal| + 1 - 0.005 |a|^2 - 0.0005 sum(clip(cfrc_ext, -1, 1)^2) + 0.05``, ``v_x`` the
    forward velocity of the ant's centre of mass after the step (an env step is one physics step
    of 0.02 s: 200-step episodes of 4 s); ``info`` holds the task, the velocity and each term.

    ## Starting state
    rllab's pose (torso at 0.55, ankles bent), qpos + N(0, 0.01) and qvel + N(0, 0.1).

    ## Episode end
    Terminates when the torso's height leaves [0.2, 1.0] or the state is not finite; truncated at
    200 steps by the registered time limit.

    ## Task
    ``(1,)``: the goal velocity, any finite number (given as a number or a length-1 array);
    ``sample_tasks`` draws it uniformly in [0, 3].

    ## Arguments
    ``task`` (default 1.0), ``frame_skip`` (a positive integer, default 1: rllab's), and
    Gymnasium's rendering arguments (``render_mode``, ``width``, ``height``, ...); the MDP's are
    refused.
    """

    default_task = (1.0,)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_speeds(n, rng, 3.0)

    @staticmethod
    def forward_rewards(goal, velocity):
        return -abs(velocity - goal) + 1.0


class AntDir(_AntTask):
    """Ant that should walk forward or backward (Finn et al. 2017, section 5.3).

    ## Action and observation spaces
    As :class:`AntVel`: Gymnasium's Ant-v5 actions, rllab's observation.

    ## Rewards
    ``d * v_x - 0.005 |a|^2 - 0.0005 sum(clip(cfrc_ext, -1, 1)^2) + 0.05`` with direction ``d`` =
    +1 or -1; ``info`` holds the task, the velocity and each term.

    ## Episode end
    As :class:`AntVel`.

    ## Task
    ``(1,)``: the direction, +1 or -1 (a number or a length-1 array); ``sample_tasks`` draws
    +1 or -1 with equal probability.

    ## Arguments
    ``task`` (default +1), and the other arguments as :class:`AntVel`.
    """

    default_task = (1.0,)
    task_values = (-1.0, 1.0)

    @staticmethod
    def sample_tasks(n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_directions(n, rng)

    forward_rewards = staticmethod(direction_rewards)
