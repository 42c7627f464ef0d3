"""Centre of mass of a planar MuJoCo model's subtree, over many states at once.

MuJoCo computes ``subtree_com`` (in ``mj_comPos``) and ``subtree_linvel`` (in ``mj_subtreeVel``)
one ``MjData`` at a time, and a Python loop over the copies of a batched env would cost more
than the physics. For models that move in the x-z plane (hinges about y, slides in the plane, body
frames turned only about y: HalfCheetah, Hopper, Walker2d) the forward kinematics reduce to 2-D
rotations. The walk over the bodies is traced once into straight-line code, which runs on numpy
arrays over all copies together, or on Python floats for one copy (a single env), with the same
bits. The tests hold it to MuJoCo's numbers.

Why generated code and not MuJoCo's own quantities (the rule: only where they cost the batched
env more than 10%): MuJoCo's ``subtreecom`` and ``subtreelinvel`` sensors on the torso, read as
the Ant reads its own (``ForwardSensors``), need one more forward pass of every copy after its
step, which this straight-line code replaces. Timed in one process, this module and the sensors
in interleaved rounds (frame skip 1, 400 and 800 copies, 1 and 2 MuJoCo threads, 2 CPU cores),
the batched HalfCheetah ran 22-27% fewer env steps per second with the sensors after a forward
pass of a copy of the model without forces (contacts, constraints, gravity, springs, dampers and
actuators off: about 3 us of a thread per copy, against about 0.3 us here), and 44-48% fewer
after the Ant's full ``mj_forward``. Observations and rewards agreed to 2e-15 over whole
episodes, and a single env was as fast either way.
"""

from __future__ import annotations

from collections.abc import Callable

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
        # The mass of the subtree's bodies at and below each body: what moves with its frame.
        downstream = np.where(in_subtree, model.body_mass, 0.0)
        for b in range(model.nbody - 1, 0, -1):
            downstream[model.body_parentid[b]] += downstream[b]
        # Everything a call needs from the model, looked up once: per body (in order), its
        # parent, position, frame turn, joints, mass and centre if it is in the subtree, and the
        # mass that moves with it.
        self.plan = []
        for b in sorted(set(ancestors[:-1]) | set(subtree.tolist())):
            start = model.body_jntadr[b]
            joints = [
                (
                    model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE,
                    int(model.jnt_qposadr[j]),
                    int(model.jnt_dofadr[j]),
                    float(model.qpos0[model.jnt_qposadr[j]]),
                    _in_plane(model.jnt_axis[j]),
                    float(np.sign(model.jnt_axis[j, 1])),
                    _in_plane(model.jnt_pos[j]) if model.jnt_pos[j].any() else None,
                )
                for j in range(start, start + model.body_jntnum[b])
            ]
            turn = 2 * float(np.arctan2(model.body_quat[b, 2], model.body_quat[b, 0]))
            body_mass = float(model.body_mass[b]) if in_subtree[b] else None
            parent = int(model.body_parentid[b])
            plan = (b, parent, _in_plane(model.body_pos[b]), turn, joints, body_mass)
            self.plan.append((*plan, _in_plane(model.body_ipos[b]), float(downstream[b])))
        y_frame = np.zeros(model.nbody)  # turns about y leave y alone
        for b in range(1, model.nbody):
            y_frame[b] = y_frame[model.body_parentid[b]] + model.body_pos[b, 1]
        y_com = (y_frame + model.body_ipos[:, 1])[subtree]
        self.y = float(mass @ y_com) / self.total_mass
        # The walk over the plan, traced once into straight-line code (no loops, lookups or
        # branches, nothing done for zero offsets or the world's fixed frame), runs several
        # times faster on one state's Python floats.
        q, qd = _Symbol.list("q", model.nq), _Symbol.list("qd", model.nv)
        self._traced_angles, angles = _trace(self._angles, ["q"], q)
        fixed = np.array([0.0 if isinstance(a, _Symbol) else a for a in angles])
        cos, sin = [], []
        fixed_turns = zip(angles, np.cos(fixed).tolist(), np.sin(fixed).tolist(), strict=True)
        for i, (a, c, s) in enumerate(fixed_turns):
            cos.append(_Symbol(f"cos[{i}]") if isinstance(a, _Symbol) else c)
            sin.append(_Symbol(f"sin[{i}]") if isinstance(a, _Symbol) else s)
        self._traced_com, _ = _trace(self._com, ["q", "qd", "cos", "sin"], q, qd, cos, sin)

    def __call__(self, states: np.ndarray, ctrls: np.ndarray | None = None) -> np.ndarray:
        # Many states run on arrays, one on Python floats (``one``): the same straight-line code,
        # so the same floating-point operations in the same order, and sines and cosines from
        # numpy either way: the same bits.
        qpos, qvel = qpos_qvel(self.model, states)
        if len(states) == 1:
            return np.array([self.one(qpos[0].tolist(), qvel[0].tolist())])
        q, qd = list(np.ascontiguousarray(qpos.T)), list(np.ascontiguousarray(qvel.T))
        angles = np.stack(np.broadcast_arrays(*self._traced_angles(q)))
        com = self._traced_com(q, qd, list(np.cos(angles)), list(np.sin(angles)))
        return np.stack(np.broadcast_arrays(*com), axis=-1)

    def one(self, qpos: list[float], qvel: list[float]) -> list[float]:
        """One state's ``[x, y, z, vx, vy, vz]`` from its qpos and qvel as Python floats."""
        angles = np.array(self._traced_angles(qpos))
        return self._traced_com(qpos, qvel, np.cos(angles).tolist(), np.sin(angles).tolist())

    def _frames(self, q: list, qd: list | None) -> list[list]:
        """The walk down the plan as a list of frames, each ``[angle about y (only without
        qd), angular velocity, W_x, W_z, dW_x/dt, dW_z/dt]``: W sums, in the frame's axes, each
        vector the frame turns (a body's position in its parent, a hinge's anchor, a slide's
        displacement, a centre of mass) times the mass that it carries. The total mass times the
        centre of mass is then the sum of every frame's W turned into the world."""
        world = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        frames, final = [world], {0: world}
        for b, parent, (px, pz), turn, joints, mass, (ix, iz), down in self.plan:
            f = final[parent]
            f[2], f[3] = f[2] + down * px, f[3] + down * pz
            if turn:
                f = [None if qd else f[0] + turn, f[1], 0.0, 0.0, 0.0, 0.0]
                frames.append(f)
            for slide, qadr, dadr, q0, (ax, az), sign, anchor in joints:
                if slide:
                    d = q[qadr] - q0
                    f[2], f[3] = f[2] + (down * ax) * d, f[3] + (down * az) * d
                    if qd:
                        f[4], f[5] = f[4] + (down * ax) * qd[dadr], f[5] + (down * az) * qd[dadr]
                    continue
                # The frame turns about the hinge's anchor, which stays put.
                if anchor is not None:
                    f[2], f[3] = f[2] + down * anchor[0], f[3] + down * anchor[1]
                if qd:
                    f = [None, f[1] + sign * qd[dadr], 0.0, 0.0, 0.0, 0.0]
                else:
                    f = [f[0] + sign * (q[qadr] - q0), 0.0, 0.0, 0.0, 0.0, 0.0]
                frames.append(f)
                if anchor is not None:
                    f[2], f[3] = f[2] - down * anchor[0], f[3] - down * anchor[1]
            final[b] = f
            if mass is not None:
                f[2], f[3] = f[2] + mass * ix, f[3] + mass * iz
        return frames

    def _angles(self, q: list) -> list:
        """Each frame's angle about y, in the order of ``_frames``."""
        return [frame[0] for frame in self._frames(q, None)]

    def _com(self, q: list, qd: list, cos: list, sin: list) -> list:
        """The centre of mass and its velocity, [x, y, z, vx, vy, vz], from each state's
        coordinates (floats or arrays) and the cosines and sines of ``_angles``."""
        mx = mz = mvx = mvz = 0.0
        for (_, w, wx, wz, dx, dz), c, s in zip(self._frames(q, qd), cos, sin, strict=True):
            x, z = wx * c + wz * s, wz * c - wx * s  # W turned into the world
            mx, mz = mx + x, mz + z
            # Its rate: the frame's turning moves it by (w z, -w x); W's own rate, turned.
            mvx, mvz = mvx + w * z + (dx * c + dz * s), mvz - w * x + (dz * c - dx * s)
        total, zero = self.total_mass, 0.0 * mx
        return [mx / total, zero + self.y, mz / total, mvx / total, zero, mvz / total]


class _Symbol:
    """A value in a traced computation: each operation on it records a line of code."""

    lines: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def list(cls, name: str, size: int) -> list[_Symbol]:
        return [cls(f"{name}[{i}]") for i in range(size)]

    def _record(self, left, operator: str, right):
        # What a zero or a one leaves unchanged is not written (up to the sign of a zero).
        if operator == "*" and (left == 0.0 or right == 0.0):
            return 0.0
        if operator == "*" and (left == 1.0 or right == 1.0):
            return right if left == 1.0 else left
        if operator in "+-" and right == 0.0:
            return left
        if operator == "+" and left == 0.0:
            return right
        result = _Symbol(f"v{len(_Symbol.lines)}")
        _Symbol.lines.append(f"    {result.name} = {_source(left)} {operator} {_source(right)}")
        return result

    def __add__(self, other):
        return self._record(self, "+", other)

    def __radd__(self, other):
        return self._record(other, "+", self)

    def __sub__(self, other):
        return self._record(self, "-", other)

    def __rsub__(self, other):
        return self._record(other, "-", self)

    def __mul__(self, other):
        return self._record(self, "*", other)

    def __rmul__(self, other):
        return self._record(other, "*", self)

    def __truediv__(self, other):
        return self._record(self, "/", other)


def _source(value) -> str:
    return value.name if isinstance(value, _Symbol) else repr(float(value))


def _trace(function: Callable[..., list], names: list[str], *arguments) -> tuple[Callable, list]:
    """``function`` as straight-line code (called on symbols, it writes what it computes), and
    what it returned on them."""
    _Symbol.lines = []
    result = function(*arguments)
    body = "\n".join([*_Symbol.lines, f"    return [{', '.join(map(_source, result))}]"])
    namespace: dict = {}
    exec(f"def traced({', '.join(names)}):\n{body}", namespace)  # noqa: S102 - our own code
    return namespace["traced"], result


def _in_plane(xyz: np.ndarray) -> tuple[float, float]:
    """A point or direction in the x-z plane as (x, z)."""
    return float(xyz[0]), float(xyz[2])
