"""MuJoCo plumbing shared by the single and batched envs: quiet model loading, states, and
quantities MuJoCo computes from a state."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mujoco
import numpy as np
from gymnasium.envs.mujoco import mujoco_env

FULLPHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS.value
_TOTAL_MASS = re.compile(r'\s+settotalmass="([^"]+)"')


def asset_path(xml_file: str) -> Path:
    """Full path of one of Gymnasium's MuJoCo model files (or of a path given as is)."""
    return Path(mujoco_env.expand_model_path(xml_file))


def load_model(xml_file: str) -> mujoco.MjModel:
    """Compile a model without MuJoCo writing warnings to stdout and ``MUJOCO_LOG.TXT``.

    MuJoCo 4 deprecates the ``settotalmass`` compiler attribute of Gymnasium's HalfCheetah model
    and logs a warning at every compilation. The attribute is removed from the XML and the total
    mass is set on the compiled model with ``mj_setTotalmass`` instead: every float array of the
    model is identical to what the XML compiles to (checked in the tests). Any other compiler
    warning becomes a Python ``RuntimeWarning``, which users can see and filter.
    """
    path = asset_path(xml_file)
    xml = path.read_text()
    match = _TOTAL_MASS.search(xml)
    if match:
        xml = xml[: match.start()] + xml[match.end() :]
    with python_warnings():
        if match:
            model = mujoco.MjModel.from_xml_string(xml)
            mujoco.mj_setTotalmass(model, float(match.group(1)))
            mujoco.mj_setConst(model, mujoco.MjData(model))  # constants derived from the masses
        else:
            model = mujoco.MjModel.from_xml_path(str(path))
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


def forward_quantities(
    model: mujoco.MjModel,
    scratch: mujoco.MjData,
    read: Callable[[mujoco.MjData], np.ndarray],
    states: np.ndarray,
    ctrls: np.ndarray,
) -> np.ndarray:
    """``read(data)`` (a flat array) of each state under its control, stacked: (n, size).

    ``data`` holds the state after ``mj_forward``, ``mj_rnePostConstraint`` (``cfrc_ext``) and
    ``mj_subtreeVel`` (``subtree_linvel``): what rllab's ``model.forward()`` left after a step.
    Computed on a scratch ``MjData`` from the state alone (zero solver warm start), so that a
    single env and a batched env get the same numbers for the same state.
    """
    rows = []
    for state, ctrl in zip(states, ctrls, strict=True):
        mujoco.mj_setState(model, scratch, state, FULLPHYSICS)
        scratch.ctrl[:] = ctrl
        scratch.qacc_warmstart[:] = 0.0
        mujoco.mj_forward(model, scratch)
        mujoco.mj_rnePostConstraint(model, scratch)
        mujoco.mj_subtreeVel(model, scratch)
        rows.append(read(scratch))
    return np.stack(rows)
