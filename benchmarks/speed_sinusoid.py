"""Median time per meta-iteration on sinusoid regression: our paths beside higher and torchopt.

Same 2x40 ReLU model, initialisation and data (meta-batch 25, K = 10 support and 10 query points,
second order, inner lr 0.01) for every method; each method's meta-gradient is compared with ours.

    python -m benchmarks.speed_sinusoid [--repeats 200] [--device cpu] [--write]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.results import write_section
from maml import MAML
from maml_sl.losses import mse
from maml_sl.models import mlp
from maml_sl.tasks.sinusoid import SinusoidTasks

INNER_LR = 0.01


def ours(model: nn.Module, path: str, steps: int) -> Callable:
    learner = MAML(model, mse, inner_steps=steps, inner_lr=INNER_LR, path=path)

    def step(support, query):
        learner.meta_loss(support, query).backward()

    return step


def higher_maml(model: nn.Module, steps: int) -> Callable:
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=INNER_LR)

    def step(support, query):
        tasks = support[0].shape[0]
        for t in range(tasks):
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (f, opt):
                for _ in range(steps):
                    opt.step(mse(f, (support[0][t], support[1][t])))
                (mse(f, (query[0][t], query[1][t])) / tasks).backward()

    return step


def torchopt_maml(model: nn.Module, steps: int) -> Callable:
    import torchopt

    inner_opt = torchopt.MetaSGD(model, lr=INNER_LR)

    def step(support, query):
        tasks = support[0].shape[0]
        start = torchopt.extract_state_dict(model)
        opt_start = torchopt.extract_state_dict(inner_opt)
        for t in range(tasks):
            for _ in range(steps):
                inner_opt.step(mse(model, (support[0][t], support[1][t])))
            (mse(model, (query[0][t], query[1][t])) / tasks).backward()
            torchopt.recover_state_dict(model, start)
            torchopt.recover_state_dict(inner_opt, opt_start)

    return step


def torchopt_functional(model: nn.Module, steps: int) -> Callable:
    import torchopt

    names = [n for n, _ in model.named_parameters()]

    def forward(params, x):
        return torch.func.functional_call(model, dict(zip(names, params, strict=True)), (x,))

    def step(support, query):
        tasks = support[0].shape[0]
        for t in range(tasks):
            opt = torchopt.FuncOptimizer(torchopt.sgd(lr=INNER_LR))
            params = tuple(model.parameters())
            for _ in range(steps):
                loss = mse(lambda x, p=params: forward(p, x), (support[0][t], support[1][t]))
                params = opt.step(loss, params)
            query_loss = mse(lambda x, p=params: forward(p, x), (query[0][t], query[1][t]))
            (query_loss / tasks).backward()

    return step


def time_method(make: Callable, model: nn.Module, batch, repeats: int, reference=None):
    step = make(model)
    model.zero_grad()
    step(*batch)
    grads = [p.grad.detach().clone() for p in model.parameters()]
    diff = None
    if reference is not None:
        diff = max((a - b).abs().max().item() for a, b in zip(grads, reference, strict=True))
    sync = torch.cuda.synchronize if batch[0][0].is_cuda else (lambda: None)
    for _ in range(10):
        model.zero_grad()
        step(*batch)
    times = []
    for _ in range(repeats):
        model.zero_grad()
        sync()
        start = time.perf_counter()
        step(*batch)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, grads, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for steps in (1, 5):
        torch.manual_seed(0)
        model = mlp(1, 1).to(device)
        batch = SinusoidTasks().sample(25, 10, 10, torch.Generator(device).manual_seed(0))
        methods: list[tuple[str, Callable]] = [
            ("ours, vmap", lambda m, s=steps: ours(m, "vmap", s)),
            ("ours, loop", lambda m, s=steps: ours(m, "loop", s)),
        ]
        peers = (
            ("higher", "higher", higher_maml),
            ("torchopt (MetaSGD)", "torchopt", torchopt_maml),
            ("torchopt (functional)", "torchopt", torchopt_functional),
        )
        for name, package, make in peers:
            try:
                __import__(package)
            except ImportError:
                print(f"{package} is not installed (pip install -e '.[bench]'); skipped")
                continue
            methods.append((name, lambda m, s=steps, make=make: make(m, s)))
        reference = None
        results = {}
        for name, make in methods:
            ms, grads, diff = time_method(make, model, batch, args.repeats, reference)
            reference = reference or grads
            results[name] = ms
            diff_text = "reference" if diff is None else f"{diff:.1e}"
            rows.append((steps, name, ms, diff_text))
            print(f"{steps} step(s)  {name:12s} {ms:8.2f} ms   max |grad - ours vmap| {diff_text}")
        peers = [ms for n, ms in results.items() if not n.startswith("ours")]
        if peers:
            ratio = min(peers) / results["ours, vmap"]
            print(f"{steps} step(s)  fastest peer / ours vmap: {ratio:.1f}x")
    if args.write:
        table = [
            "| inner steps | method | median ms / meta-iteration | max abs grad diff to ours |"
        ]
        table.append("|---|---|---|---|")
        table += [f"| {s} | {n} | {ms:.2f} | {d} |" for s, n, ms, d in rows]
        speedups = []
        for steps in (1, 5):
            got = {n: ms for s, n, ms, _ in rows if s == steps}
            peers = [ms for n, ms in got.items() if not n.startswith("ours")]
            if peers:
                speedups.append(f"{steps} step(s): {min(peers) / got['ours, vmap']:.1f}x")
        body = "\n".join(table)
        body += (
            "\n\nSinusoid, 2x40 ReLU MLP, meta-batch 25, K = 10 support + 10 query, second order."
        )
        if speedups:
            body += "\nFastest peer's time over our vmap path's: " + ", ".join(speedups) + "."
        write_section(f"speed_sinusoid ({device.type})", body, __spec__.name)


if __name__ == "__main__":
    main()
