"""Meta-train / meta-val / meta-test splits of a character (class) collection."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from maml.run.errors import UsageError
from maml_sl.data.classes import ClassImages
from maml_sl.data.overlap import class_digests, describe, first_copies, folder, shared

FULL_OMNIGLOT = 1623  # characters in images_background + images_evaluation
# The MAML paper's Omniglot split: 1200 characters for meta-training (1100 train + 100 val in the
# authors' code), the remaining 423 for meta-testing.
MAML_TRAIN, MAML_VAL = 1100, 100


def _matches(name: str, selectors: Sequence[str]) -> bool:
    set_name, alphabet, _ = name.split("/")
    return any(s in (set_name, alphabet, f"{set_name}/{alphabet}") for s in selectors)


def split_characters(
    characters: ClassImages,
    split_seed: int = 0,
    train_on: Sequence[str] = (),
    test_on: Sequence[str] = (),
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> dict[str, ClassImages]:
    """Split by character into ``train``/``val``/``test``, disjoint by content.

    ``train_on`` / ``test_on`` name sets or alphabets (``images_background_small1``, ``Greek``,
    ``images_background/Greek``); validation characters are then drawn from the training side.
    Without them: the MAML paper's 1100/100/423 split of the full Omniglot, or seeded fractions.
    A character whose images equal another's (Greek and Latin are in both small sets) counts once;
    explicit sides that share images are refused, naming the disjoint choice. ``split_seed``
    alone orders the split, so the test characters do not move with the training seed.
    """
    names = characters.names
    digests = class_digests(characters)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(split_seed)).tolist()
    if train_on or test_on:
        train = [i for i in order if _matches(names[i], train_on)] if train_on else []
        test = [i for i in order if _matches(names[i], test_on)] if test_on else []
        if train_on and test_on:
            _refuse_shared_images(names, digests, train, test, train_on, test_on)
        elif not train_on:  # the rest, without copies of the test characters
            leaks = shared(digests, order, test)
            train = [i for i in order if i not in set(test) and i not in leaks]
        else:
            leaks = shared(digests, order, train)
            test = [i for i in order if i not in set(train) and i not in leaks]
        for side, chosen, selectors in (("train", train, train_on), ("test", test, test_on)):
            if not chosen:
                known = sorted({folder(n) for n in names})
                raise UsageError(
                    f"--{side}-on {' '.join(selectors) or '(rest)'} selects no characters; "
                    f"sets/alphabets here: {', '.join(known)}"
                )
        train, test = first_copies(digests, train), first_copies(digests, test)
        n_val = max(1, round(val_fraction * len(train))) if len(train) > 1 else 0
        parts = {"train": train[n_val:], "val": train[:n_val], "test": test}
    else:
        order = first_copies(digests, order)
        n = len(order)
        if n == FULL_OMNIGLOT:
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


def _refuse_shared_images(
    names: list[str],
    digests: list,
    train: list[int],
    test: list[int],
    train_on: Sequence[str],
    test_on: Sequence[str],
) -> None:
    """Explicit training and test sides must hold no common character and no common image."""
    both = set(train) & set(test)
    if both:
        raise UsageError(
            f"--train-on {','.join(train_on)} and --test-on {','.join(test_on)} both select "
            f"{describe(names, sorted(both))}"
        )
    leaks = shared(digests, test, train)
    if not leaks:
        return
    clean = sorted({folder(names[i]) for i in test} - {folder(names[i]) for i in leaks})
    choice = (
        f"test on the rest: --test-on {','.join(clean)}"
        if clean
        else "choose test alphabets that the training side does not hold"
    )
    raise UsageError(
        f"--test-on {','.join(test_on)} holds the images of training characters: "
        f"{describe(names, sorted(leaks))} are copies from "
        f"{describe(names, sorted(set(leaks.values())))}; {choice}"
    )
