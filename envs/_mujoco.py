"""MuJoCo plumbing shared by the single and batched envs: quiet model loading, states, and
quantities MuJoCo computes from a state."""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mujoco
import numpy as np
from gymnasium.envs.mujoco import mujoco_env
from mujoco import rollout

FULLPHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
SENSORS_OFF = mujoco.mjtDisableBit.mjDSBL_SENSOR.value
_AUTORESET_OFF = mujoco.mjtDisableBit.mjDSBL_AUTORESET.value
_TOTAL_MASS = re.compile(r'\s+settotalmass="([^"]+)"')


def asset_path(xml_file: str) -> Path:
    """Full path of one of Gymnasium's MuJoCo model files (or of a path given as is)."""
    return Path(mujoco_env.expand_model_path(xml_file))


def load_model(
    xml_file: str, edit: Callable[[mujoco.MjSpec], None] | None = None
) -> mujoco.MjModel:
    """Compile a model without MuJoCo writing warnings to stdout and ``MUJOCO_LOG.TXT``.

    MuJoCo 4 deprecates the ``settotalmass`` compiler attribute of Gymnasium's HalfCheetah model
    and logs a warning at every compilation. The attribute is removed from the XML and the total
    mass is set on the compiled model with ``mj_setTotalmass`` instead: every float array of the
    model is identical to what the XML compiles to (checked in the tests). Any other compiler
    warning becomes a Python ``RuntimeWarning``, which users can see and filter. ``edit`` changes
    the model's spec before it is compiled (a family's sensors).
    """
    path = asset_path(xml_file)
    xml = path.read_text()
    match = _TOTAL_MASS.search(xml)
    if match:
        xml = xml[: match.start()] + xml[match.end() :]
    with python_warnings():
        if edit is not None:
            spec = mujoco.MjSpec.from_string(xml)
            spec.modelfiledir = str(path.parent)
            edit(spec)
            model = spec.compile()
        elif match:
            model = mujoco.MjModel.from_xml_string(xml)
        else:
            model = mujoco.MjModel.from_xml_path(str(path))
        if match:
            mujoco.mj_setTotalmass(model, float(match.group(1)))
            mujoco.mj_setConst(model, mujoco.MjData(model))  # constants derived from the masses
    return model


@contextmanager
def python_warnings() -> Iterator[None]:
    """Route MuJoCo's warnings to ``warnings.warn`` instead of its log file, for a while."""
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(
        lambda message: warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)
    )
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def state_size(model: mujoco.MjModel) -> int:
    return mujoco.mj_stateSize(model, FULLPHYSICS)


def get_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The full physics state of ``data`` (time, qpos, qvel, act, ...) as one vector."""
    state = np.empty(state_size(model))
    mujoco.mj_getState(model, data, state, FULLPHYSICS)
    return state


def qpos_qvel(model: mujoco.MjModel, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Views of qpos and qvel inside full physics states (..., nstate); time comes first."""
    return states[..., 1 : 1 + model.nq], states[..., 1 + model.nq : 1 + model.nq + model.nv]


class ForwardSensors:
    """The sensor readings of full physics states under controls, as ``mj_forward`` leaves
    them (positions, velocities, constraint forces: what rllab's ``model.forward()`` computed
    after a step), for many states at once on ``mujoco.rollout``'s threads.

    Each state takes one Euler step of a copy of the model, thrown away: the step's first stage
    is ``mj_forward``, which computes the sensors, from a zero solver warm start (as every
    physics step of the envs starts). The copy keeps the model's timestep, since MuJoCo clamps
    contact time constants to at least two of them. Without a pool (a single env) each state
    goes through ``mj_forward`` directly: the same computation, bit for bit, without the
    overhead of a rollout call for one state. The model's own sensors may be disabled
    (``mjDSBL_SENSOR``) so that its physics steps do not compute them.
    """

    def __init__(
        self, model: mujoco.MjModel, nthread: int = 1, pool: rollout.Rollout | None = None
    ) -> None:
        self.model = copy.copy(model)
        self.model.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
        self.model.opt.disableflags &= ~SENSORS_OFF
        self.model.opt.disableflags |= _AUTORESET_OFF  # readings of the state given, not a reset
        self.datas = [mujoco.MjData(self.model) for _ in range(nthread)]
        self.pool = pool
        self.warmstart = np.zeros((1, model.nv))

    def __call__(self, states: np.ndarray, ctrls: np.ndarray) -> np.ndarray:
        """(n, nsensordata) readings of n states (n, nstate) under controls (n, nu)."""
        if self.pool is None:  # a single env: mj_forward itself, the same calls as in a step
            data, rows = self.datas[0], []
            for state, ctrl in zip(states, ctrls, strict=True):
                mujoco.mj_setState(self.model, data, state, FULLPHYSICS)
                data.ctrl[:] = ctrl
                data.qacc_warmstart[:] = 0.0
                mujoco.mj_forward(self.model, data)
                rows.append(data.sensordata.copy())
            return np.stack(rows)
        _, readings = self.pool.rollout(
            self.model,
            self.datas,
            states,
            ctrls[:, None, :],
            nstep=1,
            initial_warmstart=self.warmstart,
        )
        return readings[:, 0]
