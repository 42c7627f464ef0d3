"""Identical images across classes, found by content: duplicated classes and leaks between splits.

Omniglot's two small background sets both hold Greek and Latin, as byte-identical files; a test
split that holds a training class's images measures memory, not adaptation. Images are compared
as decoded pixels, so a re-encoded copy of the same drawing is found too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from maml.run.errors import UsageError
from maml_sl.data.classes import ClassImages

Digest = bytes


def class_digests(classes: ClassImages) -> list[frozenset[Digest]]:
    """For each class, the digests of its real images' pixels."""
    images = classes.images.contiguous().numpy()
    return [
        frozenset(
            hashlib.blake2b(images[c, i].tobytes(), digest_size=16).digest() for i in range(count)
        )
        for c, count in enumerate(classes.counts.tolist())
    ]


def first_copies(digests: Sequence[frozenset[Digest]], keep: Sequence[int]) -> list[int]:
    """``keep`` without the classes whose images equal those of an earlier class in it."""
    seen: set[frozenset[Digest]] = set()
    unique = []
    for i in keep:
        if digests[i] not in seen:
            seen.add(digests[i])
            unique.append(i)
    return unique


def shared(
    digests: Sequence[frozenset[Digest]], side: Sequence[int], other: Sequence[int]
) -> dict[int, int]:
    """Classes of ``side`` that share an image with a class of ``other``: side -> other."""
    owner = {d: j for j in other for d in digests[j]}
    found = {}
    for i in side:
        hit = next((owner[d] for d in digests[i] if d in owner), None)
        if hit is not None:
            found[i] = hit
    return found


def folder(name: str) -> str:
    """A class's group for messages: ``set/alphabet`` of ``set/alphabet/character``."""
    return name.rsplit("/", 1)[0]


def describe(names: Sequence[str], indices: Sequence[int]) -> str:
    """``group (n classes), ...`` for the classes at ``indices``."""
    counts = Counter(folder(names[i]) for i in indices)
    return ", ".join(f"{group} ({n})" for group, n in sorted(counts.items()))


def check_disjoint(parts: dict[str, ClassImages]) -> None:
    """Refuse splits that share an image: every pair of ``parts`` must be disjoint by content."""
    digests = {name: class_digests(part) for name, part in parts.items()}
    names = list(parts)
    for a_index, a in enumerate(names):
        for b in names[a_index + 1 :]:
            both = digests[a] + digests[b]
            offset = len(digests[a])
            hits = shared(both, range(offset, len(both)), range(offset))
            if hits:
                b_names = [*parts[a].names, *parts[b].names]
                raise UsageError(
                    f"the {b} split shares images with the {a} split: {len(hits)} of its classes, "
                    f"{describe(b_names, list(hits))}, hold images of "
                    f"{describe(b_names, sorted(set(hits.values())))}; give splits with "
                    "different images"
                )
