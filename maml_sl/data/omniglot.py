"""Omniglot (Lake et al. 2015) in its published layout, read once into one uint8 tensor.

A data path may be a folder holding ``images_background/`` and ``images_evaluation/`` (or the
``images_background_small1/2`` sets), the zip files of the same names, or one such folder or zip
itself. Each set holds ``alphabet/character/*.png``. Zips are read directly; nothing is written
into the data folder.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from maml.run.errors import UsageError
from maml_sl.data.classes import ClassImages, load_cached, save_cached
from maml_sl.data.images import decode

SET_NAMES = (
    "images_background",
    "images_evaluation",
    "images_background_small1",
    "images_background_small2",
)
IMAGE_SIZE = 28


def find_sets(path: str | Path) -> list[Path]:
    """The Omniglot sets (folders or zips) that ``path`` holds or is."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"Omniglot data path {path} does not exist")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise UsageError(f"{path} is not a zip file; give an Omniglot folder or zip")
        return [path]
    found = []
    for name in SET_NAMES:
        if (path / name).is_dir():
            found.append(path / name)
        elif (path / f"{name}.zip").is_file():
            found.append(path / f"{name}.zip")
    if found:
        return found
    if any(p.is_dir() and any(c.is_dir() for c in p.iterdir()) for p in path.iterdir()):
        return [path]  # the folder is a set itself: alphabet/character/*.png
    raise UsageError(
        f"{path} holds no Omniglot set: expected one of {', '.join(SET_NAMES)} "
        "(folder or .zip), or alphabet/character/*.png folders"
    )


def _entries(source: Path) -> dict[tuple[str, str], list[tuple[str, object]]]:
    """(alphabet, character) -> [(file name, opener)] of one set, sorted."""
    groups: dict[tuple[str, str], list[tuple[str, object]]] = {}
    if source.is_dir():
        for png in sorted(source.glob("*/*/*.png")):
            key = (png.parent.parent.name, png.parent.name)
            groups.setdefault(key, []).append((str(png), png.read_bytes))
        for character in sorted(source.glob("*/*")):
            if character.is_dir():
                groups.setdefault((character.parent.name, character.name), [])
        return groups
    archive = zipfile.ZipFile(source)
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        parts = PurePosixPath(info.filename).parts
        if parts and parts[0] == source.stem:
            parts = parts[1:]  # the zip's own top folder
        if info.is_dir():
            if len(parts) == 2:
                groups.setdefault((parts[0], parts[1]), [])
            continue
        if len(parts) == 3 and parts[2].lower().endswith(".png"):
            groups.setdefault((parts[0], parts[1]), []).append(
                (f"{source}:{info.filename}", lambda name=info.filename: archive.read(name))
            )
    return groups


def load_omniglot(
    path: str | Path, size: int = IMAGE_SIZE, cache_dir: str | Path | None = None
) -> ClassImages:
    """Read every set under ``path`` (resized to size x size once); cached if ``cache_dir``."""
    sources = find_sets(path)
    cache = None
    if cache_dir is not None:
        key = "|".join(f"{s.resolve()}:{s.stat().st_mtime_ns}:{s.stat().st_size}" for s in sources)
        digest = hashlib.sha256(f"{key}|{size}".encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"omniglot-{digest}.pt"
        cached = load_cached(cache)
        if cached is not None:
            return cached
    names, arrays = [], []
    for source in sources:
        set_name = source.stem if source.is_file() else source.name
        groups = _entries(source)
        if not groups:
            raise UsageError(f"{source} holds no alphabet/character/*.png images")
        for (alphabet, character), files in sorted(groups.items()):
            if not files:
                raise UsageError(f"character folder {source}/{alphabet}/{character} has no PNGs")
            drawings = [255 - decode(read(), size, "L", where) for where, read in files]
            names.append(f"{set_name}/{alphabet}/{character}")
            arrays.append(np.stack(drawings))
    most = max(len(a) for a in arrays)
    images = np.zeros((len(arrays), most, size, size), dtype=np.uint8)
    for i, a in enumerate(arrays):
        images[i, : len(a)] = a
    characters = ClassImages(
        torch.from_numpy(images), torch.tensor([len(a) for a in arrays]), names
    )
    if cache is not None:
        save_cached(cache, characters)
    return characters
