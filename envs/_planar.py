"""Centre of mass of a planar MuJoCo model's subtree, over many states at once.

MuJoCo computes ``subtree_com`` (in ``mj_comPos``) and ``subtree_linvel`` (in ``mj_subtreeVel``)
one ``MjData`` at a time, and a Python loop over the copies of a batched env would cost more
than the physics. For models that move in the x-z plane (hinges about y, slides in the plane, body
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
        subtree = np.flatnonzero(in_subtree)
        mass = model.body_mass[subtree]
        self.total_mass = float(mass.sum())
        if self.total_mass <= 0:
            raise ValueError(f"body {body!r} and its subtree have no mass")
        # Everything a call needs from the model, looked up once: per body (in order), its
        # parent, position, frame turn, joints, and mass and centre if it is in the subtree.
        offset = np.exp(-2j * np.arctan2(model.body_quat[:, 2], model.body_quat[:, 0]))
        body_pos, ipos = _complex(model.body_pos), _complex(model.body_ipos)
        axis, anchor = _complex(model.jnt_axis), _complex(model.jnt_pos)
        self.plan = []
        for b in sorted(set(ancestors[:-1]) | set(subtree.tolist())):
            start = model.body_jntadr[b]
            joints = [
                (
                    model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE,
                    model.jnt_qposadr[j],
                    model.jnt_dofadr[j],
                    model.qpos0[model.jnt_qposadr[j]],
                    axis[j],
                    np.sign(model.jnt_axis[j, 1]),
                    anchor[j],
                )
                for j in range(start, start + model.body_jntnum[b])
            ]
            body_mass = model.body_mass[b] if in_subtree[b] else None
            parent = int(model.body_parentid[b])
            self.plan.append((b, parent, body_pos[b], offset[b], joints, body_mass, ipos[b]))
        y_frame = np.zeros(model.nbody)  # turns about y leave y alone
        for b in range(1, model.nbody):
            y_frame[b] = y_frame[model.body_parentid[b]] + model.body_pos[b, 1]
        y_com = (y_frame + model.body_ipos[:, 1])[subtree]
        self.y = float(mass @ y_com) / self.total_mass

    def __call__(self, states: np.ndarray, ctrls: np.ndarray | None = None) -> np.ndarray:
        # A point (x, z) is the complex number x + iz: turning by an angle a about y multiplies
        # by exp(-ia), and omega * y_hat x r is -i omega r.
        n = len(states)
        qpos, qvel = (np.ascontiguousarray(x.T) for x in qpos_qvel(self.model, states))
        turn = {0: np.ones(n, dtype=complex)}
        omega = {0: np.zeros(n)}
        pos = {0: np.zeros(n, dtype=complex)}
        vel = {0: np.zeros(n, dtype=complex)}
        com_pos = np.zeros(n, dtype=complex)
        com_vel = np.zeros(n, dtype=complex)
        for b, p, body_pos, offset, joints, mass, ipos in self.plan:
            arm = body_pos * turn[p]
            e, w = turn[p] * offset, omega[p]
            x, v = pos[p] + arm, vel[p] - 1j * w * arm
            for slide, qadr, dadr, q0, axis, sign, anchor in joints:
                q, qd = qpos[qadr] - q0, qvel[dadr]
                if slide:
                    axis = axis * e
                    x = x + axis * q
                    v = v + axis * qd - 1j * w * axis * q
                else:  # the body turns about the joint's anchor, which stays put
                    if anchor:
                        arm = anchor * e
                        x, v = x + arm, v - 1j * w * arm
                    e, w = e * np.exp(-1j * sign * q), w + sign * qd
                    if anchor:
                        arm = anchor * e
                        x, v = x - arm, v + 1j * w * arm
            turn[b], omega[b], pos[b], vel[b] = e, w, x, v
            if mass is not None:
                arm = ipos * e
                com_pos += mass * (x + arm)
                com_vel += mass * (v - 1j * w * arm)
        com_pos /= self.total_mass
        com_vel /= self.total_mass
        out = np.zeros((n, 6))
        out[:, 0], out[:, 1], out[:, 2] = com_pos.real, self.y, com_pos.imag
        out[:, 3], out[:, 5] = com_vel.real, com_vel.imag
        return out


def _complex(xyz: np.ndarray) -> np.ndarray:
    """Points (..., 3) in the x-z plane as complex numbers x + iz."""
    return xyz[..., 0] + 1j * xyz[..., 2]
