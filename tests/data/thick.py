"""Generated thick-slice volumes with a known slice profile, for self-supervised SR tests.

The object is an isotropic random texture (a Gaussian random field with a smooth isotropic
power spectrum, segmented into tissue-like classes with soft edges), so every axis has the
same statistics: what self-supervision from in-plane slices assumes. ``thick_volume``
degrades it along z with ``common.degradation.thick_slice``.
"""

from __future__ import annotations

import numpy as np
from srkit.common.degradation import thick_slice


def isotropic_texture(n: int = 96, seed: int = 0, k0: float = 0.12) -> np.ndarray:
    """A float32 ``(n, n, n)`` isotropic texture in [0, 1] (periodic, no background)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(n)
    radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    spectrum = 1.0 / (1.0 + (radius / k0) ** 2) ** 1.5
    field = np.real(np.fft.ifftn(np.fft.fftn(rng.standard_normal((n, n, n))) * spectrum))
    field = (field - field.mean()) / field.std()
    # tissue-like classes with soft edges, plus some of the field as texture
    classes = 1.0 / (1.0 + np.exp(-4.0 * (field - 0.3))) + 0.6 / (
        1.0 + np.exp(-4.0 * (field + 0.7))
    )
    values = 0.15 + 0.5 * classes + 0.05 * field
    return (values / values.max()).astype(np.float32)


def thick_volume(
    hr: np.ndarray, factor: int, profile: str, fwhm: float | None = None, spacing: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``hr`` thick-sliced along z with a profile of ``fwhm`` HR voxels (default: factor).

    ``"box"`` (FWHM <= factor, a gap when below) goes through
    ``common.degradation.thick_slice``; ``"gaussian"`` (any FWHM, overlaps too) is blurred
    with ``scipy.ndimage.gaussian_filter1d`` and sampled at the slice centres by linear
    interpolation, independently of the code under test. The affine keeps the edges of the
    HR grid (voxel ``k`` covers HR slices ``[k f, (k + 1) f)``), with ``spacing`` mm
    in-plane and ``factor * spacing`` mm slices. Returns (float32 data, affine).
    """
    from scipy.ndimage import gaussian_filter1d

    fwhm = float(factor if fwhm is None else fwhm)
    if profile == "box":
        data = thick_slice(hr, factor, 2, profile="box", gap=factor - fwhm)
    else:
        sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
        blurred = gaussian_filter1d(hr.astype(np.float64), sigma, axis=2, mode="reflect")
        centres = np.arange(hr.shape[2] // factor) * factor + (factor - 1) / 2
        low, frac = np.floor(centres).astype(int), centres % 1
        high = np.minimum(low + 1, hr.shape[2] - 1)
        data = blurred[..., low] * (1 - frac) + blurred[..., high] * frac
    affine = np.diag([spacing, spacing, factor * spacing, 1.0])
    affine[2, 3] = (factor - 1) / 2 * spacing
    return data.astype(np.float32), affine
