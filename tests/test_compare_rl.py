"""The algorithm comparison reads quality_rl's kept seeds into one family x algorithm table."""

import datetime
import json
import statistics
import sys

import pytest

from benchmarks import compare_rl, results
from benchmarks.quality_rl import benchmark_name

CODE = {"maml": "a", "maml_rl": "b", "envs": "c", "configs": "d"}
HOST = "Some CPU (AVX2), 2 cores; torch 2.13.0+cpu, 2 threads; Python 3.11.7"


def keep(seeds, family, flags, seed, returns, minutes, machine=HOST, code=CODE):
    """A seed record as quality_rl writes it: per step, each test task's return."""
    record = {
        "settings": {"env": family, "variant": flags},
        "code": code,
        "evaluated_at": "abc1234" + "0" * 33,
        "machine": machine,
        "minutes": minutes,
        "samplers": {"episodes": {"returns": returns}},
    }
    path = seeds / benchmark_name(family, flags) / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def cells_of(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


@pytest.fixture
def seeds(tmp_path, monkeypatch):
    monkeypatch.setattr(compare_rl, "SEEDS", tmp_path / "seeds")
    monkeypatch.setattr(compare_rl, "code_trees", lambda: CODE)
    return tmp_path / "seeds"


def test_cells_are_mean_and_sd_over_seeds_of_the_task_means_with_the_time_ratio(seeds):
    family = "halfcheetah-dir"
    trpo = [
        [[-40.0, -44.0], [50.0, 70.0], [60.0, 80.0], [70.0, 90.0]],
        [[-42.0] * 2, [40.0] * 2, [50.0] * 2, [60.0] * 2],
    ]
    promp = [
        [[-35.0, -37.0], [300.0, 310.0], [310.0, 320.0], [320.0, 330.0]],
        [[-30.0] * 2, [290.0] * 2, [300.0] * 2, [310.0] * 2],
    ]
    for seed, returns in enumerate(trpo):
        keep(seeds, family, [], seed, returns, minutes=10.0 + seed)
    for seed, returns in enumerate(promp):
        keep(seeds, family, ["--config", "promp"], seed, returns, minutes=15.0 + seed)
    rows, aims, _ = compare_rl.family_rows(family, CODE)
    cells = {c[1]: c for c in map(cells_of, rows)}
    one_step = [statistics.fmean(seed[1]) for seed in promp]  # 305, 290
    assert cells["ProMP"][2] == "2"
    assert (
        cells["ProMP"][4] == f"{statistics.fmean(one_step):.1f} ± {statistics.stdev(one_step):.1f}"
    )
    assert cells["ProMP"][7] == "16" and cells["ProMP"][8] == f"{15.5 / 10.5:.2f}x"
    assert cells["MAML-TRPO"][4] == "50.0 ± 14.1"
    assert cells["DiCE-TRPO"][3] == "no kept seed"
    assert "today's code" in cells["ProMP"][9] and "Some CPU (AVX2)" in cells["ProMP"][9]
    assert aims == (
        "- halfcheetah-dir (episodes): best after one step: ProMP 297.5 ± 10.6 (2 seeds), "
        f"reaches the paper's 293.2; aim met by ProMP ({15.5 / 10.5:.2f}x) (x: of MAML-TRPO's "
        "training time)"
    )


def test_times_on_other_machines_or_code_are_not_compared(seeds):
    family = "navigation-2d"
    returns = [[-40.0], [-13.0], [-4.0], [-4.0]]
    keep(seeds, family, [], 0, returns, minutes=1.0, machine="Another CPU, 2 cores; x")
    better = [[-40.0], [-9.0], [-4.0], [-4.0]]
    keep(seeds, family, ["--config", "maml-ppo"], 0, better, minutes=1.5)
    keep(seeds, family, ["--inner-estimator", "dice"], 0, returns, 2.0, code={**CODE, "maml": "z"})
    rows, aims, _ = compare_rl.family_rows(family, CODE)
    cells = {c[1]: c for c in map(cells_of, rows)}
    assert cells["MAML-PPO"][8] == "n/a (other machine or code)"
    assert cells["DiCE-TRPO"][9].startswith("older code (abc1234)")
    assert aims == (
        "- navigation-2d (episodes): best after one step: MAML-PPO -9.0 (1 seed), reaches the "
        "paper's -11.7; aim open: training time not comparable with MAML-TRPO's here"
    )


def test_the_summary_table_has_one_row_per_family_for_the_best_algorithm(
    seeds, tmp_path, monkeypatch
):
    monkeypatch.setattr(results, "RESULTS", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "commit", lambda: "commit abc1234")
    monkeypatch.setattr(results, "machine", lambda: "a test machine")
    figure = tmp_path / "compare.png"
    monkeypatch.setattr(sys, "argv", ["compare_rl", "--write", "--plot", str(figure)])
    keep(seeds, "navigation-2d", ["--config", "promp"], 0, [[-40.0], [-10.0], [-4.0], [-4.0]], 2.0)
    keep(seeds, "navigation-2d", ["--config", "promp"], 1, [[-41.0], [-11.0], [-5.0], [-5.0]], 2.0)
    compare_rl.main()
    assert figure.read_bytes().startswith(b"\x89PNG")
    text = results.RESULTS.read_text()
    rows = [
        r
        for r in text.splitlines()
        if r.startswith("| RL quality") or r.startswith("|  | [compare")
    ]
    assert rows == [
        "| RL quality | [compare_rl](#compare_rl), navigation-2d | best return after 1 step: ProMP "
        "-10.5 ± 0.7 (episodes; mean ± sd of 2 seeds) | MAML paper -11.7 | reaches the paper's "
        "figure; aim open: training time not comparable with MAML-TRPO's here | "
        f"{datetime.date.today().isoformat()}, abc1234 |"
    ]


def test_side_by_side_times_give_the_ratio_where_measured(seeds):
    family = "halfcheetah-dir"
    keep(seeds, family, [], 0, [[-40.0], [50.0], [60.0], [70.0]], minutes=10.0)
    keep(seeds, family, ["--config", "promp"], 0, [[-35.0], [300.0], [310.0], [320.0]], 30.0)
    record = {
        "machine": HOST,
        "date": "2026-12-08",
        "algorithms": {
            name: {"seconds_per_iteration": s, "iterations": 500, "minutes": s * 500 / 60}
            for name, s in (
                ("MAML-TRPO", 2.0),
                ("DiCE-TRPO", 2.2),
                ("MAML-PPO", 2.4),
                ("ProMP", 2.8),
            )
        },
    }
    path = compare_rl.speed_record_path(family)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    rows, aims, _ = compare_rl.family_rows(family, CODE)
    cells = {c[1]: c for c in map(cells_of, rows)}
    # The seeds' minutes (3x, a busy machine) stay as trained; the ratio is the side by side one.
    assert cells["ProMP"][7] == "30" and cells["ProMP"][8] == "1.40x (side by side)"
    assert aims.endswith("aim met by ProMP (1.40x) (x: of MAML-TRPO's training time)")
