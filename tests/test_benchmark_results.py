"""RESULTS.md opens with a table read from its sections, which stay whole and in topic order."""

import datetime
import sys

import pytest

from benchmarks import results
from benchmarks.results import parse, readable, rebuild, write_section

SPEED = """| inner steps | method | median ms / meta-iteration | max abs grad diff to ours |
|---|---|---|---|
| 1 | ours, vmap | 5.00 | reference |
| 1 | higher | 10.00 | 6.0e-08 |

Sinusoid, 2x40 ReLU MLP.
- 1 inner step(s): fastest peer form higher 10.00 ms, ours 5.00 ms: 2.00x"""

RL = """navigation-2d: training seeds 0, 1; each 100 meta-iterations.

| | 0 steps | 1 step | 2 steps | 3 steps |
|---|---|---|---|---|
| seed 0, episodes | -40.0 | -11.0 | -3.0 | -3.0 |
| seed 1, episodes | -39.0 | -10.0 | -4.0 | -5.0 |
| **mean over seeds**, episodes | -39.5 | -10.5 | -3.5 | -4.0 |
| standard deviation between seeds | 0.7 | 0.7 | 0.7 | 1.4 |
| authors (one run, 40 tasks) | -40.4 | -11.7 | -3.3 | -3.2 |
| its 95% interval, ± | 4.1 | 2.2 | 0.6 | 0.6 |

- episodes: the mean over seeds after 1 / 2 / 3 steps is within / within / below the authors' \
95% interval"""

SINUSOID = """Run: 10 iterations.

```
query MSE on 600 new tasks per K (mean ± 95% confidence interval)
K \\ steps           1 step          5 steps         10 steps
        5  0.6969 ± 0.0654  0.6184 ± 0.2431        inf ± nan
```

K = 5 after 1 / 5 / 10 steps: ours mean 0.70 / 0.62 / inf (median 0.44 / 0.20 / 0.18); MAML \
paper 0.67 / 0.38 / 0.35."""


@pytest.fixture
def file(tmp_path, monkeypatch):
    path = tmp_path / "RESULTS.md"
    monkeypatch.setattr(results, "RESULTS", path)
    monkeypatch.setattr(results, "commit", lambda: "commit abc1234")
    monkeypatch.setattr(results, "machine", lambda: "a test machine")
    monkeypatch.setattr(sys, "argv", ["bench", "--write"])
    return path


def summary_rows(text):
    """The summary table's rows, as lists of cells."""
    table = text.split("\n\n| topic |", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in table.splitlines()[2:]]


def test_a_write_rebuilds_the_table_and_keeps_the_topic_order(file):
    write_section("speed_sinusoid (cpu)", SPEED, "benchmarks.speed_sinusoid")
    write_section("quality_rl (navigation-2d)", RL, "benchmarks.quality_rl")
    text = file.read_text()
    assert text.startswith(results.HEADER)
    assert [s.name for s in parse(text)] == ["quality_rl (navigation-2d)", "speed_sinusoid (cpu)"]
    assert text.index("# RL quality") < text.index("<!-- quality_rl") < text.index("# Speed")
    rl, speed = summary_rows(text)
    assert rl[0] == "RL quality" and speed[0] == "Speed"
    assert rl[1] == "[quality_rl (navigation-2d)](#quality_rl-navigation-2d)"
    assert "-10.5 ± 0.7 / -3.5 ± 0.7 / -4.0 ± 1.4 (episodes; mean ± sd of 2 seeds)" in rl[2]
    assert rl[3].startswith("authors' run: -40.4 ± 4.1 / -11.7 ± 2.2")
    assert rl[4] == "within the paper's 95% interval after 1 and 2 steps; below after 3 steps"
    assert speed[4] == "2.00x faster than the fastest peer form"
    assert rl[5] == speed[5] == f"{datetime.date.today().isoformat()}, abc1234"


def test_a_rewritten_section_replaces_its_row_in_place(file):
    write_section("quality_rl (navigation-2d)", RL, "benchmarks.quality_rl")
    write_section("speed_sinusoid (cpu)", SPEED, "benchmarks.speed_sinusoid")
    write_section("speed_sinusoid (cpu)", SPEED.replace("5.00 ms: 2.00x", "4.00 ms: 2.50x"), "m")
    text = file.read_text()
    assert text.count("<!-- speed_sinusoid (cpu):start -->") == 1
    assert [row[4] for row in summary_rows(text)][1] == "2.50x faster than the fastest peer form"
    rebuild(file)
    assert file.read_text() == text


def test_an_unknown_or_unreadable_section_is_kept_and_said_so(file):
    write_section("speed_sinusoid (cpu)", "a body in words", "benchmarks.speed_sinusoid")
    write_section("new_benchmark (cpu)", "a new benchmark's body", "benchmarks.new_benchmark")
    text = file.read_text()
    assert "a body in words" in text and "a new benchmark's body" in text
    rows = summary_rows(text)
    assert [row[0] for row in rows] == ["Speed", "Other"]
    assert all("not recognised" in row[4] for row in rows)


def test_an_infinite_mean_is_written_as_n_a_with_why(file):
    write_section("quality_sinusoid (trained with K = 10)", SINUSOID, "benchmarks.quality_sinusoid")
    text = file.read_text()
    assert "inf" not in text.replace("infinity", "")
    row = next(line for line in text.splitlines() if line.startswith("        5"))
    assert row == "        5  0.6969 ± 0.0654  0.6184 ± 0.2431   n/a (diverged)"
    assert "n/a (diverged): a test task's figure overflowed to infinity" in text
    (sinusoid,) = summary_rows(text)
    assert sinusoid[2].endswith("0.6184 ± 0.2431 / n/a (diverged)")
    assert sinusoid[4] == (
        "the paper's figure within our 95% interval after 1 and 5 steps; "
        "no mean (a task diverged) after 10 steps"
    )
    assert readable(readable(SINUSOID)) == readable(SINUSOID)


def test_every_committed_section_is_read_into_the_table(tmp_path):
    copy = tmp_path / "RESULTS.md"
    copy.write_text(results.RESULTS.read_text())
    before = {s.name: s.body for s in parse(copy.read_text())}
    rebuild(copy)
    text = copy.read_text()
    assert {s.name: s.body for s in parse(text)}.keys() == before.keys()
    rows = summary_rows(text)
    # Another algorithm's quality_rl section is summarised by compare_rl's rows.
    variants = [n for n in before if n.startswith("quality_rl (") and ", " in n]
    assert len(rows) >= len(before) - len(variants)
    assert not [row for row in rows if "not recognised" in row[4]]
    rebuild(copy)
    assert copy.read_text() == text


def test_the_python_envs_and_side_by_side_algorithm_sections_are_summarised():
    python_envs = (
        "x\n\n| family | copies | single env (steps/s) | x cores | workers | batch (steps/s) "
        "| % of single x cores | aim 80% |\n|---|---|---|---|---|---|---|---|\n"
        "| metaworld-ml10 | 200 | 2,700 | 5,400 | 1 | 2,500 | 46% |  |\n"
        "| metaworld-ml10 | 200 | 2,700 | 5,400 | 2 | 4,800 | 89% | met |\n"
    )
    [line] = results.SUMMARIES["speed_python_envs"]("speed_python_envs (cpu)", python_envs)
    assert line.figure == "Python envs' batch: 4,800 env steps/s (metaworld-ml10; 2 workers)"
    assert line.anchor == "one env x cores: 5,400" and line.verdict == "89% of it (aim 80%: met)"
    algorithms = (
        "x\n\n| algorithm | s per iteration (median) | iterations | projected minutes "
        "| / MAML-TRPO's |\n|---|---|---|---|---|\n| MAML-TRPO | 2.00 | 100 | 3.3 | 1.00x |\n"
        "| ProMP | 3.00 | 100 | 5.0 | 1.50x |\n"
    )
    name = "speed_rl algorithms (halfcheetah-dir, cpu)"
    [line] = results.SUMMARIES["speed_rl algorithms"](name, algorithms)
    assert line.figure == "ProMP: 1.50x MAML-TRPO's training time (halfcheetah-dir, side by side)"
    assert line.anchor == "MAML-TRPO: 3.3 minutes projected"
    assert line.verdict == "within 1.5x (the meta-RL aim's bound): ProMP"
