"""Centre of mass of a planar MuJoCo model's subtree, over many states at once.

MuJoCo computes ``subtree_com`` (in ``mj_comPos``) and ``subtree_linvel`` (in ``mj_subtreeVel``)
one ``MjData`` at a time; a Python loop over the copies of a batched env costs about 4 us per
copy and step. For models that move in the x-z plane (hinges about y, slides in the plane, body
frames turned only about y: HalfCheetah, Hopper, Walker2d) the forward kinematics reduce to 2-D
rotations, done here with numpy over all copies together. The tests hold it to MuJoCo's numbers.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs._mujoco import qpos_qvel

_TOLERANCE = 1e-12


def _planar_error(model: mujoco.MjModel) -> str | None:
    """Why the model is not planar in x-z, or None."""
    for joint in range(model.njnt):
        kind, axis = model.jnt_type[joint], model.jnt_axis[joint]
        name = model.joint(joint).name or str(joint)
        if kind == mujoco.mjtJoint.mjJNT_HINGE:
            if abs(abs(axis[1]) - 1) > _TOLERANCE or abs(model.jnt_pos[joint, 1]) > 0:
                return f"hinge {name!r} does not turn about an axis parallel to y"
        elif kind == mujoco.mjtJoint.mjJNT_SLIDE:
            if abs(axis[1]) > _TOLERANCE:
                return f"slide {name!r} leaves the x-z plane"
        else:
            return f"joint {name!r} is neither a hinge nor a slide"
    quat = model.body_quat
    if np.abs(quat[:, [1, 3]]).max() > _TOLERANCE:
        return "a body frame is turned about an axis other than y"
    return None


class PlanarSubtreeCom:
    """``(n, 6)``: a body's subtree centre of mass (x, y, z) and its velocity, for ``n`` states.

    Equal to MuJoCo's ``subtree_com[body]`` and ``subtree_linvel[body]`` after ``mj_forward`` and
    ``mj_subtreeVel`` (to rounding). Takes full physics states (``mj_getState``'s layout).
    """

    def __init__(self, model: mujoco.MjModel, body: str) -> None:
        error = _planar_error(model)
        if error:
            raise ValueError(f"PlanarSubtreeCom needs a model that moves in the x-z plane: {error}")
        self.model = model
        root = model.body(body).id
        ancestors = [root]
        while ancestors[-1] != 0:
            ancestors.append(int(model.body_parentid[ancestors[-1]]))
        # Bodies come after their parents in MuJoCo's order: the chain to the root, then its
        # subtree, are computed in one pass over the bodies whose frames matter.
        in_subtree = np.zeros(model.nbody, dtype=bool)
        for b in range(root, model.nbody):
            in_subtree[b] = b == root or in_subtree[model.body_parentid[b]]
        self.bodies = sorted(set(ancestors[:-1]) | set(np.flatnonzero(in_subtree).tolist()))
        self.subtree = np.flatnonzero(in_subtree)
        self.mass = model.body_mass[self.subtree]
        self.total_mass = float(self.mass.sum())
        self.subtree_set = set(self.subtree.tolist())
        self.offset = np.exp(-2j * np.arctan2(model.body_quat[:, 2], model.body_quat[:, 0]))
        self.body_pos = _complex(model.body_pos)
        self.ipos = _complex(model.body_ipos)
        self.axis = _complex(model.jnt_axis)
        self.anchor = _complex(model.jnt_pos)
        if self.total_mass <= 0:
            raise ValueError(f"body {body!r} and its subtree have no mass")
        y_frame = np.zeros(model.nbody)  # turns about y leave y alone
        for b in range(1, model.nbody):
            y_frame[b] = y_frame[model.body_parentid[b]] + model.body_pos[b, 1]
        y_com = (y_frame + model.body_ipos[:, 1])[self.subtree]
        self.y = float(self.mass @ y_com) / self.total_mass

    def __call__(self, states: np.ndarray, ctrls: np.ndarray | None = None) -> np.ndarray:
        # A point (x, z) is the complex number x + iz: turning by an angle a about y multiplies
        # by exp(-ia), and omega * y_hat x r is -i omega r.
        model, n = self.model, len(states)
        qpos, qvel = (np.ascontiguousarray(x.T) for x in qpos_qvel(model, states))
        turn = {0: np.ones(n, dtype=complex)}
        omega = {0: np.zeros(n)}
        pos = {0: np.zeros(n, dtype=complex)}
        vel = {0: np.zeros(n, dtype=complex)}
        com_pos = np.zeros(n, dtype=complex)
        com_vel = np.zeros(n, dtype=complex)
        for b in self.bodies:
            p = int(model.body_parentid[b])
            arm = self.body_pos[b] * turn[p]
            e, w = turn[p] * self.offset[b], omega[p]
            x, v = pos[p] + arm, vel[p] - 1j * w * arm
            start = model.body_jntadr[b]
            for j in range(start, start + model.body_jntnum[b]):
                q = qpos[model.jnt_qposadr[j]] - model.qpos0[model.jnt_qposadr[j]]
                qd = qvel[model.jnt_dofadr[j]]
                if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:
                    axis = self.axis[j] * e
                    x = x + axis * q
                    v = v + axis * qd - 1j * w * axis * q
                else:  # the body turns about the joint's anchor, which stays put
                    sign = np.sign(model.jnt_axis[j, 1])
                    if self.anchor[j]:
                        arm = self.anchor[j] * e
                        x, v = x + arm, v - 1j * w * arm
                    e, w = e * np.exp(-1j * sign * q), w + sign * qd
                    if self.anchor[j]:
                        arm = self.anchor[j] * e
                        x, v = x - arm, v + 1j * w * arm
            turn[b], omega[b], pos[b], vel[b] = e, w, x, v
            if b in self.subtree_set:
                arm = self.ipos[b] * e
                com_pos += model.body_mass[b] * (x + arm)
                com_vel += model.body_mass[b] * (v - 1j * w * arm)
        com_pos /= self.total_mass
        com_vel /= self.total_mass
        out = np.zeros((n, 6))
        out[:, 0], out[:, 1], out[:, 2] = com_pos.real, self.y, com_pos.imag
        out[:, 3], out[:, 5] = com_vel.real, com_vel.imag
        return out


def _complex(xyz: np.ndarray) -> np.ndarray:
    """Points (..., 3) in the x-z plane as complex numbers x + iz."""
    return xyz[..., 0] + 1j * xyz[..., 2]
