"""Hyperparameters of MAML-RL meta-training (defaults: the MAML paper's locomotion settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from envs import PythonFamily, family_class, is_mujoco
from maml.run.devices import DEVICES
from maml.run.errors import UsageError
from maml.run.presets import has_preset
from maml.run.threads import follow_load_field, threads_field
from maml_rl.losses import INNER_LOSSES

# What a sampling gathers per task: whole episodes, or a step budget as rllab's sampler did.
SAMPLINGS = ("episodes", "steps")
# The policy's initialisation. "torch": nn.Linear's own (Kaiming-uniform weights, uniform
# biases); "xavier": the authors' MAMLGaussianMLPPolicy (cbfinn/maml_rl,
# sandbox/rocky/tf/policies/maml_minimal_gauss_mlp_policy.py, create_MLP: Xavier-uniform weights
# and zero biases for the hidden and output layers).
INITS = ("torch", "xavier")
# The inner loss's estimator (maml_rl.losses): REINFORCE (the MAML paper's), DiCE (Loaded DiCE,
# Farquhar et al. 2019: unbiased higher derivatives) or LVC (ProMP's low-variance curvature,
# Rothfuss et al. 2019); all three take the same inner step and differ in the meta-gradient
# through it.
ESTIMATORS = tuple(INNER_LOSSES)
OUTERS = ("trpo", "ppo")  # the meta-update
TRPO_SETTINGS = frozenset(
    {"max_kl", "cg_iterations", "cg_damping", "line_search_steps", "line_search_ratio"}
    | {"fisher_fraction"}
)
PPO_SETTINGS = frozenset({"outer_lr", "ppo_epochs", "ppo_clip", "inner_kl_penalty"})


def _f(default, help: str, **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass
class TrainConfig:
    """Everything that defines an RL meta-training run; written to ``config.toml``."""

    # A run's config.toml may say 0 for these: it meant the default (read_run_config).
    ZERO_MEANT_AUTO: ClassVar[tuple[str, ...]] = (
        "horizon",
        "frame_skip",
        "fisher_fraction",
        "nthread",
    )
    # Settings a run's config.toml may hold with the one value this version still trains with.
    RETIRED: ClassVar[dict[str, object]] = {"meta_step": "natural", "fisher_subsample": "episodes"}

    env: str = _f(
        "halfcheetah-vel",
        "task family: navigation-2d, halfcheetah-vel, halfcheetah-dir, ant-vel, ant-dir, "
        "metaworld-ml1-<env> (e.g. metaworld-ml1-reach), metaworld-ml10, a registered Gymnasium "
        "id or module:Class (an env with sample_tasks and set_task: see the README)",
    )
    iterations: int = _f(500, "meta-iterations (TRPO updates)", positive=True, resumable=True)
    meta_batch: int = _f(40, "tasks per meta-iteration", positive=True)
    rollouts: int = _f(20, "episodes per task per sampling", positive=True)
    horizon: int | None = _f(None, "episode length (auto: the family's, 100 or 200)", positive=True)
    sampling: str = _f(
        "episodes",
        "what each sampling gathers per task: episodes (--rollouts whole episodes) or steps (as "
        "the MAML authors' training did: the episodes one env per task runs back to back until "
        "they hold rollouts x horizon steps, its unfinished last episode dropped; more, shorter "
        "episodes where episodes end early; run on rollouts lanes per task at once)",
        choices=SAMPLINGS,
    )
    frame_skip: int | None = _f(
        None,
        "MuJoCo physics steps per env step (auto: the env's own; HalfCheetah: Gymnasium's 5, an "
        "env step of 0.05 s; Ant: rllab's 1, an env step of 0.02 s)",
        positive=True,
    )
    inner_steps: int = _f(1, "inner policy-gradient steps, fresh episodes for each", positive=True)
    inner_lr: float = _f(0.1, "inner step size", positive=True)
    first_order: bool = _f(False, "first-order MAML (drop second derivatives)")
    inner_estimator: str = _f(
        "reinforce",
        "the inner loss's estimator, the same inner step with different derivatives through it: "
        "reinforce (the MAML paper's; misses the pre-update sampling term of the meta-gradient), "
        "dice (Loaded DiCE: the expected return's Hessian, the meta-gradient right to first "
        "order in the step) or lvc (ProMP's low-variance curvature)",
        choices=ESTIMATORS,
    )
    gamma: float = _f(0.99, "discount factor", positive=True)
    gae_lambda: float = _f(1.0, "GAE lambda")
    hidden: int = _f(100, "units per hidden layer of the policy", positive=True)
    depth: int = _f(2, "hidden layers of the policy", positive=True)
    activation: str = _f("relu", "hidden activation", choices=("relu", "tanh"))
    init: str = _f(
        "torch",
        "policy initialisation: torch's nn.Linear default, or xavier (Xavier-uniform weights, "
        "zero biases: the authors' policy)",
        choices=INITS,
    )
    outer: str = _f(
        "trpo",
        "the meta-update: trpo (the MAML paper's: conjugate gradient on the Fisher of the KL "
        "through the adaptation, a line search under --max-kl) or ppo (ProMP's: Adam on PPO's "
        "clipped objective of the post-adaptation episodes for --ppo-epochs steps, re-adapting "
        "through the inner steps at each)",
        choices=OUTERS,
    )
    outer_lr: float = _f(1e-3, "ppo: Adam's step size (ProMP: 1e-3)", positive=True)
    ppo_epochs: int = _f(5, "ppo: Adam steps on each batch of episodes (ProMP: 5)", positive=True)
    ppo_clip: float = _f(
        0.3, "ppo: the clip range of the likelihood ratio (ProMP: 0.3)", positive=True
    )
    inner_kl_penalty: float = _f(
        0.0,
        "ppo: weight of the mean KL from each inner step's sampling policy to its re-adapted one "
        "(ProMP: 5e-4)",
        non_negative=True,
    )
    max_kl: float = _f(0.01, "TRPO trust region: largest mean KL per update", positive=True)
    cg_iterations: int = _f(10, "conjugate-gradient iterations", positive=True)
    cg_damping: float = _f(1e-5, "damping added to the Fisher matrix", positive=True)
    line_search_steps: int = _f(15, "backtracking steps of the line search", positive=True)
    line_search_ratio: float = _f(0.8, "step shrink factor of the line search", positive=True)
    # A fifth of the episodes makes the TRPO step several times cheaper on the CPU for a step
    # close to the full Fisher's (benchmarks/RESULTS.md, speed_rl --compare-fractions).
    fisher_fraction: float = _f(
        0.2,
        "fraction of each task's episodes the Fisher-vector products use (of its rows of steps "
        "laid end to end, where episodes end early), in (0, 1]",
        positive=True,
    )
    seed: int = _f(0, "random seed (policy initialisation, tasks, episodes)")
    device: str = _f(
        "auto",
        "device for the policy update (rollouts run on the CPU)",
        choices=DEVICES,
        resumable=True,
    )
    nthread: int | None = _f(
        None,
        "sampling threads: MuJoCo rollout threads, or the worker processes of a Python family "
        "(Meta-World, a user's; 1: in the training process) (auto: this rank's cores)",
        positive=True,
        resumable=True,
    )
    threads: int | None = threads_field()
    follow_load: bool = follow_load_field()
    checkpoint_every: int = _f(10, "iterations between checkpoints", positive=True, resumable=True)
    val_every: int = _f(
        50,
        "iterations between validations (returns after 0-3 inner steps on fixed held-out tasks, "
        "as scalars and a figure); 0 for none",
        non_negative=True,
        resumable=True,
    )
    val_tasks: int = _f(20, "held-out tasks of a validation", positive=True, resumable=True)

    @staticmethod
    def preset_of(env: str) -> str | None:
        """The preset a family trains with: its own (ours, Meta-World's ML1 envs with one, ML10),
        ``metaworld-ml1`` for ML1's other envs, none for a family a user brings (the defaults);
        an unknown family is a usage error naming what is allowed."""
        try:
            family = family_class(env)
        except ValueError as error:
            raise UsageError(f"--env: {error}") from None
        if has_preset(env):
            return env
        if env.startswith("metaworld-ml1-"):
            return "metaworld-ml1"
        if isinstance(family, PythonFamily):
            return None
        return env  # ours: a missing preset is an error

    def inapplicable(self) -> set[str]:
        """Settings that do not apply to this family (not written to the run's config.toml)."""
        other = set(PPO_SETTINGS if self.outer == "trpo" else TRPO_SETTINGS)
        family = family_class(self.env)
        if is_mujoco(family):
            return other
        if isinstance(family, PythonFamily):  # nthread: its worker processes
            return other | {"frame_skip"}
        return other | {"frame_skip", "nthread"}
