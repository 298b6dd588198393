"""Training data: high-resolution files in, aligned (low-res, high-res) patches out.

Each high-resolution item is read once, cropped to a multiple of the scale and degraded by
the configured pipeline into its low-resolution twin. Patches are then drawn at random
aligned positions, so low-res pixel ``i`` always covers high-res pixels ``[i*s, (i+1)*s)``
(the edges-kept convention), with random flips and 90-degree rotations and fresh noise
per patch. Readers are injected: ``image`` is built in; front ends pass ``nifti``,
``dicom`` or ``geotiff`` readers to the runner.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .. import degradation as deg
from ..metrics import rgb_to_y
from ..models.layers import expand_per_axis
from .config import ConfigError, DataConfig, DegradationConfig

# A reader turns a path into a float32 array (C, *spatial) in the model's normalized range.
Reader = Callable[[Path], np.ndarray]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: Path, color: str = "y") -> np.ndarray:
    """Reads an 8- or 16-bit image as float32 ``(C, H, W)`` in [0, 1].

    ``color``: ``y`` gives BT.601 luma (16-235 scaled to [0, 1] by /255, the SR protocol),
    ``rgb`` three channels, ``gray`` the channel mean. Grayscale files give one channel.
    """
    import imageio.v3 as iio

    image = np.asarray(iio.imread(path))
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535.0
    else:
        raise ValueError(f"{path}: unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        return image[None]
    image = np.moveaxis(image[..., :3], -1, 0)
    if color == "rgb":
        return np.ascontiguousarray(image)
    if color == "gray":
        return image.mean(axis=0, keepdims=True)
    if color == "y":
        return (rgb_to_y(image) / 255.0).astype(np.float32)[None]
    raise ValueError(f"unknown color mode {color!r}; choose y, rgb or gray")


def expand_paths(
    entries: Sequence[str], root: str | os.PathLike, suffixes: Sequence[str] = ()
) -> list[Path]:
    """Resolves files, folders and glob patterns (relative to ``root``) to a sorted file list."""
    root = Path(os.path.expandvars(str(root)))
    files: list[Path] = []
    for entry in entries:
        pattern = Path(os.path.expandvars(entry))
        pattern = pattern if pattern.is_absolute() else root / pattern
        matches = [Path(p) for p in sorted(glob.glob(str(pattern)))]
        if not matches:
            raise FileNotFoundError(f"{entry}: no files match (looked for {pattern})")
        for match in matches:
            if match.is_dir() and suffixes:
                files += sorted(p for p in match.iterdir() if p.suffix.lower() in suffixes)
            else:
                files.append(match)
    return files


def region_slices(region: Sequence[Sequence[float]], shape: Sequence[int]) -> list[slice]:
    """One slice per axis of ``shape``: ``region``'s ``[start, stop]`` fractions rounded to
    whole pixels for the leading axes; axes past ``region`` are kept whole."""
    index = [slice(int(round(a * n)), int(round(b * n))) for (a, b), n in zip(region, shape)]
    return index + [slice(None)] * (len(shape) - len(index))


def crop_region(array: np.ndarray, region: Sequence[Sequence[float]]) -> np.ndarray:
    """``array (C, *spatial)`` cropped to ``region``: ``[start, stop]`` fractions per leading
    spatial axis (rounded to whole pixels; later axes are kept whole)."""
    index = [slice(None), *region_slices(region, array.shape[1:])]
    return np.ascontiguousarray(array[tuple(index)])


def regions_disjoint(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> bool:
    """True when two ``crop_region`` regions share no pixel (disjoint on some axis)."""
    return any(a0 >= b1 or b0 >= a1 for (a0, a1), (b0, b1) in zip(a, b))


def region_reader(reader: Reader, region: Sequence[Sequence[float]]) -> Reader:
    """``reader`` followed by ``crop_region`` (the reader itself when ``region`` is empty)."""
    if not region:
        return reader
    return lambda path: crop_region(reader(path), region)


def split_channels(pairs: Sequence[Pair]) -> list[Pair]:
    """Each channel of each pair as a 1-channel pair of its own."""
    return [
        Pair(p.path, p.lr[c : c + 1], p.hr[c : c + 1]) for p in pairs for c in range(p.hr.shape[0])
    ]


def degrade(hr: np.ndarray, scale: Sequence[int], cfg: DegradationConfig) -> np.ndarray:
    """The low-resolution twin of a scale-cropped high-resolution array ``(C, *spatial)``."""
    dims = hr.ndim - 1
    if cfg.blur_sigma > 0:
        hr = deg.gaussian_blur(hr, cfg.blur_sigma, spatial_dims=dims)
    if cfg.kind == "bicubic":
        lr = deg.bicubic_downsample(hr, tuple(scale), spatial_dims=dims)
    elif cfg.kind == "gaussian_mtf":
        if len(set(scale)) != 1:
            raise ValueError(f"gaussian_mtf needs equal factors on all axes, got {scale}")
        lr = deg.gaussian_mtf_downsample(hr, scale[0], cfg.mtf_at_nyquist, spatial_dims=dims)
    elif cfg.kind == "thick_slice":
        thick = [i for i, s in enumerate(scale) if s > 1]
        if not thick:
            raise ValueError(f"thick_slice needs a scaled axis, got scale {scale}")
        lr = hr
        for i in thick:  # one axis: thick slices; two: a separable in-plane PSF
            lr = deg.thick_slice(lr, scale[i], 1 + i, profile=cfg.profile, gap=cfg.gap)
    else:
        raise ValueError(f"unknown degradation {cfg.kind!r}")
    lr = lr.astype(np.float32)
    if cfg.quantize:
        lr = np.clip(np.round(lr * 255.0), 0, 255).astype(np.float32) / 255.0
    return lr


@dataclass
class Pair:
    """One high-resolution item and its simulated low-resolution twin."""

    path: Path
    lr: np.ndarray
    hr: np.ndarray


def make_pair(path: Path, hr: np.ndarray, scale: Sequence[int], cfg: DegradationConfig) -> Pair:
    """Crops ``hr`` to a multiple of the scale and simulates its low-resolution twin."""
    hr = deg.mod_crop(hr, tuple(scale), spatial_dims=hr.ndim - 1).astype(np.float32)
    return Pair(path, degrade(hr, scale, cfg), hr)


def make_pairs(
    path: Path, hr: np.ndarray, scale: Sequence[int], cfg: DegradationConfig
) -> list[Pair]:
    """One pair per degradation kind and slice profile when ``cfg.kind`` or ``cfg.profile``
    list several, else one pair."""
    profiles = cfg.profiles
    return [
        make_pair(path, hr, scale, replace(cfg, kind=k, profile=p))
        for k in cfg.kinds
        for p in (profiles if k == "thick_slice" else profiles[:1])
    ]


def load_pairs(
    files: Sequence[Path],
    reader: Reader,
    scale: Sequence[int],
    cfg: DegradationConfig,
    rescale: Sequence[float] = (),
) -> list[Pair]:
    """Reads and degrades every file, plus copies downscaled by each ``rescale`` factor."""
    pairs = []
    for path in files:
        hr = reader(path)
        pairs += make_pairs(path, hr, scale, cfg)
        for factor in rescale:
            small = deg.imresize(hr, factor, spatial_dims=hr.ndim - 1)
            if min(small.shape[1:]) >= max(scale):
                pairs += make_pairs(path, small, scale, cfg)
    return pairs


# the six orientations of a 3D volume (C, X, Y, Z): (first, second, plane-index) axes
PLANE_ORDERS = ((0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 0, 1), (1, 2, 0), (2, 1, 0))


def plane_pairs(
    files: Sequence[Path],
    reader: Reader,
    scale: Sequence[int],
    cfg: DegradationConfig,
    orders: Sequence[tuple[int, int, int]] = PLANE_ORDERS,
) -> list[Pair]:
    """3D pairs for a 2D model of ``scale`` ``(s0, s1)``: one per volume and orientation.

    Each volume ``(C, X, Y, Z)`` is transposed so that its spatial axes follow ``order`` and
    degraded with the 3D scale ``(s0, s1, 1)``; the last axis indexes planes. Draw patches
    with a ``PatchSampler(..., planes=True)``.
    """
    scale3 = (*scale, 1)
    pairs = []
    for path in files:
        hr = reader(path)
        if hr.ndim != 4:
            raise ValueError(f"{path}: data.planes needs 3D volumes, got shape {hr.shape[1:]}")
        for order in orders:
            pairs += make_pairs(path, hr.transpose(0, *(a + 1 for a in order)), scale3, cfg)
    return pairs


class PatchSampler:
    """Draws random aligned patch batches from a list of pairs.

    Items are chosen with probability proportional to their size; items smaller than the
    patch are used whole only if every item is that small (the patch shrinks to fit).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        scale: Sequence[int],
        patch_size: int | Sequence[int],
        augment: bool,
        noise_sigma: float,
        rng: np.random.Generator,
        planes: bool = False,
    ):
        if not pairs:
            raise ValueError("no training data")
        dims = pairs[0].hr.ndim - 1
        self.planes = planes
        if planes:  # 3D pairs from plane_pairs; 2D patches from one plane each
            if dims != 3:
                raise ValueError("planes=True needs 3D pairs (see plane_pairs)")
            scale = (*scale, 1)
            patch = (*expand_per_axis(patch_size, 2, "patch_size"), 1)
        else:
            patch = expand_per_axis(patch_size, dims, "patch_size")
        self.scale = tuple(scale)
        for p, s in zip(patch, self.scale):
            if p % s:
                raise ValueError(f"patch_size {patch} must be divisible by the scale {self.scale}")
        self.lr_patch = tuple(p // s for p, s in zip(patch, self.scale))
        fits = [all(n >= q for n, q in zip(pair.lr.shape[1:], self.lr_patch)) for pair in pairs]
        if not any(fits):
            smallest = np.min([pair.lr.shape[1:] for pair in pairs], axis=0)
            self.lr_patch = tuple(min(q, int(n)) for q, n in zip(self.lr_patch, smallest))
            fits = [True] * len(pairs)
        self.pairs = [pair for pair, ok in zip(pairs, fits) if ok]
        sizes = np.array([pair.lr[0].size for pair in self.pairs], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.augment, self.noise_sigma, self.rng = augment, noise_sigma, rng
        # rotate only in planes whose two axes share one scale
        rotatable = 2 if planes else dims
        self.rot_planes = [
            (a, b)
            for a in range(rotatable)
            for b in range(a + 1, rotatable)
            if self.scale[a] == self.scale[b] and self.lr_patch[a] == self.lr_patch[b]
        ]

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One ``(lr, hr)`` patch pair."""
        pair = self.pairs[self.rng.choice(len(self.pairs), p=self.weights)]
        starts = [
            int(self.rng.integers(0, n - q + 1)) for n, q in zip(pair.lr.shape[1:], self.lr_patch)
        ]
        lr_sl = tuple(slice(a, a + q) for a, q in zip(starts, self.lr_patch))
        hr_sl = tuple(
            slice(a * s, (a + q) * s) for a, q, s in zip(starts, self.lr_patch, self.scale)
        )
        lr, hr = pair.lr[(slice(None), *lr_sl)], pair.hr[(slice(None), *hr_sl)]
        if self.augment:
            for axis in range(1, lr.ndim):
                if self.rng.random() < 0.5:
                    lr, hr = np.flip(lr, axis), np.flip(hr, axis)
            if self.rot_planes:
                a, b = self.rot_planes[self.rng.integers(len(self.rot_planes))]
                k = int(self.rng.integers(4))
                lr, hr = np.rot90(lr, k, (a + 1, b + 1)), np.rot90(hr, k, (a + 1, b + 1))
        if self.planes:
            lr, hr = lr[..., 0], hr[..., 0]
        lr = np.ascontiguousarray(lr, dtype=np.float32)
        if self.noise_sigma > 0:
            lr = lr + self.rng.normal(0.0, self.noise_sigma, lr.shape).astype(np.float32)
        return lr, np.ascontiguousarray(hr, dtype=np.float32)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch ``(lr, hr)`` of ``size`` patches as tensors."""
        lrs, hrs = zip(*(self.sample() for _ in range(size)))
        return torch.from_numpy(np.stack(lrs)), torch.from_numpy(np.stack(hrs))


def image_reader(data: DataConfig) -> Reader:
    """The built-in reader for PNG/JPEG/TIFF images, honouring ``data.color``."""
    return lambda path: read_image(path, data.color)


@dataclass
class RunData:
    """A run's data: training and validation pairs, and the validation files."""

    train_pairs: list[Pair]
    val_pairs: list[Pair]
    val_files: list[Path]


def load_run_data(
    data: DataConfig,
    readers: Mapping[str, Reader],
    scale: Sequence[int],
    max_val_items: int = 0,
    with_validation: bool = True,
) -> RunData:
    """Reads and degrades a recipe's training and validation items.

    Args:
        data: the recipe's ``data`` section.
        readers: extra readers by name (``image`` is built in).
        scale: the model's factor per spatial axis.
        max_val_items: keep only the first this many validation files (0 = all).
        with_validation: read the validation items (only rank 0 validates).

    Raises:
        ConfigError: an unknown reader, or validation files that are also training files
            without disjoint ``train_region``/``val_region``.
    """
    all_readers = {"image": image_reader(data), **readers}
    if data.reader not in all_readers:
        raise ConfigError(
            f"data.reader: unknown reader {data.reader!r}; available: {', '.join(all_readers)}"
        )
    reader = all_readers[data.reader]
    suffixes = IMAGE_SUFFIXES if data.reader == "image" else ()
    train_files = expand_paths(data.train, data.root, suffixes)
    val_files = expand_paths(data.val, data.root, suffixes) if data.val else []
    if max_val_items:
        val_files = val_files[:max_val_items]
    overlap = sorted(set(map(str, train_files)) & set(map(str, val_files)))
    if overlap and not (
        data.train_region
        and data.val_region
        and regions_disjoint(data.train_region, data.val_region)
    ):
        raise ConfigError(
            f"validation files are also training files: {', '.join(overlap[:3])}"
            " (a spatial hold-out needs disjoint data.train_region and data.val_region)"
        )
    val_reader = region_reader(reader, data.val_region)
    reader = region_reader(reader, data.train_region)
    degradation = data.degradation
    if data.planes:
        train_pairs = plane_pairs(train_files, reader, scale, degradation)
        # held-out volumes: the last axis is the thick one, planes run along the first
        val_pairs = (
            plane_pairs(val_files, val_reader, scale, degradation, orders=[(2, 1, 0)])
            if with_validation
            else []
        )
    else:
        train_pairs = load_pairs(train_files, reader, scale, degradation, data.rescale)
        val_pairs = load_pairs(val_files, val_reader, scale, degradation) if with_validation else []
    if data.split_channels:
        train_pairs, val_pairs = split_channels(train_pairs), split_channels(val_pairs)
    return RunData(train_pairs, val_pairs, val_files)
