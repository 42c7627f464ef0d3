"""A tiny synthetic Omniglot: alphabets of characters drawn as jittered random strokes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def character_strokes(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(15, 90, size=(3, 2, 2))  # three line segments


def draw(strokes: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One drawing: the character's strokes, jittered and shifted as a hand would."""
    image = Image.new("L", (105, 105), 255)  # black strokes on white, as Omniglot's PNGs
    pen = ImageDraw.Draw(image)
    shifted = strokes + rng.normal(0, 3, strokes.shape) + rng.uniform(-12, 12, size=2)
    for (x0, y0), (x1, y1) in shifted:
        pen.line([(x0, y0), (x1, y1)], fill=0, width=7)
    return image


def write_omniglot(
    root: Path,
    set_name: str = "images_background",
    alphabets: int = 3,
    characters: int = 4,
    drawings: int = 6,
    seed: int = 0,
) -> Path:
    """Write ``root/set_name/alphabet/character/*.png``; returns the set folder."""
    rng = np.random.default_rng(seed)
    base = root / set_name
    for a in range(alphabets):
        for c in range(characters):
            folder = base / f"Alphabet_{seed}_{a}" / f"character{c + 1:02d}"
            folder.mkdir(parents=True)
            strokes = character_strokes(rng)
            for d in range(drawings):
                draw(strokes, rng).save(folder / f"{a:02d}{c:02d}_{d + 1:02d}.png")
    return base


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip ``folder`` with its own name as the top folder, as Omniglot's zips are."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent).as_posix())
    return target
