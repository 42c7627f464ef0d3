"""Hyperparameters of supervised meta-training (defaults: the MAML paper's sinusoid)."""

from __future__ import annotations

from dataclasses import dataclass, field

from maml.inner_lr import LEARNED_LR_MODES
from maml.paths import PATHS
from maml.run.devices import DEVICES
from maml.run.errors import UsageError
from maml.run.threads import follow_load_field, threads_field

TASK_NAMES = ("sinusoid", "omniglot", "miniimagenet")


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    """Everything that defines a supervised meta-training run; written to ``config.toml``."""

    task: str = _f("sinusoid", "task family", choices=TASK_NAMES)
    data: str = _f(
        "", "data set path (image tasks): folder or zip in the published layout", resumable=True
    )
    cache_dir: str = _f(
        "", "folder for a cache of the decoded images (image tasks)", resumable=True
    )
    train_on: str = _f("", "comma-separated sets/alphabets to meta-train on (Omniglot)")
    test_on: str = _f("", "comma-separated sets/alphabets to meta-test on (Omniglot)")
    shift: int = _f(0, "random translation of meta-training images, at most this many pixels")
    ways: int = _f(5, "classes per task, N (classification)", positive=True)
    iterations: int = _f(50_000, "meta-iterations (outer updates)", positive=True, resumable=True)
    meta_batch: int = _f(25, "tasks per meta-iteration", positive=True)
    shots: int = _f(10, "support examples per task (K)", positive=True)
    query: int = _f(10, "query examples per task", positive=True)
    inner_steps: int = _f(1, "inner SGD steps during meta-training", positive=True)
    inner_lr: float = _f(0.01, "inner SGD step size (alpha)", positive=True)
    first_order: bool = _f(False, "first-order MAML (drop second derivatives)")
    learn_inner_lr: str = _f(
        "none", "learned inner step sizes", choices=("none", *LEARNED_LR_MODES)
    )
    multi_step_loss: bool = _f(False, "MAML++ multi-step loss over every inner step")
    msl_anneal_iterations: int = _f(
        10_000, "iterations over which the multi-step loss anneals to the last step", positive=True
    )
    meta_lr: float = _f(1e-3, "Adam step size of the meta-update (beta)", positive=True)
    meta_lr_schedule: str = _f(
        "constant",
        "meta step size over the run: constant, or cosine from --meta-lr down to 0 at the last "
        "iteration (MAML++'s cosine annealing)",
        choices=("constant", "cosine"),
    )
    hidden: int = _f(40, "units per hidden layer of the MLP", positive=True)
    depth: int = _f(2, "hidden layers of the MLP", positive=True)
    filters: int = _f(64, "channels per conv block (image tasks)", positive=True)
    path: str = _f("auto", "meta-objective implementation", choices=PATHS)
    seed: int = _f(0, "random seed (model initialisation and task sampling)")
    split_seed: int = _f(
        0,
        "seed of the train/val/test class split (Omniglot), kept apart from --seed so that the "
        "test classes stay the same for every training seed",
    )
    device: str = _f("auto", "device for the meta-learner", choices=DEVICES, resumable=True)
    threads: int | None = threads_field()
    follow_load: bool = follow_load_field()
    log_every: int = _f(100, "iterations between training scalars", positive=True, resumable=True)
    val_every: int = _f(1_000, "iterations between meta-validations", positive=True, resumable=True)
    val_tasks: int = _f(100, "fixed held-out tasks for meta-validation", positive=True)
    figure_every: int = _f(
        5_000, "iterations between figures in TensorBoard", positive=True, resumable=True
    )
    checkpoint_every: int = _f(
        1_000, "iterations between checkpoints", positive=True, resumable=True
    )

    def inapplicable(self) -> set[str]:
        """Settings that do not apply to this task (not written to the run's config.toml)."""
        image = {"data", "cache_dir", "shift", "ways", "filters"}
        omniglot = {"train_on", "test_on", "split_seed"}
        skip = {"sinusoid": image | omniglot, "omniglot": {"hidden", "depth"}}.get(
            self.task, {"hidden", "depth"} | omniglot
        )
        return skip if self.multi_step_loss else skip | {"msl_anneal_iterations"}

    def check_resume(self, before: TrainConfig) -> None:
        """A cosine schedule runs over the whole run: more iterations would change its past."""
        if self.meta_lr_schedule == "cosine" and self.iterations != before.iterations:
            raise UsageError(
                f"--iterations {self.iterations}: this run's cosine meta step size anneals over "
                f"its {before.iterations} iterations; changing them would change the schedule it "
                f"trained with. Start a new run for a longer one"
            )
