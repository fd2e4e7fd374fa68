"""The built-in offline dataset: ten kinds of procedurally drawn shapes and textures.

Every image is drawn with batched tensor ops (one pass per class), so 6,000 images take a fraction
of a second. Colours, positions, sizes, stripe periods and background noise are random, so a small
CNN has to learn the shapes rather than a colour or a pixel; it reaches well above chance in an
epoch or two on a CPU, without being solved by the first batch.
"""

from __future__ import annotations

import torch

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "horizontal_stripes",
    "vertical_stripes",
    "diagonal",
    "ring",
    "dots",
    "checker",
)

SHAPES_TRAIN_SIZE = 5000
SHAPES_TEST_SIZE = 1000
SHAPES_TRAIN_SEED = 0
SHAPES_TEST_SEED = 1


def _masks(kind: int, dx: torch.Tensor, dy: torch.Tensor, s: torch.Tensor, period: torch.Tensor,
           flip: torch.Tensor) -> torch.Tensor:
    """Boolean [n, H, W] masks for one kind; dx, dy are offsets from each image's centre."""
    ax, ay = dx.abs(), dy.abs()
    box = torch.maximum(ax, ay) <= s
    if kind == 0:  # circle
        return dx * dx + dy * dy <= s * s
    if kind == 1:  # square
        return torch.maximum(ax, ay) <= s * 0.8
    if kind == 2:  # triangle (pointing up or down)
        ty = torch.where(flip, -dy, dy)
        return (ty <= s * 0.7) & (ax <= (ty + s) * 0.55)
    if kind == 3:  # cross
        arm = s * 0.3
        return ((ax <= arm) & (ay <= s)) | ((ay <= arm) & (ax <= s))
    if kind == 4:  # horizontal stripes
        return box & (torch.remainder(dy, 2 * period) < period)
    if kind == 5:  # vertical stripes
        return box & (torch.remainder(dx, 2 * period) < period)
    if kind == 6:  # a thick diagonal bar, either orientation
        d = torch.where(flip, dx - dy, dx + dy).abs()
        return box & (d <= s * 0.35)
    if kind == 7:  # ring
        r2 = dx * dx + dy * dy
        return (r2 <= s * s) & (r2 >= (s * 0.55) ** 2)
    if kind == 8:  # a grid of dots
        gx = torch.remainder(dx, 2 * period) < period * 0.9
        gy = torch.remainder(dy, 2 * period) < period * 0.9
        return box & gx & gy
    if kind == 9:  # checkerboard
        cx = torch.floor(dx / period)
        cy = torch.floor(dy / period)
        return box & (torch.remainder(cx + cy, 2) == 0)
    raise ValueError(f"no shape kind {kind}")


def make_shapes(n: int, seed: int = 0, image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (uint8 [n, 3, S, S]) and labels (int64 [n]), balanced over the ten classes and
    fully determined by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    size = image_size
    scale = size / 32.0
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=g)]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    # per-image parameters, drawn for every image so that the stream of numbers does not depend
    # on the class mix
    s = (6.0 + 6.0 * rand(n)) * scale  # half-size in pixels
    cx = size / 2 + (rand(n) - 0.5) * (size - 2 * s) * 0.9
    cy = size / 2 + (rand(n) - 0.5) * (size - 2 * s) * 0.9
    period = torch.floor(2.0 + 2.0 * rand(n)) * scale  # stripe / dot / checker period
    flip = rand(n) < 0.5
    bg = rand(n, 3)
    fg = torch.remainder(bg + 0.3 + 0.4 * rand(n, 3), 1.0)
    contrast = 0.7 + 0.3 * rand(n)
    fg = bg + (fg - bg) * contrast[:, None]
    noise_std = 0.02 + 0.08 * rand(n)
    noise = torch.randn(n, 3, size, size, generator=g) * noise_std[:, None, None, None]
    # a low-frequency background gradient, so the background is not a flat colour
    grad = (rand(n, 3) - 0.5) * 0.3

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for kind in range(len(SHAPE_CLASSES)):
        idx = (labels == kind).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        dx = xx[None] - cx[idx, None, None]
        dy = yy[None] - cy[idx, None, None]
        mask[idx] = _masks(kind, dx, dy, s[idx, None, None], period[idx, None, None],
                           flip[idx, None, None])

    ramp = (xx + yy)[None, None] / (2 * size) - 0.5  # [1, 1, S, S]
    background = bg[:, :, None, None] + grad[:, :, None, None] * ramp
    images = torch.where(mask[:, None], fg[:, :, None, None], background) + noise
    images = (images.clamp_(0.0, 1.0) * 255.0).round_().to(torch.uint8)
    return images, labels
