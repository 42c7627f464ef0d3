"""The vectorised centre of mass of planar models against MuJoCo's own computation."""

import mujoco
import numpy as np
import pytest

from envs._mujoco import get_state, load_model
from envs._planar import PlanarSubtreeCom


@pytest.mark.parametrize(
    "xml, body",
    [
        ("half_cheetah.xml", "torso"),
        ("half_cheetah.xml", "fthigh"),
        ("hopper.xml", "torso"),  # hinges with anchors away from their body's origin
        ("walker2d_v5.xml", "thigh_left"),
    ],
)
def test_subtree_com_and_velocity_equal_mujocos(xml, body):
    assert_equals_mujoco(load_model(xml), body)


TURNED_CHAIN = """
<mujoco>
  <worldbody>
    <body name="base" pos="0 0.2 1" euler="0 25 0">
      <joint name="x" type="slide" axis="1 0 0.5"/>
      <joint name="z" type="slide" axis="0 0 1" pos="0.3 0 0"/>
      <joint name="pitch" type="hinge" axis="0 -1 0" pos="0.1 0 0.2"/>
      <geom type="capsule" fromto="-0.3 0 0 0.4 0 0.1" size="0.05"/>
      <body name="limb" pos="0.4 0 0.1" euler="0 -70 0">
        <joint name="knee" type="hinge" axis="0 1 0" pos="0 0 0.05" ref="0.3"/>
        <geom type="box" pos="0.2 0.1 0" size="0.2 0.03 0.04"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def test_turned_frames_offset_anchors_and_references():
    """Body frames turned about y, hinge anchors off the origin, a joint's ref, a slanted slide."""
    model = mujoco.MjModel.from_xml_string(TURNED_CHAIN)
    assert_equals_mujoco(model, "base")
    assert_equals_mujoco(model, "limb")


def assert_equals_mujoco(model: mujoco.MjModel, body: str) -> None:
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    states, expected = [], []
    for _ in range(40):
        data.qpos[:] = model.qpos0 + 2 * rng.standard_normal(model.nq)
        data.qvel[:] = 3 * rng.standard_normal(model.nv)
        mujoco.mj_forward(model, data)
        mujoco.mj_subtreeVel(model, data)
        states.append(get_state(model, data))
        index = model.body(body).id
        expected.append(np.r_[data.subtree_com[index], data.subtree_linvel[index]])
    got = PlanarSubtreeCom(model, body)(np.array(states))
    np.testing.assert_allclose(got, np.array(expected), atol=1e-12)


def test_a_model_outside_the_plane_is_refused():
    with pytest.raises(ValueError, match="x-z plane: joint 'root' is neither a hinge nor a slide"):
        PlanarSubtreeCom(load_model("ant.xml"), "torso")


def test_one_state_gives_the_bits_of_many():
    """A single env computes one state on Python floats, a batched env many on arrays."""
    model = mujoco.MjModel.from_xml_string(TURNED_CHAIN)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(1)
    states = []
    for _ in range(9):
        data.qpos[:] = model.qpos0 + 2 * rng.standard_normal(model.nq)
        data.qvel[:] = 3 * rng.standard_normal(model.nv)
        states.append(get_state(model, data))
    for body in ("base", "limb"):
        com = PlanarSubtreeCom(model, body)
        many = com(np.array(states))
        one_by_one = np.concatenate([com(state[None]) for state in states])
        np.testing.assert_array_equal(one_by_one, many)
