"""The evaluate, paper and adapt commands: their help, exact option names, and videos of a
policy."""

import os
import subprocess
import sys

import pytest

from envs import Navigation2D
from maml_rl import evaluate as rl_evaluate
from maml_rl import paper as rl_paper
from maml_rl import train as rl_train
from maml_sl import adapt as sl_adapt
from maml_sl import evaluate as sl_evaluate
from tests.conftest import cli

TINY_RL = ["--meta-batch", "3", "--rollouts", "2", "--horizon", "5", "--hidden", "8"]
TINY_RL += ["--device", "cpu", "--cg-iterations", "3", "--iterations", "1"]
EVALUATE = ["--tasks", "1", "--steps", "1", "--rollouts", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def rl_runs(tmp_path_factory):
    """Tiny runs of one iteration: navigation-2d and halfcheetah-vel."""
    runs = {}
    for env in ("navigation-2d", "halfcheetah-vel"):
        runs[env] = tmp_path_factory.mktemp("runs") / env
        assert cli(rl_train.main, ["--env", env, *TINY_RL, "--run-dir", str(runs[env])]) == 0
    return runs


def help_text(main, capsys) -> str:
    with pytest.raises(SystemExit):
        main(["--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("main", "shown"),
    [
        (sl_evaluate.main, ["new tasks per K (default: 600)", "(default: 5 10 20 for sinusoid"]),
        (rl_evaluate.main, ["new test tasks (default: 40)", "inner steps (default: 3)"]),
        (rl_paper.main, ["new test tasks (default: 40)", "initialisation's seed (default: 0)"]),
        (sl_adapt.main, ["(default: 3, or the run's if it trained with more)"]),
    ],
)
def test_help_shows_each_default_and_what_a_missing_value_means(main, shown, capsys):
    text = help_text(main, capsys)
    for phrase in [*shown, "auto: CUDA when present (default: auto)"]:
        assert phrase in text
    assert "None" not in text


@pytest.mark.parametrize(
    ("main", "extra"),
    [
        (sl_evaluate.main, []),
        (rl_evaluate.main, []),
        (rl_paper.main, []),
        (sl_adapt.main, ["--support", "s", "--query", "q"]),
    ],
)
def test_an_abbreviated_option_is_refused_not_taken_for_the_full_name(
    main, extra, tmp_path, capsys
):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), *extra, "--step", "1"])  # --steps exists
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --step 1" in capsys.readouterr().err


def test_video_without_moviepy_is_one_line_naming_the_extra(rl_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # import moviepy raises ImportError
    args = [str(rl_runs["halfcheetah-vel"]), *EVALUATE, "--video", str(tmp_path / "videos")]
    assert cli(rl_evaluate.main, args) == 2
    out, err = capsys.readouterr()
    assert err.splitlines()[-1] == (
        "error: --video needs moviepy: pip install 'maml-toolkit[video]'"
    )
    assert "Traceback" not in err and not out  # refused before evaluating
    assert not (tmp_path / "videos").exists()


def test_video_of_a_family_without_frames_is_one_line(rl_runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Navigation2D, "metadata", {"render_modes": []})
    args = [str(rl_runs["navigation-2d"]), *EVALUATE, "--video", str(tmp_path / "videos")]
    assert cli(rl_evaluate.main, args) == 2
    err = capsys.readouterr().err
    assert (
        err.splitlines()[-1] == "error: --video: navigation-2d has no rgb_array rendering to record"
    )


@pytest.mark.slow
def test_video_records_the_policy_before_and_after_each_inner_step(rl_runs, tmp_path):
    pytest.importorskip("moviepy", reason="--video needs moviepy (the [video] extra)")
    # Rendering needs an OpenGL backend; which one works is found by trying, in a process of its
    # own (a failed GL context can take the process with it).
    backends = [os.environ["MUJOCO_GL"]] if "MUJOCO_GL" in os.environ else ["egl", "osmesa"]
    failures = []
    for backend in backends:
        folder = tmp_path / backend
        command = [sys.executable, "-m", "maml_rl.evaluate", str(rl_runs["halfcheetah-vel"])]
        command += [*EVALUATE, "--steps", "2", "--video", str(folder)]
        done = subprocess.run(
            command,
            env={**os.environ, "MUJOCO_GL": backend},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode == 2 and "--video: rendering" in done.stderr:
            failures.append(f"MUJOCO_GL={backend}: {done.stderr.strip().splitlines()[-1]}")
            continue
        assert done.returncode == 0, done.stderr
        break
    else:
        pytest.skip("no OpenGL backend renders here: " + "; ".join(failures))
    videos = sorted(folder.iterdir())
    task = f"{rl_evaluate.new_tasks('halfcheetah-vel', 1, 1)[0, 0]:.3g}"
    assert [v.name for v in videos] == [
        f"halfcheetah-vel_task_{task}_step_{step}.mp4" for step in range(3)
    ]
    for video in videos:
        assert video.read_bytes()[4:8] == b"ftyp"  # an MP4 file
        assert f"video: {video} (return " in done.stdout


def test_video_of_navigation_needs_no_opengl(rl_runs, tmp_path, capsys):
    pytest.importorskip("moviepy", reason="--video needs moviepy (the [video] extra)")
    folder = tmp_path / "videos"
    args = [str(rl_runs["navigation-2d"]), *EVALUATE, "--video", str(folder)]
    assert cli(rl_evaluate.main, args) == 0
    videos = sorted(path.name for path in folder.iterdir())
    assert len(videos) == 2 and all(name.endswith(".mp4") for name in videos)
    assert [name.rsplit("_", 1)[1] for name in videos] == ["0.mp4", "1.mp4"]
