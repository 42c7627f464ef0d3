"""Meta-RL algorithms side by side: one table, family x algorithm, from the training seeds that
``benchmarks.quality_rl --write`` kept, beside the MAML paper's figure.

It trains nothing. A cell is the mean ± standard deviation over training seeds of the average
return on the family's fixed test tasks after 0, 1, 2 and 3 inner steps, as ``quality_rl``
evaluated them (each algorithm's section there gives the seeds one by one). A family's rows use
the authors' test sampler where every row was evaluated with it (``--rllab-sampler``), whole
episodes otherwise. Training time is minutes per seed as trained; its ratio to MAML-TRPO's is
the projected training times ``benchmarks.speed_rl --algorithms`` measured side by side on one
machine where it has run for the family (seeds trained in turn share the machine with whatever
else ran), else the seeds' own, between seeds of one machine description and code. A cell with
no kept seed reads "no kept seed"; train it with

    python -m benchmarks.quality_rl --env FAMILY --write [--rllab-sampler] -- FLAGS

(FLAGS: the algorithm's below), then run

    python -m benchmarks.compare_rl [--write] [--plot compare_rl.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.quality_rl import PAPER, benchmark_name
from benchmarks.results import write_section
from benchmarks.seed_records import SEEDS, code_trees

# The algorithms and the training flags that make each from a family's MAML-TRPO preset.
ALGORITHMS: dict[str, list[str]] = {
    "MAML-TRPO": [],
    "DiCE-TRPO": ["--inner-estimator", "dice"],
    "MAML-PPO": ["--config", "maml-ppo"],
    "ProMP": ["--config", "promp"],
}
RLLAB = "rllab's sampler"
TIME_AIM = 1.5  # the aim: at most this many times MAML-TRPO's training time


def speed_record_path(family: str) -> Path:
    """Where ``speed_rl --algorithms --write`` keeps the family's side-by-side times."""
    return SEEDS / "speed-rl-algorithms" / f"{family}.json"


def side_by_side_ratios(family: str) -> tuple[dict[str, float], str] | None:
    """Each algorithm's projected training time over MAML-TRPO's, measured side by side by
    ``speed_rl --algorithms``, and where; None before it ran."""
    path = speed_record_path(family)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    times = {name: t["minutes"] for name, t in record["algorithms"].items()}
    where = f"{record['machine'].split(';')[0]}, {record['date']}"
    # To the two decimals the table prints, which the aim is read at.
    return {name: round(t / times["MAML-TRPO"], 2) for name, t in times.items()}, where


def kept_seeds(family: str, flags: list[str]) -> list[dict[str, Any]]:
    """The seed records ``quality_rl`` kept for ``family`` trained with ``flags``."""
    folder = SEEDS / benchmark_name(family, flags)
    found = [json.loads(path.read_text()) for path in sorted(folder.glob("seed*.json"))]
    return [r for r in found if r["settings"]["variant"] == flags]


def seed_means(record: dict[str, Any], sampler: str) -> list[float]:
    """One seed's average return over the test tasks after each step."""
    return [
        statistics.fmean(task_returns) for task_returns in record["samplers"][sampler]["returns"]
    ]


def cell(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def provenance(records: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The machines and the code (as JSON) the records' seeds trained on."""
    return {r["machine"] for r in records}, {json.dumps(r["code"], sort_keys=True) for r in records}


Curves = dict[str, list[list[float]]]  # algorithm -> per step, each seed's average return


def family_rows(family: str, today: dict[str, str]) -> tuple[list[str], str, Curves]:
    """The family's table rows, its line on the aims and each algorithm's returns by step."""
    found = {name: kept_seeds(family, flags) for name, flags in ALGORITHMS.items()}
    kept = [r for records in found.values() for r in records]
    sampler = RLLAB if kept and all(RLLAB in r["samplers"] for r in kept) else "episodes"
    paper, interval = PAPER[family]
    rows = [
        f"| {family} | MAML paper (authors' run, 40 tasks; ± its 95% interval) | 1 | "
        + " | ".join(f"{p:.1f} ± {c:.1f}" for p, c in zip(paper, interval, strict=True))
        + " | | | |"
    ]
    reference = found["MAML-TRPO"]
    reference_provenance = provenance(reference)
    side_by_side = side_by_side_ratios(family)
    curves: Curves = {}
    ratios: dict[str, float] = {}
    for name, records in found.items():
        if not records:
            rows.append(f"| | {name} | 0 | no kept seed | | | | | | |")
            continue
        per_seed = [seed_means(r, sampler) for r in records]
        by_step = [list(step) for step in zip(*per_seed, strict=True)]
        curves[name] = by_step
        minutes = [r["minutes"] for r in records]
        machines, codes = provenance(records)
        if len(codes) == 1 and json.loads(next(iter(codes))) == today:
            trained = "today's code"
        else:
            trained = (
                "older code (" + ", ".join(sorted({r["evaluated_at"][:7] for r in records})) + ")"
            )
        ratio = "n/a (other machine or code)"
        if side_by_side is not None:
            ratios[name] = side_by_side[0][name]
            ratio = f"{ratios[name]:.2f}x (side by side)"
        elif reference and reference_provenance == (machines, codes):
            ratios[name] = statistics.fmean(minutes) / statistics.fmean(
                r["minutes"] for r in reference
            )
            ratio = f"{ratios[name]:.2f}x"
        hosts = " / ".join(sorted({m.split(";")[0] for m in machines}))
        duration = f"{statistics.fmean(minutes):.{1 if max(minutes) < 10 else 0}f}"
        steps = " | ".join(cell(step) for step in by_step)
        rows.append(
            f"| | {name} | {len(records)} | {steps} | {duration} | {ratio} | {trained}; {hosts} |"
        )
    if not curves:
        return rows, f"- {family}: no algorithm run yet", curves
    one_step = {name: by_step[1] for name, by_step in curves.items()}
    best = max(one_step, key=lambda n: statistics.fmean(one_step[n]))
    seeds = len(one_step[best])
    reaching = [n for n in one_step if statistics.fmean(one_step[n]) >= paper[1]]
    reached = "reaches" if best in reaching else "does not reach"
    met = [f"{n} ({ratios[n]:.2f}x)" for n in reaching if ratios.get(n, TIME_AIM + 1) <= TIME_AIM]
    if met:
        aim = f"aim met by {', '.join(met)} (x: of MAML-TRPO's training time)"
    elif not reaching:
        aim = "aim not met"
    elif any(n in ratios for n in reaching):
        aim = f"aim not met: reached only in over {TIME_AIM}x MAML-TRPO's training time"
    else:
        aim = "aim open: training time not comparable with MAML-TRPO's here"
    line = (
        f"- {family} ({sampler}): best after one step: {best} {cell(one_step[best])} "
        f"({seeds} seed{'s' if seeds > 1 else ''}), {reached} the paper's {paper[1]:.1f}; {aim}"
    )
    return rows, line, curves


def plot(families: dict[str, Curves], path: Path) -> None:
    """One panel per family with kept seeds: each algorithm's mean return after each step (bars:
    standard deviation over seeds) and the paper's (bars: its 95% interval)."""
    shown = {family: curves for family, curves in families.items() if curves}
    figure, axes = plt.subplots(
        1, len(shown), figsize=(4 * len(shown) + 1.5, 3.4), squeeze=False, layout="constrained"
    )
    for axis, (family, curves) in zip(axes[0], shown.items(), strict=True):
        paper, interval = PAPER[family]
        steps = range(len(paper))
        axis.errorbar(
            steps, paper, yerr=interval, color="black", ls="--", marker="s", label="MAML paper"
        )
        for name, by_step in curves.items():
            means = [statistics.fmean(step) for step in by_step]
            spread = [statistics.stdev(step) if len(step) > 1 else 0.0 for step in by_step]
            color = f"C{list(ALGORITHMS).index(name)}"  # one colour per algorithm in every panel
            axis.errorbar(steps, means, yerr=spread, marker="o", capsize=2, color=color, label=name)
        axis.set(title=family, xlabel="inner steps", xticks=list(steps))
    axes[0][0].set_ylabel("average return on the test tasks")
    labels = {}
    for axis in axes[0]:
        labels.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
    figure.legend(labels.values(), labels.keys(), loc="outside right center", fontsize="small")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--plot", type=Path, help="also draw the table's curves to this PNG file")
    args = parser.parse_args()
    today = code_trees()
    table = [
        "| family | algorithm | seeds | 0 steps | 1 step | 2 steps | 3 steps | minutes per seed "
        "| time / MAML-TRPO's | trained on |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    aims, families = [], {}
    for family in PAPER:
        rows, line, families[family] = family_rows(family, today)
        table += rows
        aims.append(line)
    flags = "; ".join(f"{n} `{' '.join(f) or '(the preset)'}`" for n, f in ALGORITHMS.items())
    body = (
        "Average return on each family's fixed test tasks after 0 / 1 / 2 / 3 inner steps, mean ± "
        "standard deviation over training seeds (quality_rl's sections have each seed and the "
        f"settings). Algorithms, as training flags over the family's preset: {flags}.\n\n"
        + "\n".join(table)
        + "\n\nAim (the issue's): an algorithm at or above the MAML paper's figure after one "
        f"step, in at most {TIME_AIM}x MAML-TRPO's training time. The ratio is the projected "
        "training times measured side by side on one machine (`speed_rl --algorithms`) where "
        "marked; minutes per seed are as trained, in turn, on hosts of one description that have "
        "differed by up to a third in speed, some beside other work.\n\n" + "\n".join(aims)
    )
    print(body)
    if args.plot:
        plot(families, args.plot)
    if args.write:
        write_section("compare_rl", body, __spec__.name)


if __name__ == "__main__":
    main()
