"""Image decoding shared by the data set readers: bytes -> resized grey or RGB uint8 arrays."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from maml.run.errors import UsageError


def decode(data: bytes, size: int, mode: str, where: str) -> np.ndarray:
    """Decode one image file, convert it to ``mode`` ("L" or "RGB") and resize to size x size."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert(mode)
            if image.size != (size, size):
                image = image.resize((size, size), resample=Image.Resampling.LANCZOS)
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise UsageError(f"{where} is not a readable image ({error})") from None
