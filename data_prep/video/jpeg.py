"""JPEG encoding and decoding of single RGB frames (Pillow / libjpeg-turbo)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """uint8 [H, W, 3] RGB -> JPEG bytes (4:2:0 chroma subsampling, as most video codecs)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"expected uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    buf = io.BytesIO()
    Image.fromarray(frame, "RGB").save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def decode_jpeg(data: bytes, size_hw: tuple[int, int] | None = None) -> np.ndarray:
    """JPEG bytes -> uint8 [H, W, 3] RGB, optionally resized (bilinear) to (height, width)."""
    image = Image.open(io.BytesIO(data))
    image = image.convert("RGB") if image.mode != "RGB" else image
    if size_hw is not None and (image.height, image.width) != tuple(size_hw):
        image = image.resize((int(size_hw[1]), int(size_hw[0])), Image.BILINEAR)
    return np.asarray(image)
