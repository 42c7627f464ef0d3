"""Time and peak memory per meta-iteration on Omniglot-shaped tasks: our paths beside the peers'
forms, with the identical conv4 network (BatchNorm with batch statistics), data and start.

Peers run in their own forms, batched over tasks where they have one: higher and torchopt's
MetaSGD loop over tasks; torchopt's functional API under ``torch.func.vmap`` (its FuncTorch MAML
example) and plain ``torch.func`` as PyTorch's MAML-Omniglot example writes it batch the tasks.
The headline per setting is the fastest peer form against ours (what the trainer runs), with
the check of its gradient against ours.

Each measurement runs in a fresh process so that its peak resident memory is its own.

    python -m benchmarks.speed_omniglot [--repeats 3] [--device cpu] [--methods ...] [--write]
    python -m benchmarks.speed_omniglot --kernels [--methods ...] [--write]

``--kernels`` profiles one meta-iteration per method instead and reports which share of the
operator time the network's own kernels take (convolution, BatchNorm, ReLU, the linear head and
the loss, forward and backward): what no meta-learning library can make faster.

On a GPU the peak is the CUDA allocator's (``torch.cuda.max_memory_allocated``), not the RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from benchmarks.results import write_section
from maml import MAML
from maml_sl.losses import cross_entropy
from maml_sl.models import conv4

SETTINGS = {  # the MAML paper's Omniglot settings
    "5-way 1-shot": {"ways": 5, "meta_batch": 32, "steps": 1, "lr": 0.4},
    "20-way 1-shot": {"ways": 20, "meta_batch": 16, "steps": 5, "lr": 0.1},
}
QUERY = 15
# "ours (meta_backward)" is what the trainer runs: the auto path, task by task on the loop path.
METHODS = (
    "ours (meta_backward)",
    "ours (loop)",
    "ours (vmap)",
    "higher",
    "torchopt",
    "torchopt (functional, vmap)",
    "torch.func (tutorial, vmap)",
)


def episode(ways: int, meta_batch: int, seed: int = 0, device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    xs = torch.rand(meta_batch, ways, 1, 28, 28, generator=g)
    xq = torch.rand(meta_batch, ways * QUERY, 1, 28, 28, generator=g)
    ys = torch.arange(ways).expand(meta_batch, ways)
    yq = torch.arange(ways).repeat_interleave(QUERY).expand(meta_batch, ways * QUERY)
    return (xs.to(device), ys.to(device)), (xq.to(device), yq.to(device))


def step_fn(method: str, model, steps: int, lr: float, first_order: bool):
    if method.startswith("ours"):
        path = {"ours (loop)": "loop", "ours (vmap)": "vmap"}.get(method, "auto")
        learner = MAML(
            model, cross_entropy, inner_steps=steps, inner_lr=lr, first_order=first_order, path=path
        )
        if method == "ours (meta_backward)":
            return learner.meta_backward
        return lambda s, q: learner.meta_loss(s, q).backward()
    if method.endswith("(functional, vmap)") or method.startswith("torch.func"):
        return batched_peer(method, model, steps, lr, first_order)
    if method == "higher":
        import higher

        inner = torch.optim.SGD(model.parameters(), lr=lr)

        def run_higher(s, q):
            tasks = s[0].shape[0]
            for t in range(tasks):
                with higher.innerloop_ctx(
                    model, inner, copy_initial_weights=False, track_higher_grads=not first_order
                ) as (f, opt):
                    for _ in range(steps):
                        opt.step(cross_entropy(f, (s[0][t], s[1][t])))
                    loss = cross_entropy(f, (q[0][t], q[1][t])) / tasks
                    if first_order:  # the query gradient at the fast weights, onto the originals
                        _accumulate(model, torch.autograd.grad(loss, list(f.parameters())))
                    else:
                        loss.backward()

        return run_higher
    import torchopt

    inner = torchopt.MetaSGD(model, lr=lr)
    originals = list(model.parameters())

    def run_torchopt(s, q):
        tasks = s[0].shape[0]
        start = torchopt.extract_state_dict(model)
        for t in range(tasks):
            for _ in range(steps):
                inner.step(cross_entropy(model, (s[0][t], s[1][t])))
                if first_order:
                    torchopt.stop_gradient(model)
                    torchopt.stop_gradient(inner)
            loss = cross_entropy(model, (q[0][t], q[1][t])) / tasks
            if first_order:
                fast = list(model.parameters())
                grads = torch.autograd.grad(loss, fast)
                for p, g in zip(originals, grads, strict=True):
                    p.grad = g if p.grad is None else p.grad + g
            else:
                loss.backward()
            torchopt.recover_state_dict(model, start)

    return run_torchopt


def batched_peer(method: str, model, steps: int, lr: float, first_order: bool):
    """A peer's batched form: ``vmap`` over a per-task function of ``torch.func.grad``, the inner
    step by torchopt's functional SGD or by hand (PyTorch's MAML-Omniglot example)."""
    params = dict(model.named_parameters())

    def task_loss(xs, ys, xq, yq):
        def support_loss(p):
            return cross_entropy(lambda x: torch.func.functional_call(model, p, (x,)), (xs, ys))

        fast = params
        if method.startswith("torchopt"):
            import torchopt

            inner = torchopt.sgd(lr=lr)
            state = inner.init(params)
        for _ in range(steps):
            grads = torch.func.grad(support_loss)(fast)
            if first_order:
                grads = {name: g.detach() for name, g in grads.items()}
            if method.startswith("torchopt"):
                updates, state = inner.update(grads, state, inplace=False)
                fast = torchopt.apply_updates(fast, updates, inplace=False)
            else:
                fast = {name: fast[name] - lr * g for name, g in grads.items()}
        return cross_entropy(lambda x: torch.func.functional_call(model, fast, (x,)), (xq, yq))

    def step(s, q):
        torch.func.vmap(task_loss, randomness="different")(*s, *q).mean().backward()

    return step


def _accumulate(model, grads) -> None:
    for p, g in zip(model.parameters(), grads, strict=True):
        p.grad = g if p.grad is None else p.grad + g


def measure_one(
    method: str, setting: str, first_order: bool, repeats: int, device: str = "cpu"
) -> dict:
    cfg = SETTINGS[setting]
    torch.manual_seed(0)
    model = conv4(1, cfg["ways"]).to(device)
    support, query = episode(cfg["ways"], cfg["meta_batch"], device=device)
    cuda = torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    try:
        step = step_fn(method, model, cfg["steps"], cfg["lr"], first_order)
    except ValueError as error:  # e.g. vmap refused: second order through BatchNorm
        return {"error": str(error).split(":")[0]}
    model.zero_grad()
    step(support, query)  # warm-up
    times = []
    for _ in range(repeats):
        model.zero_grad()
        sync()
        start = time.perf_counter()
        step(support, query)
        sync()
        times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "seconds": statistics.median(times),
        "peak_mb": peak,
        "grad": float64_gradient(method, setting, first_order, device).tolist(),
    }


def float64_gradient(method: str, setting: str, first_order: bool, device: str) -> torch.Tensor:
    """The method's meta-gradient in float64 on 4 tasks (a sample of its elements): a wrong
    gradient stands out from rounding, which chained BatchNorm steps amplify in float32."""
    cfg = SETTINGS[setting]
    torch.manual_seed(0)
    model = conv4(1, cfg["ways"]).to(device, torch.float64)
    support, query = episode(cfg["ways"], 4, device=device)
    support, query = [(x.double(), y) for x, y in (support, query)]
    step_fn(method, model, cfg["steps"], cfg["lr"], first_order)(support, query)
    grads = torch.cat([p.grad.flatten() for p in model.parameters()]).cpu()
    return grads[:: max(1, len(grads) // 2000)]


NETWORK_KERNELS = ("conv", "mkldnn", "batch_norm", "threshold", "relu", "clamp_min", "addmm", "mm")
NETWORK_KERNELS += ("softmax", "nll_loss")


def kernel_share(method: str, setting: str, first_order: bool) -> dict:
    """Share of one meta-iteration's self operator time (CPU) spent in the network's kernels."""
    cfg = SETTINGS[setting]
    torch.manual_seed(0)
    model = conv4(1, cfg["ways"])
    support, query = episode(cfg["ways"], cfg["meta_batch"])
    try:
        step = step_fn(method, model, cfg["steps"], cfg["lr"], first_order)
    except ValueError as error:
        return {"error": str(error).split(":")[0]}
    step(support, query)  # warm-up
    model.zero_grad()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step(support, query)
    events = [e for e in profile.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    network = sum(
        e.self_cpu_time_total
        for e in events
        if any(k in e.key.removeprefix("aten::") for k in NETWORK_KERNELS)
    )
    return {"seconds": total / 1e6, "network": network / total}


def kernels(methods: list[str], write: bool) -> None:
    table = ["| setting | order | method | operator s | network kernels |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        for order in ("second", "first"):
            for method in methods:
                r = kernel_share(method, setting, order == "first")
                row = (
                    f"| {setting} | {order} | {method} | {r['error']} | |"
                    if "error" in r
                    else f"| {setting} | {order} | {method} | {r['seconds']:.2f} | "
                    f"{r['network']:.0%} |"
                )
                print(row, flush=True)
                table.append(row)
    if write:
        body = "\n".join(table) + (
            "\n\nOne profiled meta-iteration per row (after a warm-up), same network, data and "
            "start as the timings above. Operator s: the self time of all aten operators; network "
            "kernels: the share of it in convolution, BatchNorm, ReLU, the linear head and the "
            "loss (forward and backward), the arithmetic every method must do. The rest is "
            "copies, the inner SGD updates, sums and views, and (second order) the elementwise "
            "operations that BatchNorm's double backward is composed of."
        )
        write_section("speed_omniglot kernels (cpu)", body, __spec__.name)


REFERENCE = METHODS[0]
WRONG = 1e-8  # relative difference of float64 gradients beyond rounding


def headline(setting: str, order: str, rows: list) -> str:
    """The fastest peer form of one setting against ours, and whether its gradient is right."""
    got = {m: r for s, o, m, r in rows if s == setting and o == order and "seconds" in r}
    peers = {m: r for m, r in got.items() if not m.startswith("ours")}
    if REFERENCE not in got or not peers:
        return f"{setting}, {order} order: no comparison"
    ours = got[REFERENCE]["seconds"]
    fastest = min(peers, key=lambda m: peers[m]["seconds"])
    text = (
        f"{setting}, {order} order: fastest peer form {fastest} "
        f"{peers[fastest]['seconds']:.2f} s, ours {ours:.2f} s: "
        f"{peers[fastest]['seconds'] / ours:.2f}x"
    )
    if peers[fastest]["diff"] > WRONG:
        right = {m: r for m, r in peers.items() if r["diff"] <= WRONG}
        text += f" (its gradient is wrong: {peers[fastest]['diff']:.0e}"
        if right:
            best = min(right, key=lambda m: right[m]["seconds"])
            text += (
                f"; fastest with a right gradient {best} {right[best]['seconds']:.2f} s: "
                f"{right[best]['seconds'] / ours:.2f}x"
            )
        text += ")"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--kernels", action="store_true", help="profile the network's share")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "SETTING", "ORDER"), help="internal")
    args = parser.parse_args()
    if args.one:
        method, setting, order = args.one
        result = measure_one(method, setting, order == "first", args.repeats, args.device)
        print(json.dumps(result))
        return
    if args.kernels:
        kernels(args.methods, args.write)
        return
    rows, headlines = [], []
    for setting in SETTINGS:
        for order in ("second", "first"):
            reference = None
            for method in args.methods:
                command = [
                    sys.executable,
                    "-m",
                    "benchmarks.speed_omniglot",
                    "--repeats",
                    str(args.repeats),
                    "--device",
                    args.device,
                    "--one",
                    method,
                    setting,
                    order,
                ]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    line = (done.stderr.strip().splitlines() or ["failed"])[-1]
                    result = {"error": line[:80]}
                else:
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                if "grad" in result:
                    grad = torch.tensor(result.pop("grad"))
                    if reference is None:
                        reference, result["diff"] = grad, 0.0
                    else:
                        result["diff"] = (
                            (grad - reference).abs().max() / reference.abs().max()
                        ).item()
                rows.append((setting, order, method, result))
                print(setting, order, method, result, flush=True)
            headlines.append(headline(setting, order, rows))
            print(headlines[-1], flush=True)
    if args.write:
        peak = "peak CUDA MB" if args.device.startswith("cuda") else "peak RSS MB"
        table = [
            f"| setting | order | method | s / meta-iteration | {peak} | gradient difference |"
        ]
        table.append("|---|---|---|---|---|---|")
        for setting, order, method, r in rows:
            if "error" in r:
                table.append(f"| {setting} | {order} | {method} | {r['error']} | | |")
            else:
                diff = "reference" if method == REFERENCE else f"{r['diff']:.1e}"
                table.append(
                    f"| {setting} | {order} | {method} | {r['seconds']:.2f} | "
                    f"{r['peak_mb']:.0f} | {diff} |"
                )
        body = "\n".join(table) + (
            f"\n\nconv4 (64 filters, stride 2, BatchNorm with batch statistics), {QUERY} query "
            "images per class, random 28x28 inputs; meta-batch 32 (5-way, 1 step of 0.4) and 16 "
            "(20-way, 5 steps of 0.1). Peak RSS includes the Python process and torch; on a GPU "
            "the peak is the CUDA allocator's. "
            "ours (loop) and ours (vmap) call meta_loss(...).backward(), keeping all tasks' "
            "graphs. "
            "Gradient difference: each method's meta-gradient in float64 on 4 of the tasks, "
            "its largest difference to ours (meta_backward) over the largest gradient element, on "
            f"a sample of the elements; above {WRONG:g} is a wrong gradient, not rounding.\n\n"
            + "\n".join(f"- {h}" for h in headlines)
        )
        device = torch.device(args.device).type
        write_section(f"speed_omniglot ({device})", body, __spec__.name)


if __name__ == "__main__":
    main()
