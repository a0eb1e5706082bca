"""A PNG grid of episodes: one row per episode, columns = history images | reference | one image
per method (e.g. none, Pigeon, DRC), with a header of column names."""

from __future__ import annotations

import numpy as np

from jaxmethods.train.metrics import is_writer


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[..., H, W, 3] in [-1, 1] -> uint8 0..255."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8
    )


def grid_array(columns: list[np.ndarray], *, gap: int = 2, scale: int = 2) -> np.ndarray:
    """columns: each [R, H, W, 3] in [-1, 1] (one image per row) or [R, K, H, W, 3] (K images
    per row side by side) -> one uint8 canvas [R*(H*s+gap), sum(K*(W*s)+gap), 3], white gaps."""
    blocks = []
    rows = None
    for c, col in enumerate(columns):
        col = np.asarray(col)
        col = col[:, None] if col.ndim == 4 else col
        if col.ndim != 5 or col.shape[-1] != 3:
            raise ValueError(f"grid column {c}: expected [R, (K,) H, W, 3], got {col.shape}")
        if rows is not None and col.shape[0] != rows:
            raise ValueError(f"grid column {c}: {col.shape[0]} rows, column 0 has {rows}")
        rows = col.shape[0]
        x = to_uint8(col).repeat(scale, 2).repeat(scale, 3)  # [R, K, H', W', 3]
        r, k, h, w, _ = x.shape
        x = np.pad(x, ((0, 0), (0, 0), (0, gap), (0, 0), (0, 0)), constant_values=255)
        x = x.transpose(0, 2, 1, 3, 4).reshape(r * (h + gap), k * w, 3)
        blocks.append(np.pad(x, ((0, 0), (0, gap), (0, 0)), constant_values=255))
    return np.concatenate(blocks, axis=1)


def write_grid(path: str, columns: list[np.ndarray], names: list[str], **kw) -> str:
    """Writes `grid_array(columns)` with a header row naming each column; returns path."""
    from PIL import Image, ImageDraw

    if len(names) != len(columns):
        raise ValueError(f"write_grid: {len(names)} names for {len(columns)} columns")
    body = grid_array(columns, **kw)
    header = 14
    canvas = Image.new("RGB", (body.shape[1], body.shape[0] + header), "white")
    canvas.paste(Image.fromarray(body), (0, header))
    draw, x = ImageDraw.Draw(canvas), 0
    scale, gap = kw.get("scale", 2), kw.get("gap", 2)
    for col, name in zip(columns, names, strict=True):
        col = np.asarray(col)
        k = 1 if col.ndim == 4 else col.shape[1]
        draw.text((x + 2, 1), name, fill="black")
        x += k * col.shape[-2] * scale + gap
    if is_writer():
        canvas.save(path)
    return path
