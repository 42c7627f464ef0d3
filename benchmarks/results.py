"""Write one benchmark's section of benchmarks/RESULTS.md, keeping the other sections.

Every write also rewrites what lies outside the sections: the summary table at the top, read
from the sections themselves, and the topic headings, with the sections in topic order.
``python -m benchmarks.results --rebuild`` does only that; ``--readme`` prints the table's form
that README's Results section quotes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from maml.run.provenance import RESULT_FILES, source_commit

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = (
    "# Benchmark results\n\nEach section is written whole by the command in its header, on the "
    "code as committed; a\nsection's figures change only when that command is run again. The "
    "table restates each section's\nheadline figure from the section itself and is rebuilt from "
    "the sections on every write\n(`python -m benchmarks.results --rebuild` rebuilds it alone). "
    "History and one-off experiments\nare in `NOTES.md`.\n"
)
LEGEND = (
    "±: in the RL quality rows, our standard deviation between training seeds and the authors' "
    "95%\ninterval; elsewhere the 95% confidence interval over test tasks of one training run. "
    "A speed\nratio is the other side's time over ours: above 1, ours is faster."
)
# Sections are grouped by topic in this order, and by benchmark in this order within a topic;
# a benchmark not listed goes last.
TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Supervised quality", ("quality_sinusoid", "quality_omniglot")),
    ("RL quality", ("quality_rl", "compare_rl")),
    (
        "Speed",
        (
            "speed_sinusoid",
            "speed_omniglot",
            "speed_omniglot kernels",
            "speed_rl",
            "speed_rl algorithms",
            "speed_envs",
            "speed_python_envs",
            "speed_load",
        ),
    ),
    ("Distributed", ("speed_distributed", "speed_distributed metaworld")),
    ("Other", ("trpo_curvature",)),
)
# MAML paper (Finn et al. 2017), Table 1: Omniglot accuracy, meta-trained on 1,200 characters.
PAPER_OMNIGLOT = {"5-way 1-shot": 98.7, "20-way 1-shot": 95.8}
SECTION = re.compile(r"<!-- (?P<name>[^\n]+?):start -->\n.*?\n<!-- (?P=name):end -->", re.S)
STAMP = re.compile(
    r"^`[^\n]*` on (?P<date>\d{4}-\d{2}-\d{2}), (?:commit )?(?P<commit>[^\n(]+)", re.M
)


def machine() -> str:
    """A one-line description of where the numbers came from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # The vector unit torch's kernels dispatch to: hosts of one description differ in it, and
    # with it in speed and in the rounding of a training's floats.
    cpu += f" ({torch.backends.cpu.get_cpu_capability()})"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Python {platform.python_version()}"
    )


def commit() -> str:
    """The commit the code was run at, and whether tracked files differed from it."""
    # RESULTS.md and the seed records are what the benchmarks write: not code.
    head, dirty = source_commit(exclude=RESULT_FILES)
    if head is None:
        return "unknown commit"
    return f"commit {head[:7]}" + (" with uncommitted changes" if dirty else "")


class Summary(NamedTuple):
    """One line of the summary table: a section's figure, what it is set against, the verdict."""

    label: str
    figure: str
    anchor: str
    verdict: str


@dataclass
class Section:
    """One benchmark's section of RESULTS.md, as written, markers included."""

    name: str
    text: str

    @property
    def benchmark(self) -> str:
        """The benchmark the section belongs to: its name without the parenthesis."""
        return self.name.split(" (")[0]

    @property
    def inner(self) -> str:
        """The section without its start and end markers."""
        return self.text.split("\n", 1)[1].rsplit("\n", 1)[0]

    @property
    def body(self) -> str:
        """What the benchmark wrote, after the command and machine lines."""
        parts = self.inner.split("\n\nMachine: ", 1)
        return parts[1].split("\n\n", 1)[1] if len(parts) == 2 and "\n\n" in parts[1] else ""

    def with_body(self, body: str) -> Section:
        """The same section with ``body`` in place of what the benchmark wrote."""
        head = self.inner[: len(self.inner) - len(self.body)]
        return Section(
            self.name, f"<!-- {self.name}:start -->\n{head}{body}\n<!-- {self.name}:end -->"
        )

    @property
    def stamp(self) -> str:
        """Date and commit of the run, from the section's header."""
        found = STAMP.search(self.text)
        return f"{found['date']}, {found['commit'].strip()}" if found else "unknown"

    def rank(self) -> tuple[int, int]:
        """Where the section goes in the file: its topic, then its benchmark within it."""
        for t, (_, benchmarks) in enumerate(TOPICS):
            if self.benchmark in benchmarks:
                return t, benchmarks.index(self.benchmark)
        return len(TOPICS) - 1, len(TOPICS[-1][1])

    def topic(self) -> str:
        """The heading of the section's group."""
        return TOPICS[self.rank()[0]][0]


def readable(body: str) -> str:
    """``body`` with infinite or undefined means said in words, and a note on why."""
    notes = []

    def cell(found: re.Match) -> str:
        why = "NaN" if found["mean"] == "nan" else "diverged"
        notes.append(why)
        text, width = f"n/a ({why})", len(found[0])
        # Keeps a plain-text table's columns aligned where the words fit the cell.
        return text.rjust(width) if len(text) < width else (" " if found["pad"] else "") + text

    body = re.sub(r"(?P<pad> *)(?<![\w.])(?P<mean>-?inf|nan) ± nan(?![\w.])", cell, body)
    bare = re.compile(r"(?<![\w.-])-?inf(?![\w.])")
    if bare.search(body):
        notes.append("diverged")
        body = bare.sub("n/a (diverged)", body)
    if "diverged" in notes:
        body += (
            "\n\nn/a (diverged): a test task's figure overflowed to infinity as its adaptation "
            "diverged, so the mean over tasks and its interval have no value."
        )
    if "NaN" in notes:
        body += (
            "\n\nn/a (NaN): a test task's figure is not a number, so the mean over tasks and its "
            "interval have no value."
        )
    return body


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(body: str) -> list[tuple[str, list[list[str]]]]:
    """Each Markdown table in ``body`` with the last line of text before it; no separator rows."""
    tables: list[tuple[str, list[list[str]]]] = []
    before, rows = "", None
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            if rows is None:
                rows = []
                tables.append((before, rows))
            if not all(re.fullmatch(r":?-+:?", c) for c in _cells(line)):
                rows.append(_cells(line))
            continue
        rows = None
        if line.strip():
            before = line.strip()
    return tables


def _plain(rows: list[str]) -> list[list[str]]:
    """The cells of a plain-text table's lines, columns apart by two spaces or more."""
    return [re.split(r"\s{2,}", row.strip()) for row in rows]


def _column(rows: list[list[str]], name: str) -> int:
    return next(i for i, h in enumerate(rows[0]) if h.startswith(name))


def _counted(text: str) -> str:
    """'1 inner step(s)' as '1 inner step', '5 inner step(s)' as '5 inner steps'."""
    return re.sub(
        r"\b(\d+) ([^\d()]+?)\(s\)", lambda m: f"{m[1]} {m[2]}{'' if m[1] == '1' else 's'}", text
    )


def _after(steps: list[str]) -> str:
    words = steps[0] if len(steps) == 1 else f"{', '.join(steps[:-1])} and {steps[-1]}"
    return f"after {words} step{'' if steps == ['1'] else 's'}"


def _grouped(statuses: list[tuple[str, str]], what: str = "") -> str:
    """'within the paper's 95% interval after 1 and 2 steps; below after 3 steps' and such."""
    steps: dict[str, list[str]] = {}
    for step, status in statuses:
        steps.setdefault(status, []).append(step)
    phrases = [f"{status} {_after(s)}" for status, s in steps.items()]
    if what:
        phrases[0] = phrases[0].replace(" after ", f" {what} after ", 1)
    return "; ".join(phrases)


def _speed(ratios: list[float], who: str) -> str:
    """Ratios of the other side's time over ours, in words."""
    listed = " / ".join(f"{r:.2f}x" for r in ratios)
    return f"{listed} faster than {who}" if min(ratios) > 1 else f"{listed} the speed of {who}"


def _sinusoid(name: str, body: str) -> list[Summary]:
    said = re.search(r"^K = (\d+) after ([\d /]+) steps: .*; MAML paper ([\d. /]+)\.$", body, re.M)
    k, steps, paper = said[1], said[2].split(" / "), said[3].split(" / ")
    lines = body.splitlines()
    header, row = _plain(
        [next(x for x in lines if x.startswith("K \\ steps"))]
        + [next(x for x in lines if re.match(rf" +{k}  ", x))]
    )
    cells = [row[header.index(_after([s]).removeprefix("after "))] for s in steps]
    statuses = []
    for step, cell, anchor in zip(steps, cells, paper, strict=True):
        found = re.fullmatch(r"([\d.]+) ± ([\d.]+)", cell)
        if not found:
            why = {"n/a (diverged)": "a task diverged", "n/a (NaN)": "a task gave NaN"}
            statuses.append((step, f"no mean ({why.get(cell, cell)})"))
            continue
        mean, ci, p = float(found[1]), float(found[2]), float(anchor)
        # MSE: lower is better, so our interval above the paper's figure is worse.
        status = (
            "the paper's figure within our 95% interval"
            if mean - ci <= p <= mean + ci
            else "ours above (worse than) the paper's"
            if p < mean - ci
            else "ours below (better than) the paper's"
        )
        statuses.append((step, status))
    return [
        Summary(
            "",
            f"MSE at K = {k} {_after(steps)}: {' / '.join(cells)}",
            f"MAML paper {' / '.join(paper)}",
            _grouped(statuses),
        )
    ]


def _omniglot(name: str, body: str) -> list[Summary]:
    aim = re.search(r"read at that count alone: [\d.]+% \(aim ([\d.]+)%: (not met|met)\)", body)
    chars = re.search(r"\(([\d,]+) training characters\)", body)[1]
    setting = re.search(r"\((\d+-way \d+-shot)\)", name)[1]
    lines = body.splitlines()
    header, row = _plain(
        [next(x for x in lines if x.startswith("K \\ steps"))]
        + [next(x for x in lines if re.match(r" +1  ", x))]
    )
    mean, ci = row[-1].split(" ± ")
    paper = PAPER_OMNIGLOT.get(setting)
    anchor = f"our aim {aim[1]}%"
    verdict = f"aim {aim[2]}; trained on {chars} characters"
    if paper:
        anchor += f"; MAML paper {paper}% (1,200 training characters)"
        verdict += ", not the paper's 1,200"
    figure = f"{setting} accuracy after {header[-1]}: {mean}% ± {ci}"
    return [Summary("", figure, anchor, verdict)]


def _rl(name: str, body: str) -> list[Summary]:
    if ", " in name:  # another algorithm than the preset's: compare_rl's rows summarise it
        return []
    rows = next(rows for _, rows in _tables(body) if rows[0][1:2] == ["0 steps"])
    steps = [h.split()[0] for h in rows[0][1:]]
    means: dict[str, list[str]] = {}
    sds: dict[str, list[str]] = {}
    for row in rows[1:]:
        mean = re.fullmatch(r"\*\*mean over seeds\*\*, (.+)", row[0])
        if mean:
            means[mean[1]] = row[1:]
        elif row[0].startswith("standard deviation") and means:
            sds[list(means)[-1]] = row[1:]
        elif row[0].startswith("authors"):
            authors = row[1:]
        elif row[0].startswith("its 95% interval"):
            interval = row[1:]
    verdicts = {
        sampler: list(zip(after.split(" / "), words.split(" / "), strict=True))
        for sampler, after, words in re.findall(
            r"^- (.+?): the mean over seeds after ([\d /]+) steps is (.+?) the authors' 95%",
            body,
            re.M,
        )
    }
    seeds = len(re.search(r"training seeds ([\d, ]+);", body)[1].split(","))
    # The authors' test scripts sampled with rllab's sampler: where we ran it, it is the match.
    pick = "rllab's sampler" if "rllab's sampler" in means else next(iter(means))
    # One seed has no spread: its row is all NaN.
    if pick in sds and not all(v == "nan" for v in sds[pick]):
        pairs = zip(means[pick], sds[pick], strict=True)
        figure = " / ".join(f"{m} ± {s}" for m, s in pairs)
        spread = f"mean ± sd of {seeds} seeds"
    else:
        figure, spread = " / ".join(means[pick]), f"mean of {seeds} seeds; no sd reported"
    verdict = _grouped(verdicts[pick], "the paper's 95% interval")
    others = [f"{o}: {_grouped(v)}" for o, v in verdicts.items() if v != verdicts[pick]]
    anchor = " / ".join(f"{a} ± {i}" for a, i in zip(authors, interval, strict=True))
    return [
        Summary(
            "",
            f"return {_after(steps)}: {figure} ({pick}; {spread})",
            f"authors' run: {anchor}",
            verdict + (f" ({'; '.join(others)})" if others else ""),
        )
    ]


def _compare(name: str, body: str) -> list[Summary]:
    found = re.findall(
        r"^- (\S+) \((.+?)\): best after one step: (.+?) (\S+(?: ± \S+)?) \((\d+) seeds?\), "
        r"(reaches|does not reach) the paper's (\S+); (.+)$",
        body,
        re.M,
    )
    if not found:
        return [Summary("", "no algorithm has kept seeds yet", "", "no verdict")]
    return [
        Summary(
            family,
            f"best return after 1 step: {best} {figure} ({sampler}; "
            + (f"mean ± sd of {seeds} seeds)" if seeds != "1" else "one seed)"),
            f"MAML paper {paper}",
            f"{reached} the paper's figure; {time}",
        )
        for family, sampler, best, figure, seeds, reached, paper, time in found
    ]


def _peers(name: str, body: str) -> list[Summary]:
    lines = re.findall(
        r"^- (.+?): fastest peer form (.+) ([\d.]+) (m?s), ours ([\d.]+) m?s: ([\d.]+)x(.*)$",
        body,
        re.M,
    )
    labels, peers, theirs, units, ours, ratios, rests = zip(*lines, strict=True)
    labels = [_counted(label) for label in labels]
    if len(set(peers)) == 1:
        anchor = f"{peers[0]}: {' / '.join(theirs)} {units[0]}"
    else:
        each = " / ".join(f"{t} ({p})" for t, p in zip(theirs, peers, strict=True))
        anchor = f"fastest peer form: {each} {units[0]}"
    verdict = [_speed([float(r) for r in ratios], "the fastest peer form")]
    for label, rest in zip(labels, rests, strict=True):
        right = re.search(r"fastest with a right gradient (.+) [\d.]+ m?s: ([\d.]+)x", rest)
        if right:
            verdict.append(
                f"for {label} that form's gradient is wrong: {right[2]}x the speed of {right[1]}, "
                "the fastest with a right one"
            )
    figure = f"{' / '.join(ours)} {units[0]} per meta-iteration ({' / '.join(labels)})"
    return [Summary("", figure, anchor, "; ".join(verdict))]


def _kernels(name: str, body: str) -> list[Summary]:
    rows = _tables(body)[0][1]
    method, share = _column(rows, "method"), _column(rows, "network kernels")
    ours = [r for r in rows[1:] if r[method] == "ours (meta_backward)"]
    peers = [
        int(r[share].rstrip("%"))
        for r in rows[1:]
        if not r[method].startswith("ours") and r[share].endswith("%")
    ]
    where = " / ".join(f"{r[0]}, {r[1]} order" for r in ours)
    return [
        Summary(
            "",
            f"{' / '.join(r[share] for r in ours)} of the operator time in the network's kernels "
            f"(ours, meta_backward; {where})",
            f"peer forms {min(peers)}%-{max(peers)}%",
            "no verdict: a profile",
        )
    ]


def _envs(name: str, body: str) -> list[Summary]:
    limits, singles = (rows for _, rows in _tables(body)[:2])
    c = {
        h: _column(limits, h)
        for h in ("family", "copies", "MuJoCo threads", "physics limit", "batched env")
    }
    c |= {"limit": _column(limits, "% of limit"), "forward": _column(limits, "% of the limit with")}
    best: dict[str, tuple[tuple[int, int], list[str]]] = {}
    for row in limits[1:]:
        # The most copies on the most threads: the workload the batched env is built for.
        size = (int(row[c["copies"]].replace(",", "")), int(row[c["MuJoCo threads"]]))
        if row[c["family"]] not in best or size >= best[row[c["family"]]][0]:
            best[row[c["family"]]] = (size, row)
    rows = [row for _, row in best.values()]
    where = {f"{r[c['copies']]} copies, {r[c['MuJoCo threads']]} threads" for r in rows}
    families = " / ".join(r[c["family"]] for r in rows)
    limit = [r[c["limit"]] for r in rows]
    forward = [r[c["forward"]] for r in rows]
    verdict = f"{' / '.join(limit)} of the physics limit"
    if forward != limit:
        verdict += f" ({' / '.join(forward)} of it with the MDP's forward)"
    batched = Summary(
        "",
        f"batched env: {' / '.join(r[c['batched env']] for r in rows)} env steps/s ({families}; "
        f"{where.pop() if len(where) == 1 else 'each at its most copies and threads'})",
        f"MuJoCo's batched rollout: {' / '.join(r[c['physics limit']] for r in rows)}",
        verdict,
    )
    s = {
        h: _column(singles, h) for h in ("family", "physics steps", "ours", "Gymnasium", "our time")
    }
    frames: dict[str, list[str]] = {}
    for r in singles[1:]:
        frames.setdefault(r[s["family"]], []).append(r[s["physics steps"]])
    cases = ", ".join(f"{f} at {' and '.join(n)}" for f, n in frames.items())
    single = Summary(
        "one env at a time",
        f"{' / '.join(r[s['ours']] for r in singles[1:])} env steps/s ({cases} physics steps "
        "per env step)",
        "Gymnasium's env of the robot: "
        + " / ".join(r[s["Gymnasium"]].split()[-1] for r in singles[1:]),
        f"ours takes {' / '.join(r[s['our time']] for r in singles[1:])} Gymnasium's time per step",
    )
    return [batched, single]


def _speed_rl(name: str, body: str) -> list[Summary]:
    median = re.search(r"iteration: median ([\d.]+ s)", body)[1]
    parts = re.search(r"parts \(medians\): (.+?);", body)[1]
    found = [Summary("", f"preset iteration {median} (median; {parts})", "none", "no comparison")]
    for rows in (rows for _, rows in _tables(body) if rows[0][0] == "Fisher fraction"):
        step, cosine = _column(rows, "TRPO step"), _column(rows, "cosine")
        first = rows[1]
        for row in rows[2:]:
            ratio = float(first[step]) / float(row[step])
            found.append(
                Summary(
                    f"Fisher fraction {row[0]}",
                    f"TRPO step on Fisher fraction {row[0]}: {row[step]} s",
                    f"on fraction {first[0]}: {first[step]} s",
                    f"{_speed([ratio], f'fraction {first[0]}')}; the step at cosine {row[cosine]} "
                    f"to fraction {first[0]}'s",
                )
            )
    return found


def _seconds(cell: str) -> float:
    value, unit = cell.split()
    return float(value) / (1000 if unit == "ms" else 1)


def _speed_load(name: str, body: str) -> list[Summary]:
    names, ours, theirs = [], [], []
    for before, rows in _tables(body):
        if not before.endswith("):"):
            continue
        names.append(before.split(" (")[0])
        by = {r[0].split(" (")[0]: [cell.split(" (")[0] for cell in r[1:]] for r in rows[1:]}
        # Each workload's first column is alone; the others beside a busy process.
        for kept, setting in ((ours, "toolkit default"), (theirs, "torch's default")):
            kept.append((max(by[setting][1:], key=_seconds), by[setting][0]))
    loaded = [_seconds(t) / _seconds(o) for (t, _), (o, _) in zip(theirs, ours, strict=True)]
    alone = [_seconds(t) / _seconds(o) for (_, t), (_, o) in zip(theirs, ours, strict=True)]
    return [
        Summary(
            "",
            "toolkit default spin, slowest beside a busy process: "
            f"{' / '.join(w for w, _ in ours)} per iteration ({' / '.join(names)}; alone "
            f"{' / '.join(a for _, a in ours)})",
            f"torch's default spin: {' / '.join(w for w, _ in theirs)} (alone "
            f"{' / '.join(a for _, a in theirs)})",
            _speed(loaded, "torch's default spin") + " under load; alone "
            f"{' / '.join(f'{a:.2f}x' for a in alone)}",
        )
    ]


def _distributed(name: str, body: str) -> list[Summary]:
    names, ours, theirs, ratios, setups, references = [], [], [], [], set(), set()
    for before, rows in _tables(body):
        if not before.startswith("### "):
            continue
        ranks, cores = _column(rows, "ranks"), _column(rows, "cores per rank")
        iteration = _column(rows, "iteration")
        many = max(rows[1:], key=lambda row: int(row[ranks]))
        total = int(many[ranks]) * int(many[cores])
        one = next(r for r in rows[1:] if r[ranks] == "1" and int(r[cores]) == total)
        names.append(before.removeprefix("### ").split(" (")[0])
        ours.append(many[iteration])
        theirs.append(one[iteration])
        ratios.append(float(one[iteration]) / float(many[iteration]))
        setups.add(_counted(f"{many[ranks]} ranks of {many[cores]} core(s)"))
        references.add(f"1 rank on {total} cores")
    return [
        Summary(
            "",
            f"{' or '.join(sorted(setups))}: {' / '.join(ours)} s per iteration "
            f"({' / '.join(names)})",
            f"{' or '.join(sorted(references))}: {' / '.join(theirs)} s",
            _speed(ratios, "one rank on the same cores"),
        )
    ]


def _python_envs(name: str, body: str) -> list[Summary]:
    rows = _tables(body)[0][1]
    c = {h: _column(rows, h) for h in ("family", "x cores", "workers", "batch", "% of", "aim")}
    most = max(int(r[c["workers"]]) for r in rows[1:])
    widest = [r for r in rows[1:] if int(r[c["workers"]]) == most]
    return [
        Summary(
            "",
            f"Python envs' batch: {' / '.join(r[c['batch']] for r in widest)} env steps/s "
            f"({' / '.join(r[c['family']] for r in widest)}; {most} workers)",
            f"one env x cores: {' / '.join(r[c['x cores']] for r in widest)}",
            f"{' / '.join(r[c['% of']] for r in widest)} of it (aim {rows[0][c['aim']].split()[1]}"
            f": {' / '.join(r[c['aim']] for r in widest)})",
        )
    ]


def _speed_rl_algorithms(name: str, body: str) -> list[Summary]:
    rows = _tables(body)[0][1]
    c = {h: _column(rows, h) for h in ("algorithm", "projected", "/ MAML-TRPO")}
    others = [r for r in rows[1:] if r[c["algorithm"]] != "MAML-TRPO"]
    reference = next(r for r in rows[1:] if r[c["algorithm"]] == "MAML-TRPO")
    env = name.split("(")[1].split(",")[0]
    return [
        Summary(
            "",
            f"{' / '.join(r[c['algorithm']] for r in others)}: "
            f"{' / '.join(r[c['/ MAML-TRPO']] for r in others)} MAML-TRPO's training time "
            f"({env}, side by side)",
            f"MAML-TRPO: {reference[c['projected']]} minutes projected",
            _within(others, c["algorithm"], c["/ MAML-TRPO"]),
        )
    ]


def _within(rows: list[list[str]], name: int, ratio: int, bound: float = 1.5) -> str:
    """Which algorithms' time ratios are within the meta-RL aim's bound, and which over."""
    within = [r[name] for r in rows if float(r[ratio].rstrip("x")) <= bound]
    over = [r[name] for r in rows if r[name] not in within]
    parts = [f"within {bound}x (the meta-RL aim's bound): {', '.join(within) or 'none'}"]
    return "; ".join(parts + ([f"over: {', '.join(over)}"] if over else []))


def _curvature(name: str, body: str) -> list[Summary]:
    rows = _tables(body)[0][1]
    at = _column(rows, "at 1 of")
    by: dict[str, list[str]] = {}
    for row in rows[1:]:
        by.setdefault(row[1], []).append(row[at].split()[0])
    holds = [on for on, values in by.items() if all(0.9 <= float(v) <= 1.1 for v in values)]
    directions = " / ".join(dict.fromkeys(row[0] for row in rows[1:]))
    if not holds:
        verdict = "off by more than 10% with every Fisher"
    elif len(holds) == len(by):
        verdict = "within 10% with every Fisher"
    else:
        verdict = f"within 10% in every direction only with the Fisher on {', '.join(holds)}"
    return [
        Summary(
            "",
            f"exact KL / the model's at the full step, {directions} direction: "
            + "; ".join(f"Fisher on {on} {' / '.join(v)}" for on, v in by.items()),
            "1.00: the quadratic model holds",
            verdict,
        )
    ]


SUMMARIES: dict[str, Callable[[str, str], list[Summary]]] = {
    "quality_sinusoid": _sinusoid,
    "quality_omniglot": _omniglot,
    "quality_rl": _rl,
    "compare_rl": _compare,
    "speed_sinusoid": _peers,
    "speed_omniglot": _peers,
    "speed_omniglot kernels": _kernels,
    "speed_envs": _envs,
    "speed_rl": _speed_rl,
    "speed_load": _speed_load,
    "speed_distributed": _distributed,
    "speed_distributed metaworld": _distributed,
    "speed_python_envs": _python_envs,
    "speed_rl algorithms": _speed_rl_algorithms,
    "trpo_curvature": _curvature,
}


def summaries(section: Section) -> list[Summary]:
    """The section's lines of the summary table, read from its own text."""
    read = SUMMARIES.get(section.benchmark)
    try:
        if read is not None:
            return read(section.name, section.body)
    # A benchmark that ran for hours must not lose its section to a table it cannot be read into.
    except Exception:
        pass
    return [Summary("", "see the section", "", "no summary: the section's text was not recognised")]


def _anchor(name: str) -> str:
    """GitHub's link target of the heading ``name``."""
    return re.sub(r"[^\w\- ]", "", name.lower()).replace(" ", "-")


def table(sections: list[Section], link: str = "", dated: bool = True) -> str:
    """The summary table of ``sections``, each benchmark linked to ``link`` + its heading."""
    columns = ["topic", "benchmark", "our figure", "anchor", "verdict"] + (
        ["date, commit"] if dated else []
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    topic = None
    for section in sections:
        for row in summaries(section):
            label = f"[{section.name}]({link}#{_anchor(section.name)})" + (
                f", {row.label}" if row.label else ""
            )
            cells = ["" if section.topic() == topic else section.topic(), label, *row[1:]]
            cells += [section.stamp] if dated else []
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
            topic = section.topic()
    return "\n".join(lines)


def parse(text: str) -> list[Section]:
    """The sections of a RESULTS.md text, in topic order."""
    found = [Section(m["name"], m[0]) for m in SECTION.finditer(text)]
    return sorted(found, key=Section.rank)


def assemble(sections: list[Section]) -> str:
    """The whole file: header, summary table, then the sections grouped by topic."""
    sections = sorted(sections, key=Section.rank)
    dates = sorted(s.stamp.split(",")[0] for s in sections if s.stamp != "unknown")
    text = f"{HEADER}\n{table(sections)}\n\n{LEGEND}\n"
    if dates and dates[0] != dates[-1]:
        text += (
            f"\nThe sections ran between {dates[0]} and {dates[-1]}, each on the commit in its "
            "row, not on one\ncommit: a section changes only when its command runs again, and a "
            "quality benchmark trains for\nminutes to hours per seed (its section gives the "
            "time).\n"
        )
    topic = None
    for section in sections:
        if section.topic() != topic:
            text += f"\n# {section.topic()}\n"
            topic = section.topic()
        text += f"\n{section.text}\n"
    return text


def rebuild(path: Path | None = None) -> None:
    """Rewrite the summary table and the order of the sections of ``path`` from its sections."""
    path = path or RESULTS
    sections = [s.with_body(readable(s.body)) for s in parse(path.read_text())]
    path.write_text(assemble(sections))


def write_section(name: str, body: str, module: str) -> None:
    """Replace (or add) the section ``name`` with ``body`` plus the command, machine and date."""
    command = " ".join(["python -m", module, *(shlex.quote(a) for a in sys.argv[1:])])
    stamp = datetime.date.today().isoformat()
    block = (
        f"<!-- {name}:start -->\n## {name}\n\n`{command}` on {stamp}, {commit()}\n\n"
        f"Machine: {machine()}\n\n{readable(body.strip())}\n<!-- {name}:end -->"
    )
    sections = parse(RESULTS.read_text() if RESULTS.exists() else "")
    names = [s.name for s in sections]
    if name in names:
        sections[names.index(name)] = Section(name, block)
    else:
        sections.append(Section(name, block))
    RESULTS.write_text(assemble(sections))


def main() -> None:
    """Rebuild the table and the order of RESULTS.md, or print README's form of the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the table and the order")
    parser.add_argument("--readme", action="store_true", help="print README's form of the table")
    args = parser.parse_args()
    if args.rebuild:
        rebuild()
    if args.readme:
        print(table(parse(RESULTS.read_text()), link="benchmarks/RESULTS.md", dated=False))


if __name__ == "__main__":
    main()
