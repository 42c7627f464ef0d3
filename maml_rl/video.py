"""Videos of a policy on one task before adaptation and after each inner step, recorded with
Gymnasium's ``RecordVideo`` (which writes with moviepy, the optional ``video`` extra)."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo

from envs import family_class
from maml.inner_step import Params
from maml.run.errors import UsageError
from maml_rl.trained import Trained, act, adaptation

INSTALL = "pip install 'maml-toolkit[video]'"
NO_DISPLAY = "on a machine without a display set MUJOCO_GL=egl (or MUJOCO_GL=osmesa)"


def check_video(env: str) -> None:
    """Refuse a video where none can be made, in one line, before any work: a family without
    ``rgb_array`` frames, no moviepy, or no OpenGL backend that renders (found by trying)."""
    if "rgb_array" not in family_class(env).metadata.get("render_modes", ()):
        raise UsageError(f"--video: {env} has no rgb_array rendering to record")
    try:
        import moviepy  # noqa: F401  (optional: RecordVideo writes its files with it)
    except ImportError:
        raise UsageError(f"--video needs moviepy: {INSTALL}") from None
    probe = gym.make(env, render_mode="rgb_array")
    try:
        with warnings.catch_warnings():  # GLFW's complaints before the failure: the line says it
            warnings.simplefilter("ignore")
            probe.reset(seed=0)
            probe.render()
    except Exception as error:  # the GL backends fail in many ways; each means the same here
        cause = (str(error).strip().splitlines() or [""])[0]
        raise UsageError(
            f"--video: rendering {env} failed ({type(error).__name__}: {cause}); {NO_DISPLAY}"
        ) from None
    finally:
        probe.close()


def video_name(env: str, task: Sequence[float] | np.ndarray, step: int) -> str:
    """``halfcheetah-vel_task_1.23_step_0``, say: the family, the task and the inner steps."""
    values = ",".join(f"{float(v):.3g}" for v in np.atleast_1d(task))
    return f"{env}_task_{values}_step_{step}"


def record_episode(
    trained: Trained,
    params: Params,
    task: Sequence[float] | np.ndarray,
    path: Path,
    seed: int = 0,
) -> float:
    """Record one episode of ``task`` with the policy's likeliest actions under ``params`` (the
    run's horizon and frame skip) to the file ``path`` (.mp4); its return."""
    config = trained.config
    settings = {} if config.frame_skip is None else {"frame_skip": config.frame_skip}
    env = gym.make(
        config.env,
        task=task,
        render_mode="rgb_array",
        max_episode_steps=config.horizon,
        **settings,
    )
    # RecordVideo names its file itself, and warns about a folder that exists: a new one.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".recording-") as scratch:
        folder = Path(scratch) / "video"
        env = RecordVideo(env, str(folder), episode_trigger=lambda _: True)
        try:
            obs, _ = env.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                action = act(trained.policy, params, obs, env.action_space)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
        finally:
            env.close()
        (recorded,) = folder.glob("*.mp4")
        recorded.replace(path)
    return total


def record_adaptation(
    trained: Trained,
    task: Sequence[float] | np.ndarray,
    folder: str | Path,
    steps: int | None = None,
    step_sizes: Sequence[float] | None = None,
    rollouts: int | None = None,
    seed: int = 0,
) -> list[tuple[Path, float]]:
    """Videos of ``task`` before adaptation and after each inner step (the adaptation of
    :func:`maml_rl.trained.adaptation`), each episode reset from ``seed``: the files,
    ``folder/<env>_task_<task>_step_<s>.mp4``, and the episodes' returns."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    with contextlib.closing(
        adaptation(trained, task, steps, step_sizes, rollouts, seed)
    ) as per_step:
        for step, params in enumerate(per_step):
            path = folder / f"{video_name(trained.config.env, task, step)}.mp4"
            videos.append((path, record_episode(trained, params, task, path, seed)))
    return videos
