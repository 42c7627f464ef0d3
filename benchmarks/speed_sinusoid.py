"""Median time per meta-iteration on sinusoid regression: our paths beside the peers' fastest.

Same 2x40 ReLU model, initialisation and data (meta-batch 25, K = 10 support and 10 query points,
second order, inner lr 0.01) for every method; each method's meta-gradient is compared with ours.
Each peer runs in its own forms, batched over tasks where it has one: higher (a loop over tasks;
it has no batched form), torchopt's MetaSGD (a loop), torchopt's functional API in a loop and
under ``torch.func.vmap`` (as its FuncTorch MAML example), and plain ``torch.func``, written as
PyTorch's MAML tutorial example is (``vmap`` over a per-task function of ``torch.func.grad``).
The headline ratio is the fastest peer form's time over ours.

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


def torchopt_functional_vmap(model: nn.Module, steps: int) -> Callable:
    import torchopt

    params = dict(model.named_parameters())

    def task_loss(xs, ys, xq, yq):
        inner = torchopt.sgd(lr=INNER_LR)
        state = inner.init(params)

        def support_loss(p):
            return mse(lambda x: torch.func.functional_call(model, p, (x,)), (xs, ys))

        fast = params
        for _ in range(steps):
            grads = torch.func.grad(support_loss)(fast)
            updates, state = inner.update(grads, state, inplace=False)
            fast = torchopt.apply_updates(fast, updates, inplace=False)
        return mse(lambda x: torch.func.functional_call(model, fast, (x,)), (xq, yq))

    def step(support, query):
        torch.func.vmap(task_loss)(*support, *query).mean().backward()

    return step


def torch_func_tutorial(model: nn.Module, steps: int) -> Callable:
    """PyTorch's MAML example (functorch/examples/maml_regression) in its own form."""
    params = dict(model.named_parameters())

    def task_loss(xs, ys, xq, yq):
        def support_loss(p):
            return mse(lambda x: torch.func.functional_call(model, p, (x,)), (xs, ys))

        fast = params
        for _ in range(steps):
            grads = torch.func.grad(support_loss)(fast)
            fast = {name: fast[name] - INNER_LR * g for name, g in grads.items()}
        return mse(lambda x: torch.func.functional_call(model, fast, (x,)), (xq, yq))

    def step(support, query):
        torch.func.vmap(task_loss)(*support, *query).mean().backward()

    return step


def gradient(step: Callable, model: nn.Module, batch) -> list[torch.Tensor]:
    """The meta-gradient one call of ``step`` leaves in the model."""
    model.zero_grad()
    step(*batch)
    return [p.grad.detach().clone() for p in model.parameters()]


def time_interleaved(steps: dict[str, Callable], model: nn.Module, batch, repeats: int):
    """Median ms per meta-iteration of every method, timed in alternating rounds of 10 calls so
    that a drift in the machine's speed falls on all of them alike."""
    sync = torch.cuda.synchronize if batch[0][0].is_cuda else (lambda: None)
    for step in steps.values():  # warm-up
        for _ in range(10):
            model.zero_grad()
            step(*batch)
    rounds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(max(1, repeats // 10)):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            for _ in range(10):
                model.zero_grad()
                step(*batch)
            sync()
            rounds[name].append((time.perf_counter() - start) / 10)
    return {name: statistics.median(times) * 1000 for name, times in rounds.items()}


def headline(results: dict[str, float]) -> str:
    """The fastest peer form against our vmap path."""
    peers = {n: ms for n, ms in results.items() if not n.startswith("ours")}
    if not peers:
        return "no peer installed"
    fastest = min(peers, key=peers.get)
    ours = results["ours, vmap"]
    return f"fastest peer form {fastest} {peers[fastest]:.2f} ms, ours {ours:.2f} ms: " + (
        f"{peers[fastest] / ours:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per method")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows, headlines = [], []
    for steps in (1, 5):
        torch.manual_seed(0)
        model = mlp(1, 1).to(device)
        batch = SinusoidTasks().sample(25, 10, 10, torch.Generator(device).manual_seed(0))
        makers: dict[str, Callable] = {
            "ours, vmap": lambda m, s=steps: ours(m, "vmap", s),
            "ours, loop": lambda m, s=steps: ours(m, "loop", s),
        }
        peers = (
            ("higher", "higher", higher_maml),
            ("torchopt (MetaSGD)", "torchopt", torchopt_maml),
            ("torchopt (functional)", "torchopt", torchopt_functional),
            ("torchopt (functional, vmap)", "torchopt", torchopt_functional_vmap),
            ("torch.func (tutorial, vmap)", "torch", torch_func_tutorial),
        )
        for name, package, make in peers:
            try:
                __import__(package)
            except ImportError:
                print(f"{package} is not installed (pip install -e '.[bench]'); skipped")
                continue
            makers[name] = lambda m, s=steps, make=make: make(m, s)
        step_fns = {name: make(model) for name, make in makers.items()}
        grads = {name: gradient(step, model, batch) for name, step in step_fns.items()}
        results = time_interleaved(step_fns, model, batch, args.repeats)
        reference = grads["ours, vmap"]
        for name, ms in results.items():
            diff = max(
                (a - b).abs().max().item() for a, b in zip(grads[name], reference, strict=True)
            )
            diff_text = "reference" if name == "ours, vmap" else f"{diff:.1e}"
            rows.append((steps, name, ms, diff_text))
            print(f"{steps} step(s)  {name:28s} {ms:8.2f} ms   max |grad - ours vmap| {diff_text}")
        headlines.append(f"{steps} inner step(s): {headline(results)}")
        print(headlines[-1])
    if args.write:
        table = [
            "| inner steps | method | median ms / meta-iteration | max abs grad diff to ours |"
        ]
        table.append("|---|---|---|---|")
        table += [f"| {s} | {n} | {ms:.2f} | {d} |" for s, n, ms, d in rows]
        body = "\n".join(table) + (
            "\n\nSinusoid, 2x40 ReLU MLP, meta-batch 25, K = 10 support + 10 query, second "
            f"order; {args.repeats} timed calls per method, in alternating rounds of 10.\n"
            + "\n".join(f"- {h}" for h in headlines)
        )
        write_section(f"speed_sinusoid ({device.type})", body, __spec__.name)


if __name__ == "__main__":
    main()
