"""A tiny generated Sentinel-2 ``.SAFE``-like product (L1C or L2A) for ``geosr sharpen``.

Layout as ESA's (trimmed to what ``geosr.products`` reads): ``MTD_MSIL2A.xml`` (or
``MTD_MSIL1C.xml``) with the processing baseline, quantification value and per-band add
offsets, and ``GRANULE/<id>/IMG_DATA/`` with one lossless JPEG 2000 per band (L2A:
``R10m/``, ``R20m/``, ``R60m/`` and ``*_B05_20m.jp2`` names; L1C: ``*_B05.jp2``). The 10 m
bands are smooth textures; every 20 m and 60 m band is a known linear mix of them,
degraded with ``geosr.guided.degrade``, so its 10 m truth is known (``SafeScene.truth``).
DN = reflectance * 10000 - offset (offset -1000 from baseline 04.00 on, else 0).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from srkit.geosr.guided import degrade
from srkit.geosr.products import S2_BANDS, S2_RESOLUTION

from tests.data.geotiff import field

TILE = "T32TQM"
STAMP = "20230101T101010"
ORIGIN = (600000.0, 5100000.0)
MIX = {  # band -> weights of (B02, B03, B04, B08) and an intercept, in reflectance
    "B01": (0.9, 0.1, 0.0, 0.0, 0.01),
    "B05": (0.0, 0.1, 0.6, 0.3, 0.0),
    "B06": (0.0, 0.0, 0.3, 0.7, 0.01),
    "B07": (0.0, 0.0, 0.1, 0.9, 0.02),
    "B8A": (0.0, 0.0, 0.0, 1.0, 0.01),
    "B09": (0.0, 0.0, 0.0, 0.8, 0.0),
    "B10": (0.1, 0.0, 0.0, 0.0, 0.0),
    "B11": (0.0, 0.2, 0.5, 0.2, 0.03),
    "B12": (0.0, 0.1, 0.6, 0.0, 0.02),
}


@dataclass(frozen=True)
class SafeScene:
    """The product folder, its level and offset, and the 10 m truth of every band."""

    path: Path
    level: str
    offset: float
    truth: dict[str, np.ndarray]


def _metadata(level: str, baseline: str, offset: float) -> str:
    quant = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    offsets = (
        "".join(f'<{tag} band_id="{i}">{offset:g}</{tag}>' for i in range(len(S2_BANDS)))
        if baseline >= "04.00"
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:Level-{level[1:]}_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int">'
        f"<n1:General_Info><Product_Info><PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>"
        "<Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST>"
        f'<{quant} unit="none">10000</{quant}></QUANTIFICATION_VALUES_LIST>'
        f"<OFFSETS>{offsets}</OFFSETS></Product_Image_Characteristics>"
        f"</n1:General_Info></n1:Level-{level[1:]}_User_Product>\n"
    )


def make_safe(
    out_dir: Path, *, level: str = "L2A", baseline: str = "05.09", size: int = 72, seed: int = 0
) -> SafeScene:
    """Writes ``S2A_MSI<level>_..._.SAFE`` under ``out_dir`` (``size`` 10 m pixels a side,
    a multiple of 6); returns it with the truth."""
    offset = -1000.0 if baseline >= "04.00" else 0.0
    safe = Path(out_dir) / f"S2A_MSI{level}_{STAMP}_N0509_R022_{TILE}_{STAMP}.SAFE"
    images = safe / "GRANULE" / f"{level}_{TILE}_A039000_{STAMP}" / "IMG_DATA"
    safe.mkdir(parents=True)
    (safe / f"MTD_MSI{level}.xml").write_text(_metadata(level, baseline, offset))
    guides = 0.05 + 0.4 * field(np.random.default_rng(seed), 4, size, size)
    truth = dict(zip(("B02", "B03", "B04", "B08"), guides))
    for band, (*weights, intercept) in MIX.items():
        truth[band] = intercept + np.tensordot(np.array(weights), guides, axes=1)
    for band in S2_BANDS:
        if band == "B10" and level == "L2A":
            continue
        res = S2_RESOLUTION[band]
        ratio = res // 10
        values = truth[band][None].astype(np.float32)
        if ratio > 1:
            values = degrade(values, ratio)
        dn = np.clip(np.round(values * 10000 - offset), 1, 65535).astype(np.uint16)
        if level == "L2A":
            folder, name = images / f"R{res}m", f"{TILE}_{STAMP}_{band}_{res}m.jp2"
        else:
            folder, name = images, f"{TILE}_{STAMP}_{band}.jp2"
        folder.mkdir(parents=True, exist_ok=True)
        with rasterio.open(
            folder / name, "w", driver="JP2OpenJPEG", width=dn.shape[2], height=dn.shape[1],
            count=1, dtype="uint16", crs="EPSG:32632",
            transform=Affine.translation(*ORIGIN) @ Affine.scale(res, -res),
            QUALITY=100, REVERSIBLE="YES",
        ) as dst:  # fmt: skip
            dst.write(dn)
    return SafeScene(safe, level, offset, truth)


if __name__ == "__main__":
    make_safe(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
