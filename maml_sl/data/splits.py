"""Meta-train / meta-val / meta-test splits of a character (class) collection."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from maml.errors import UsageError
from maml_sl.data.classes import ClassImages

FULL_OMNIGLOT = 1623  # characters in images_background + images_evaluation
# The MAML paper's Omniglot split: 1200 characters for meta-training (1100 train + 100 val in the
# authors' code), the remaining 423 for meta-testing.
MAML_TRAIN, MAML_VAL = 1100, 100


def _matches(name: str, selectors: Sequence[str]) -> bool:
    set_name, alphabet, _ = name.split("/")
    return any(s in (set_name, alphabet, f"{set_name}/{alphabet}") for s in selectors)


def split_characters(
    characters: ClassImages,
    seed: int = 0,
    train_on: Sequence[str] = (),
    test_on: Sequence[str] = (),
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> dict[str, ClassImages]:
    """Split by character into ``train``/``val``/``test``.

    ``train_on`` / ``test_on`` name sets or alphabets (``images_background_small1``, ``Greek``,
    ``images_background/Greek``); validation characters are then drawn from the training side.
    Without them: the MAML paper's 1100/100/423 split of the full Omniglot, or seeded fractions.
    """
    n = len(characters.names)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    if train_on or test_on:
        train = [i for i in order if _matches(characters.names[i], train_on)] if train_on else []
        test = [i for i in order if _matches(characters.names[i], test_on)] if test_on else []
        if not train_on:
            train = [i for i in order if i not in set(test)]
        if not test_on:
            test = [i for i in order if i not in set(train)]
        overlap = set(train) & set(test)
        if overlap:
            raise UsageError(
                f"{len(overlap)} characters are in both the training and the test selection"
            )
        for side, chosen, selectors in (("train", train, train_on), ("test", test, test_on)):
            if not chosen:
                known = sorted({n.rsplit("/", 1)[0] for n in characters.names})
                raise UsageError(
                    f"--{side}-on {' '.join(selectors) or '(rest)'} selects no characters; "
                    f"sets/alphabets here: {', '.join(known)}"
                )
        n_val = max(1, round(val_fraction * len(train))) if len(train) > 1 else 0
        parts = {"train": train[n_val:], "val": train[:n_val], "test": test}
    elif n == FULL_OMNIGLOT:
        parts = {
            "train": order[:MAML_TRAIN],
            "val": order[MAML_TRAIN : MAML_TRAIN + MAML_VAL],
            "test": order[MAML_TRAIN + MAML_VAL :],
        }
    else:
        n_test = max(1, round(test_fraction * n))
        n_val = max(1, round(val_fraction * n))
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
    return {name: characters.subset(sorted(keep)) for name, keep in parts.items()}
