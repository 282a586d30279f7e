"""Image augmentations on (B, C, H, W) batches with zero background: an exact integer translation, random
integer shifts, and random small affine maps (rotation, scale, translation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Every image of ``x`` (B, C, H, W) moved down by ``dy`` and right by ``dx`` pixels (zero fill)."""
    h, w = x.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a translation by ({dy}, {dx}) leaves nothing of a {h}x{w} image")
    padded = F.pad(x, (abs(dx), abs(dx), abs(dy), abs(dy)))  # (B, C, H, W) -> (B, C, H+2|dy|, W+2|dx|)
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top:top + h, left:left + w]  # (B, C, H, W)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image by integers in [-max_shift, max_shift] (zero fill), one offset per image."""
    if max_shift == 0:
        return x
    b = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)  # (B, 1, 28, 28) -> (B, 1, 28+2s, 28+2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).to(x.device)
    h, w = x.shape[-2:]
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))  # (B, 28)
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))  # (B, 28)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[:, 0][batch, rows[:, :, None], cols[:, None, :]].unsqueeze(1)  # (B, 1, 28, 28)


def random_affine(x: torch.Tensor, max_degrees: float = 10.0, max_scale: float = 0.1, max_shift: float = 2.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly rotate (+-max_degrees), scale (1 +- max_scale) and translate (+-max_shift pixels) each image.

    ``x`` is (B, 1, H, W) with background 0 (use images in [0, 1]; for [-1, 1] data shift first). One
    affine map per image, bilinear resampling (``affine_grid`` + ``grid_sample``), zeros outside.
    """
    b, _, h, w = x.shape
    u = torch.rand(4, b, generator=generator, dtype=torch.float64).to(x.device, x.dtype) * 2 - 1  # U(-1, 1)
    angle = u[0] * max_degrees * torch.pi / 180
    scale = 1 + u[1] * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, u[2] * 2 * max_shift / w], 1),
                         torch.stack([sin, cos, u[3] * 2 * max_shift / h], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2) sampling positions
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
