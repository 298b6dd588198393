"""The slice profile of a thick-slice scan: a model of it, and its estimate from the scan.

A thick slice is the object averaged along the slice axis under a *slice profile*: a box
(ideal slice selection, CT reconstruction) or a Gaussian-like bump (real MRI slice
selection), of full width at half maximum ``fwhm_mm``. Slices sit ``spacing_mm`` apart; a
FWHM below the spacing is a gap, above it an overlap.

:func:`estimate_profile` finds the profile from the scan alone, by the idea behind SMORE
and ECLARE: the object looks statistically the same along every axis. Take a plane that
holds the thick axis and one fine in-plane axis. Along the thick axis it is blurred by the
true profile and sampled at the slice spacing; degrade the fine axis with a candidate
profile and sample it at the slice spacing too. With the right candidate both axes of the
plane have gone through the same blur and sampling, so (by isotropy) its power spectrum
along the fine axis equals its spectrum along the thick one; the estimate is the
candidate whose two mean periodograms (over planes drawn evenly through the volume, both
in-plane axes) match best in log power. Each side carries the other's blur, so no
correction for the in-plane lines being averaged through the slice is needed.

What it measures well, and what not (generated isotropic volumes, tests/medsr; held-out
brain MRI, benchmarks/medsr_selfsup.py): the width is found within 10 % when the kind is
known; the *kind* is not identifiable from one scan (a box and a Gaussian of matched
spectra below the slice Nyquist frequency fit almost equally well), so
:mod:`medsr.self_supervised` takes the kind from the modality unless ``--profile`` gives
it. It measures the scan's *effective* through-plane blur: a reference volume that is
itself blurrier along one axis adds to it. Noise is assumed well below the signal at the
slice Nyquist frequency (noise added after the slice selection is white along the thick
axis but blurred along the degraded one), which biases the FWHM low on very noisy scans.
A DICOM SliceThickness, when given, fixes the FWHM.

:func:`profile_matrix` is the degradation itself, on a fine grid and with any (also
non-integer) step; :mod:`medsr.self_supervised` builds its training pairs with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr

from .errors import MedsrError

KINDS = ("gaussian", "box")
# candidate FWHMs, as fractions of the slice spacing (gap of 70 % ... overlap of 60 %)
FWHM_RANGE = (0.3, 1.6)
FWHM_STEPS = 27  # candidates per kind: a coarse grid, then a fine one about its best
FWHM_COARSE = 14
THIRD_SAMPLES = 48  # planes drawn (evenly) along the axis normal to each plane pair
MIN_SLICES = 8  # fewer through-plane samples give no usable spectrum


@dataclass(frozen=True)
class SliceProfile:
    """A slice profile along the thick axis.

    Attributes:
        kind: ``"gaussian"`` or ``"box"``.
        fwhm_mm: full width at half maximum (the box's width), in mm.
        spacing_mm: distance between slice centres, in mm.
        source: ``"given"`` (``--profile``), ``"header"`` (DICOM SliceThickness, kind
            fitted) or ``"estimated"`` (kind and FWHM fitted to the scan).
        fit: what the estimate saw: the residual of the best candidate per kind, the noise
            floor and how many lines were used (empty when given).
    """

    kind: str
    fwhm_mm: float
    spacing_mm: float
    source: str
    fit: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MedsrError(f"slice profile must be gaussian or box, got {self.kind!r}")
        if not (math.isfinite(self.fwhm_mm) and self.fwhm_mm > 0):
            raise MedsrError(f"slice profile FWHM must be > 0 mm, got {self.fwhm_mm}")

    @property
    def gap_mm(self) -> float:
        """Slice spacing minus FWHM: > 0 a gap, < 0 an overlap."""
        return self.spacing_mm - self.fwhm_mm

    def describe(self) -> str:
        """One line, e.g. ``box, FWHM 3.2 mm at 4 mm spacing (gap 0.8 mm), estimated``."""
        gap = self.gap_mm
        rel = (
            f"gap {gap:.2g} mm"
            if gap > 0.005 * self.spacing_mm
            else f"overlap {-gap:.2g} mm"
            if gap < -0.005 * self.spacing_mm
            else "contiguous"
        )
        return (
            f"{self.kind}, FWHM {self.fwhm_mm:.3g} mm at {self.spacing_mm:.3g} mm spacing"
            f" ({rel}), {self.source}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the provenance sidecar and model cards."""
        return {
            "kind": self.kind,
            "fwhm_mm": round(float(self.fwhm_mm), 4),
            "spacing_mm": round(float(self.spacing_mm), 4),
            "gap_mm": round(float(self.gap_mm), 4),
            "source": self.source,
            "fit": self.fit,
        }


def parse_profile(text: str | None) -> tuple[str | None, float | None]:
    """``--profile``: ``auto`` -> (None, None); ``gaussian``/``box`` -> (kind, None);
    ``FWHM_MM`` -> (None, fwhm) (kind fitted); ``gaussian:3.2``/``box:3.2`` -> both."""
    if text is None or str(text).strip().lower() in ("", "auto"):
        return None, None
    value = str(text).strip().lower()
    kind, _, number = value.partition(":") if ":" in value else ("", "", value)
    if not kind and value in KINDS:
        return value, None
    if kind and kind not in KINDS:
        raise MedsrError(f"--profile: unknown kind {kind!r}; use gaussian or box")
    try:
        fwhm = float(number)
    except ValueError:
        raise MedsrError(
            f"--profile must be auto, gaussian, box, a FWHM in mm or KIND:FWHM, got {text!r}"
        ) from None
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise MedsrError(f"--profile: the FWHM must be > 0 mm, got {number!r}")
    return (kind or None), fwhm


def profile_weights(offsets: np.ndarray, fwhm: float, kind: str) -> np.ndarray:
    """Weight of fine samples at ``offsets`` (fine pixels from the slice centre).

    Each fine sample stands for the interval ``offset +- 0.5``; its weight is the profile's
    integral over that interval (exact for a box; the Gaussian through its CDF), so a
    profile narrower than one fine pixel still gives a valid, normalized kernel.
    """
    lo, hi = offsets - 0.5, offsets + 0.5
    if kind == "box":
        weights = np.clip(np.minimum(hi, fwhm / 2) - np.maximum(lo, -fwhm / 2), 0, None)
    elif kind == "gaussian":
        sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
        weights = ndtr(hi / sigma) - ndtr(lo / sigma)
    else:
        raise MedsrError(f"slice profile must be gaussian or box, got {kind!r}")
    return weights


def profile_matrix(n_fine: int, step: float, fwhm: float, kind: str) -> np.ndarray:
    """The dense ``(n_coarse, n_fine)`` thick-slice operator on a fine grid.

    Coarse sample ``k`` covers fine pixels ``[k step, (k + 1) step)`` (edges kept, as
    ``medsr simulate`` and :func:`common.degradation.thick_slice`), centred at
    ``k step + (step - 1) / 2``; ``step`` may be non-integer. ``fwhm`` is in fine pixels.
    Rows are normalized; the boundary is half-sample symmetric (mirrored weights fold back).
    """
    if step < 1:
        raise MedsrError(f"the slice step must be >= 1 fine pixel, got {step}")
    n_coarse = int(math.floor(n_fine / step + 1e-9))
    if n_coarse < 1:
        raise MedsrError(f"{n_fine} fine pixels hold no slice of {step:.3g} pixels")
    centres = np.arange(n_coarse) * step + (step - 1) / 2
    positions = np.arange(n_fine)
    # mirror images of the fine grid (half-sample symmetric): -1-i and 2n-1-i
    matrix = np.zeros((n_coarse, n_fine))
    for image in (positions, -1 - positions, 2 * n_fine - 1 - positions):
        matrix += profile_weights(image[None, :] - centres[:, None], fwhm, kind)
    return matrix / matrix.sum(axis=1, keepdims=True)


def _periodogram(lines: np.ndarray) -> np.ndarray:
    """Mean periodogram of rows (mean removed, Hann window), frequencies 1 .. n // 2."""
    window = np.hanning(lines.shape[1] + 2)[1:-1]
    centred = lines - lines.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(centred * window, axis=1)) ** 2
    return power.mean(axis=0)[1:]


def _foreground_box(x: np.ndarray) -> tuple[slice, ...]:
    """The bounding box of voxels above 10 % of the 99th percentile (all of x if none)."""
    inside = x > 0.1 * np.percentile(x, 99)
    if not inside.any():
        return tuple(slice(None) for _ in x.shape)
    box = []
    for axis in range(x.ndim):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(x.ndim) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _misfit(simulated: np.ndarray, observed: np.ndarray) -> float:
    """RMS difference of log power, frequency bins weighted alike."""
    tiny = 1e-30
    return float(np.sqrt(np.mean((np.log(observed + tiny) - np.log(simulated + tiny)) ** 2)))


def _centre(n: int, length: int) -> slice:
    start = (n - length) // 2
    return slice(start, start + length)


def _asymmetry(planes: np.ndarray, matrix: np.ndarray) -> float:
    """How far ``planes`` (third, fine, thick), degraded along the fine axis by
    ``matrix``, are from having the same spectrum along both axes (see the module doc)."""
    degraded = np.matmul(matrix, planes)  # (third, coarse, thick)
    length = min(degraded.shape[1], degraded.shape[2])
    square = degraded[:, _centre(degraded.shape[1], length), _centre(degraded.shape[2], length)]
    along_fine = _periodogram(np.swapaxes(square, 1, 2).reshape(-1, length))
    along_thick = _periodogram(square.reshape(-1, length))
    return _misfit(along_fine, along_thick)


def estimate_profile(
    x: np.ndarray,
    thick_axis: int,
    spacing: Sequence[float],
    *,
    kind: str | None = None,
    fwhm_mm: float | None = None,
    header_thickness: float | None = None,
) -> SliceProfile:
    """The slice profile along ``thick_axis`` of ``x`` (a normalized ``(X, Y, Z)`` array).

    Args:
        spacing: voxel sizes in mm; the thick axis's is the slice spacing.
        kind, fwhm_mm: fix either or both (``--profile``); both given: nothing is fitted.
        header_thickness: a DICOM SliceThickness in mm: fixes the FWHM (unless
            ``fwhm_mm`` does), and only the kind is fitted.

    Raises:
        MedsrError: too few slices (< :data:`MIN_SLICES`) to estimate anything; give
            ``--profile`` then.
    """
    spacing = [float(s) for s in spacing]
    slice_mm = spacing[thick_axis]
    if kind is not None and fwhm_mm is not None:
        return SliceProfile(kind, float(fwhm_mm), slice_mm, "given")
    source = "given" if fwhm_mm is not None else "estimated"
    if fwhm_mm is None and header_thickness is not None and header_thickness > 0:
        fwhm_mm, source = float(header_thickness), "header"
    n_slices = x.shape[thick_axis]
    if n_slices < MIN_SLICES:
        if fwhm_mm is not None:  # the kind cannot be fitted: a Gaussian is the usual MRI one
            return SliceProfile(kind or "gaussian", fwhm_mm, slice_mm, source)
        raise MedsrError(
            f"only {n_slices} slices: too few to estimate the slice profile; give"
            " --profile KIND:FWHM_MM"
        )
    x = np.asarray(x, dtype=np.float32)[_foreground_box(np.asarray(x))]
    n_slices = x.shape[thick_axis]
    setups = []  # per in-plane axis: (planes (third, fine, thick), slice step, fine mm)
    for axis in (a for a in range(3) if a != thick_axis):
        step = slice_mm / spacing[axis]
        if math.floor(x.shape[axis] / step + 1e-9) < MIN_SLICES:
            continue
        third = 3 - thick_axis - axis
        keep = np.unique(np.linspace(0, x.shape[third] - 1, min(THIRD_SAMPLES, x.shape[third])))
        planes = np.take(x, keep.round().astype(int), axis=third)
        planes = np.moveaxis(planes, (third, axis, thick_axis), (0, 1, 2)).astype(np.float64)
        setups.append((np.ascontiguousarray(planes), step, spacing[axis]))
    if not setups:
        raise MedsrError("the in-plane axes are too short to estimate the slice profile")
    kinds = [kind] if kind is not None else list(KINDS)
    results: dict[tuple[str, float], float] = {}

    def misfit(k: str, f: float) -> float:
        if (k, f) not in results:
            results[(k, f)] = float(
                np.mean(
                    [
                        _asymmetry(planes, profile_matrix(planes.shape[1], step, f / mm, k))
                        for planes, step, mm in setups
                    ]
                )
            )
        return results[(k, f)]

    for k in kinds:
        if fwhm_mm is not None:
            misfit(k, float(fwhm_mm))
            continue
        # a coarse grid, then a fine one around its best: FWHM_STEPS candidates in all
        coarse = np.linspace(*FWHM_RANGE, FWHM_COARSE) * slice_mm
        best = min(coarse, key=lambda f: misfit(k, float(f)))
        step = coarse[1] - coarse[0]
        for f in np.linspace(best - step, best + step, FWHM_STEPS - FWHM_COARSE):
            if f > 0:
                misfit(k, float(f))
    best_score = min(results.values())
    # ties: on the fine grid, profiles narrower than its pixels can be identical; take
    # the one nearest a contiguous slice (FWHM = spacing)
    near = [key for key, v in results.items() if v <= best_score * (1 + 1e-3) + 1e-9]
    best_kind, best_fwhm = min(near, key=lambda key: abs(key[1] - slice_mm))
    per_kind = {k: round(min(v for (kk, _), v in results.items() if kk == k), 5) for k in kinds}
    fit = {
        "misfit": round(best_score, 5),
        "misfit_per_kind": per_kind,
        "planes": int(sum(len(planes) for planes, _, _ in setups)),
    }
    return SliceProfile(best_kind, best_fwhm, slice_mm, source, fit)
