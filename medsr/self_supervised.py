"""Self-supervised through-plane SR: the scan is its own training set (SMORE/ECLARE-style).

A thick-slice scan has fine in-plane axes. Degrading them with the scan's own slice
profile, at its own slice spacing, gives pairs (thick, fine) whose relation is the one
between the scan's slices and the thin slices we want. :func:`adapt` builds those pairs,
fine-tunes a 2D through-plane model on them within a time budget, and returns the model;
``medsr enhance`` then runs it on both through-plane orientations, averaged, as it runs the
shipped SMORE models (the geometry contract of ``enhance`` is unchanged).

The steps, each recorded in the returned model's card (``metrics["self_supervised"]``) and
so in the provenance sidecar:

1. **Profile.** :func:`medsr.slice_profile.estimate_profile`: a DICOM SliceThickness
   fixes the FWHM, else it is fitted to the scan's spectra; the kind is the modality's
   usual one (MRI Gaussian, CT box) unless ``profile`` gives it.
2. **Pairs.** Every in-plane slice is resampled (cubic B-spline) along one in-plane axis
   to the spacing the model outputs (``slice spacing / factor``; the in-plane spacing
   itself when the ratio is an integer), then degraded along that axis by the profile at
   the slice spacing (:func:`~medsr.slice_profile.profile_matrix`). Decimating after the
   blur keeps the aliasing of the real thick slices in the inputs, so the network learns
   to undo it together with the blur (SMORE's anti-aliasing concern). Both in-plane axes
   serve as the degraded one. A contiguous slab of slices (``HOLDOUT``) is held out.
3. **Fine-tuning.** From the shipped model for the factor when there is one (the default
   of ``medsr enhance``), else from scratch (an EDSR starting exactly at its bicubic
   skip). Adam with a cosine learning-rate decay over the budget, L1 loss (or MSE), random
   flips; the forward passes under bf16 autocast where the CPU runs it much faster (timed
   on the first batches: AMX), else fp32. Training stops at the budget, or early when the
   held-out PSNR has not improved for ``PATIENCE`` checks; the best held-out state is kept.
4. **Fallback.** When the adapted model does not beat the starting model on the held-out
   patches, the starting model is returned with a warning: adaptation never makes a
   result worse than the default on the scan's own evidence.

``budget=0`` returns the starting model untouched: ``medsr enhance --self-supervised
--budget 0`` is the plain default exactly.
"""

from __future__ import annotations

import copy
import math
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from srkit.common import __version__
from srkit.common.inference.invalid import fill_nearest
from srkit.common.models import load_model
from srkit.common.models.architectures import EDSR, SRModule
from srkit.common.models.card import ModelCard

from . import geometry
from .errors import MedsrError
from .intensity import detect_modality, normalization_for
from .io import Volume
from .plan import Plan, plan_enhance
from .slice_profile import SliceProfile, estimate_profile, parse_profile, profile_matrix

DEFAULT_BUDGET = "10m"
HOLDOUT = (0.42, 0.58)  # the held-out slab of in-plane slices, as fractions of the axis
PATIENCE = 8  # held-out checks without improvement before an early stop
MIN_GAIN_DB = 0.01  # the held-out gain below which the starting model is kept
PATCH = 64  # high-resolution patch side in fine pixels
VAL_PATCHES = 48
DEFAULT_KIND = {"mri": "gaussian", "ct": "box"}
# oneDNN's fast layout for these 2D convolutions on a CPU (1.7x the training steps per
# second of the contiguous one on an Intel Xeon, no consistent difference on an AVX2-only
# AMD EPYC; as common.training uses): the net and its batches
LAYOUT = torch.channels_last
# bf16 autocast for the training steps where the CPU runs it fast (oneDNN on AMX: 3x the
# steps per second of fp32 on this project's Intel Xeon): "auto" times both on the first
# batches and keeps bf16 when it is at least BF16_MIN_SPEEDUP faster; held-out checks and
# the returned model stay fp32. A CPU whose oneDNN has no bf16 kernels (AVX2 only, such as
# AMD Zen 3) emulates it about 10x slower than fp32: "auto" does not time it there, and a
# forced "bf16" warns
PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_SPEEDUP = 1.5
CALIBRATION_STEPS = 3  # timed steps per precision (after one warm-up each), all real steps
CALIBRATION_MIN_BUDGET = 20.0  # seconds; below it "auto" is fp32 (no time to compare)
SCRATCH = {"width": 48, "depth": 6, "res_scale": 1.0, "residual": True, "upsampler": "direct"}


def parse_budget(text: str | float | int | None) -> float:
    """``--budget``: ``10m``, ``90s``, ``1.5h`` or plain seconds (``0``: no adaptation)."""
    if text is None:
        text = DEFAULT_BUDGET
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text).lower())
        if not match:
            raise MedsrError(f"--budget must look like 10m, 90s, 1h or 600, got {text!r}")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not (math.isfinite(seconds) and seconds >= 0):
        raise MedsrError(f"--budget must be >= 0, got {text!r}")
    return seconds


@dataclass
class _Pairs:
    """Training and held-out planes: lists of (lr, hr) 2D float32 arrays, scaled axis first."""

    train: list[tuple[np.ndarray, np.ndarray]]
    val: list[tuple[np.ndarray, np.ndarray]]


def _thick_axis(plan: Plan) -> int:
    scaled = [a for a in range(3) if plan.axis_scale[a] > 1]
    if len(scaled) != 1:
        raise MedsrError(
            "self-supervised SR refines one thick axis; this plan scales"
            f" {len(scaled)} axes ({plan.reason}); an isotropic volume has no thin axes"
            " to learn a thick one from"
        )
    return scaled[0]


def _resample_axis(plane: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """Cubic B-spline resampling of one axis by ``factor`` (edges kept)."""
    from scipy.ndimage import zoom

    if abs(factor - 1) < 1e-3:
        return plane
    zooms = [1.0, 1.0]
    zooms[axis] = factor
    return zoom(plane, zooms, order=3, mode="reflect", grid_mode=True).astype(np.float32)


def build_pairs(
    x: np.ndarray, thick: int, spacing: Sequence[float], factor: int, profile: SliceProfile
) -> _Pairs:
    """Training pairs from the in-plane slices of a normalized volume (see the module doc)."""
    spacing = [float(s) for s in spacing]
    hr_mm = spacing[thick] / factor
    planes = np.moveaxis(x, thick, 0)
    fine_axes = [a for a in range(3) if a != thick]
    n = planes.shape[0]
    lo, hi = (
        int(round(HOLDOUT[0] * n)),
        max(int(round(HOLDOUT[1] * n)), int(round(HOLDOUT[0] * n)) + 1),
    )
    pairs = _Pairs([], [])
    for which, axis in enumerate(fine_axes):
        step_factor = spacing[axis] / hr_mm  # fine pixels -> model output pixels
        matrix = None
        for k in range(n):
            plane = planes[k] if which == 0 else planes[k].T  # the degraded axis first
            hr = _resample_axis(np.ascontiguousarray(plane, dtype=np.float32), 0, step_factor)
            hr = hr[: hr.shape[0] // factor * factor]
            if hr.shape[0] < factor * 4:
                continue
            if matrix is None or matrix.shape[1] != hr.shape[0]:
                matrix = profile_matrix(hr.shape[0], factor, profile.fwhm_mm / hr_mm, profile.kind)
                matrix = matrix.astype(np.float32)
            lr = matrix @ hr
            (pairs.val if lo <= k < hi else pairs.train).append((lr, hr))
    if not pairs.train or not pairs.val:
        raise MedsrError(f"only {n} in-plane slices: too few to learn from")
    return pairs


class _Sampler:
    """Random aligned patches from the foreground of the pairs (flips as augmentation)."""

    def __init__(
        self, pairs, factor: int, rng: np.random.Generator, level: float, patch: int = PATCH
    ):
        self.pairs, self.factor, self.rng = pairs, factor, rng
        shapes = np.array([hr.shape for _, hr in pairs])
        self.hr_h = min(patch // factor * factor, int(shapes[:, 0].min()) // factor * factor)
        self.hr_w = min(patch, int(shapes[:, 1].min()))
        self.level = level
        weight = np.array([max(float((hr > level).mean()), 1e-3) for _, hr in pairs])
        self.weight = weight / weight.sum()

    def patch(self, flips: bool = True) -> tuple[np.ndarray, np.ndarray]:
        f = self.factor
        for _ in range(20):
            lr, hr = self.pairs[self.rng.choice(len(self.pairs), p=self.weight)]
            i = int(self.rng.integers(0, (hr.shape[0] - self.hr_h) // f + 1)) * f
            j = int(self.rng.integers(0, hr.shape[1] - self.hr_w + 1))
            h = hr[i : i + self.hr_h, j : j + self.hr_w]
            if (h > self.level).mean() >= 0.3:
                break
        low = lr[i // f : (i + self.hr_h) // f, j : j + self.hr_w]
        if flips:
            if self.rng.random() < 0.5:
                low, h = low[::-1], h[::-1]
            if self.rng.random() < 0.5:
                low, h = low[:, ::-1], h[:, ::-1]
        return np.ascontiguousarray(low), np.ascontiguousarray(h)

    def batch(self, size: int, flips: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        lows, highs = zip(*(self.patch(flips) for _ in range(size)))
        low = torch.from_numpy(np.stack(lows)[:, None]).contiguous(memory_format=LAYOUT)
        return low, torch.from_numpy(np.stack(highs)[:, None])


def _psnr(net: SRModule, val: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Held-out PSNR (dB, peak 1) of ``net`` on fixed patches."""
    with torch.no_grad():
        pred = net(val[0])
    mse = float(torch.mean((pred - val[1]) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _starting_model(kind: str, axis_scale: Sequence[int], model: Any) -> tuple[SRModule, str]:
    """The model to adapt: ``model`` if given, else the shipped default, else a new EDSR."""
    from .methods import default_model

    if model is not None:
        net = load_model(model)
        if net.dims != 2 or getattr(net, "flexible_scale", False):
            raise MedsrError(
                f"self-supervised SR adapts a 2D through-plane model; {model!r} is not one"
            )
        return net, f"given ({model})"
    factor = max(axis_scale)
    choice = default_model(kind, axis_scale)
    if not choice.fallback:
        return load_model(choice.spec), f"shipped {choice.spec}"
    net = EDSR(dims=2, channels=1, scale=(factor, 1), **SCRATCH)
    torch.nn.init.zeros_(net.upsampler.weight)  # starts as its bicubic skip, exactly
    torch.nn.init.zeros_(net.upsampler.bias)
    net.card = ModelCard(
        name=f"{kind}_selfsup_x{factor}",
        domain=kind,
        scale=factor,
        channels=1,
        dims=2,
        architecture=net.arch_name,
        hparams=net.hparams,
        axis_scale=(factor, 1),
        receptive_field=2 * max(net.receptive_radius) + 1,
        n_parameters=net.n_parameters,
        description="",
        license="Apache-2.0",
        version=__version__,
    )
    return net.eval(), f"new EDSR (no shipped {kind} model for x{factor})"


def _step(net, optimizer, criterion, low, high, bf16: bool) -> float:
    """One training step (bf16 autocast for the forward pass when ``bf16``); its loss."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        pred = net(low)
    value = criterion(pred.float(), high)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return value.item()


def cpu_bf16_kernels() -> bool:
    """Whether oneDNN has bf16 convolution kernels on this CPU (AVX-512 or newer).

    Without them (AVX2-only CPUs) bf16 autocast is emulated and runs about 10x slower than
    fp32. Assumed present when this torch cannot tell.
    """
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return True


def _choose_precision(net, optimizer, criterion, sampler, batch_size: int) -> tuple[bool, dict]:
    """Times fp32 and bf16 steps on real batches (they train too); bf16 if it is faster.

    bf16 is not timed where the CPU has no bf16 kernels (:func:`cpu_bf16_kernels`).
    Returns whether to use bf16 and a record: steps taken, the step rates and
    ``bf16_kernels``.
    """
    rates, steps = {}, 0
    native = cpu_bf16_kernels()
    for bf16 in (False, True) if native else (False,):
        _step(net, optimizer, criterion, *sampler.batch(batch_size), bf16)  # warm-up
        times = []
        for _ in range(CALIBRATION_STEPS):
            t = time.perf_counter()
            _step(net, optimizer, criterion, *sampler.batch(batch_size), bf16)
            times.append(time.perf_counter() - t)
            if bf16 and times[-1] * rates["fp32"] > 1:  # slower than fp32 (emulated bf16)
                break
        steps += 1 + len(times)
        rates["bf16" if bf16 else "fp32"] = 1.0 / float(np.median(times))
    use = native and rates["bf16"] >= BF16_MIN_SPEEDUP * rates["fp32"]
    record = {
        "steps_per_s": {k: round(v, 2) for k, v in rates.items()},
        "calibration_steps": steps,
        "bf16_kernels": native,
    }
    return use, record


def header_thickness(volume: Volume) -> float | None:
    """The DICOM SliceThickness in mm, when the volume came from DICOM and has one."""
    datasets = getattr(volume.meta, "datasets", None)
    if not datasets:
        return None
    value = datasets[0].get("SliceThickness")
    try:
        thickness = float(value)
    except (TypeError, ValueError):
        return None
    return thickness if math.isfinite(thickness) and thickness > 0 else None


def adapt(
    volume: Volume,
    plan: Plan | None = None,
    *,
    budget: str | float = DEFAULT_BUDGET,
    profile: str | None = "auto",
    model: Any = None,
    modality: str = "auto",
    loss: str = "l1",
    batch_size: int = 16,
    patch_size: int = PATCH,
    learning_rate: float | None = None,
    precision: str = "auto",
    seed: int = 0,
    source_sha256: str | None = None,
    progress: bool = False,
) -> SRModule:
    """A 2D through-plane model adapted to ``volume`` (see the module docstring).

    Args:
        volume: the thick-slice scan (physical units; NaN allowed).
        plan: what ``enhance`` will do (default: :func:`medsr.plan.plan_enhance`); it must
            scale exactly one axis (the thick one).
        budget: wall time for the whole adaptation (``"10m"``, ``"90s"``, seconds); ``0``
            returns the starting model unchanged.
        profile: ``"auto"``, ``"gaussian"``, ``"box"``, a FWHM in mm, or ``KIND:FWHM``.
        model: the model to start from (default: the shipped one for the factor).
        modality: ``"auto"``, ``"mri"`` or ``"ct"`` (as ``medsr enhance``).
        loss: ``"l1"`` or ``"mse"``.
        patch_size: the side of the high-resolution training patches, in output pixels.
        precision: the training steps' arithmetic: ``"fp32"``, ``"bf16"`` (autocast; the
            weights, the held-out checks and the returned model stay fp32) or ``"auto"``
            (bf16 where the CPU runs it at least 1.5x faster than fp32, timed on the first
            batches: CPUs with AMX; budgets under 20 s, and CPUs without bf16 kernels
            (AVX2 only), stay fp32 without timing bf16).
        source_sha256: the input's hash, recorded in the card.

    Returns:
        the model, in eval mode, with a card whose ``metrics["self_supervised"]`` holds the
        profile, steps, patches, seconds and held-out PSNRs (and ``fallback``).
    """
    start = time.perf_counter()
    seconds = parse_budget(budget)
    if loss not in ("l1", "mse"):
        raise MedsrError(f"loss must be l1 or mse, got {loss!r}")
    if patch_size < 8:
        raise MedsrError(f"patch_size must be at least 8, got {patch_size}")
    if precision not in PRECISIONS:
        raise MedsrError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if plan is None:
        plan = plan_enhance(volume.shape, volume.affine)
    thick = _thick_axis(plan)
    factor = plan.axis_scale[thick]
    kind = detect_modality(volume.data, volume.modality) if modality == "auto" else modality
    net, origin = _starting_model(kind, plan.axis_scale, model)
    if not net.serves((factor, 1), dims=2):
        raise MedsrError(f"the model to adapt has scale {tuple(net.scale)}, not ({factor}, 1)")
    net = net.at_scale((factor, 1), dims=2)
    record: dict[str, Any] = {"budget_s": seconds, "start": origin, "factor": factor}
    if seconds == 0:
        record.update(steps=0, seconds=0.0, fallback=False, reason="budget 0: not adapted")
        return _with_record(net, record, adapted=False)
    spacing = geometry.voxel_sizes(volume.affine)
    norm = normalization_for(volume.data, kind)
    x = norm.forward(fill_nearest(volume.data, ~np.isfinite(volume.data)))
    given_kind, given_fwhm = parse_profile(profile)
    prof = estimate_profile(
        x,
        thick,
        spacing,
        kind=given_kind or DEFAULT_KIND[kind],
        fwhm_mm=given_fwhm,
        header_thickness=header_thickness(volume),
    )
    record["pair_spacing_mm"] = round(float(spacing[thick]) / factor, 4)
    record["profile"] = {
        **prof.to_dict(),
        "kind_from": "given" if given_kind else f"{kind} default",
    }
    pairs = build_pairs(x, thick, spacing, factor, prof)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    level = 0.1 * float(np.percentile(x, 99))
    sampler = _Sampler(pairs.train, factor, rng, level, patch_size)
    net = net.to(memory_format=LAYOUT)
    val = _Sampler(pairs.val, factor, np.random.default_rng(seed + 1), level, patch_size).batch(
        VAL_PATCHES, flips=False
    )
    start_psnr = _psnr(net, val)
    record.update(
        profile_seconds=round(time.perf_counter() - start, 2),
        train_planes=len(pairs.train),
        holdout_planes=len(pairs.val),
        holdout_psnr_start=round(start_psnr, 4),
    )
    best, best_psnr, steps, checks_since = copy.deepcopy(net.state_dict()), start_psnr, 0, 0
    fresh = origin.startswith("new")
    lr0 = learning_rate or (5e-4 if fresh else 3e-4)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr0)
    criterion = torch.nn.L1Loss() if loss == "l1" else torch.nn.MSELoss()
    check_every = max(2.0, seconds / 40)
    bar = _progress(seconds, progress)
    stopped = "budget"
    net.train()
    bf16 = precision == "bf16"
    if bf16 and not cpu_bf16_kernels():
        warnings.warn(
            "precision bf16: this CPU has no bf16 kernels (AVX2 only), so bf16 is emulated"
            " and the training steps run about 10x slower than fp32; use fp32 or auto",
            stacklevel=2,
        )
    if precision == "auto" and seconds >= CALIBRATION_MIN_BUDGET:
        bf16, timing = _choose_precision(net, optimizer, criterion, sampler, batch_size)
        steps += timing["calibration_steps"]
        record["precision_timing"] = timing
    record["precision"] = "bf16 autocast" if bf16 else "fp32"
    last_check = time.perf_counter()
    step_time = eval_time = 0.0
    running = None
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if elapsed + 1.5 * step_time + eval_time >= seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / seconds)))
        loss_value = _step(net, optimizer, criterion, *sampler.batch(batch_size), bf16)
        steps += 1
        step_time = time.perf_counter() - now
        running = loss_value if running is None else 0.95 * running + 0.05 * loss_value
        if time.perf_counter() - last_check >= check_every:
            t = time.perf_counter()
            net.eval()
            current = _psnr(net, val)
            net.train()
            if current > best_psnr + 1e-3:
                best, best_psnr, checks_since = copy.deepcopy(net.state_dict()), current, 0
            else:
                checks_since += 1
            eval_time = time.perf_counter() - t
            last_check = time.perf_counter()
            if bar is not None:
                bar.set_postfix(loss=f"{running:.4f}", holdout=f"{best_psnr:.2f} dB")
            if checks_since >= PATIENCE:
                stopped = "early (held-out PSNR stopped improving)"
                break
        if bar is not None:
            bar.n = min(round(time.perf_counter() - start, 1), seconds)
            bar.refresh()
    if bar is not None:
        bar.close()
    net.eval()
    final = _psnr(net, val)
    if final > best_psnr:
        best, best_psnr = copy.deepcopy(net.state_dict()), final
    fallback = best_psnr < start_psnr + MIN_GAIN_DB
    record.update(
        steps=steps,
        patches=steps * batch_size,
        stopped=stopped,
        holdout_psnr_adapted=round(best_psnr, 4),
        holdout_gain_db=round(best_psnr - start_psnr, 4),
        fallback=fallback,
        loss=loss,
        patch_size=patch_size,
        learning_rate=lr0,
    )
    if fallback:
        start_net, _ = _starting_model(kind, plan.axis_scale, model)
        net = start_net.at_scale((factor, 1), dims=2)
        warnings.warn(
            f"self-supervised adaptation did not beat {origin} on the scan's held-out"
            f" slices ({best_psnr:.2f} vs {start_psnr:.2f} dB); using it unchanged",
            stacklevel=2,
        )
    else:
        net.load_state_dict(best)
        net = net.to(memory_format=torch.contiguous_format)  # safetensors saves contiguous
    record["seconds"] = round(time.perf_counter() - start, 2)
    if source_sha256:
        record["source_sha256"] = source_sha256
    return _with_record(net.eval(), record, adapted=not fallback)


def _with_record(net: SRModule, record: dict[str, Any], adapted: bool) -> SRModule:
    """``net`` with a card that carries ``record`` (renamed ``<name>_selfsup`` if adapted)."""
    card = net.card
    metrics = {**dict(card.metrics), "self_supervised": record} if adapted else dict(card.metrics)
    changes: dict[str, Any] = {"metrics": metrics}
    if adapted:
        base = card.name.removesuffix("_selfsup")
        changes.update(
            name=f"{base}_selfsup",
            description=(
                f"{card.description} Adapted to one scan by medsr self-supervised SR"
                f" (profile {record['profile']['kind']}, FWHM"
                f" {record['profile']['fwhm_mm']} mm; {record['steps']} steps)."
            ).strip(),
            training_data=(
                *card.training_data,
                f"self-supervised on the scan itself (sha256 {record.get('source_sha256', '?')})",
            ),
            version=__version__,
        )
    net.card = card.replace(**changes)
    net.adaptation = record  # what the provenance sidecar records, fallback included
    return net


def _progress(seconds: float, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=seconds,
        unit="s",
        desc="self-supervised",
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s, ETA {remaining}{postfix}",
    )
