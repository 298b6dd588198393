"""Multi-resolution products that ``geosr sharpen`` understands as one argument.

- **Sentinel-2 ``.SAFE``** (L1C or L2A): the 10 m bands B02, B03, B04, B08 are the guides;
  the 20 m bands (B05, B06, B07, B8A, B11, B12) and the 60 m bands (B01, B09, and B10 for
  L1C; L2A has no B10) are sharpened to 10 m. Digital numbers become reflectance as
  ``(DN + offset) / quantification``: the offsets (``BOA_ADD_OFFSET`` for L2A,
  ``RADIO_ADD_OFFSET`` for L1C, -1000 from processing baseline 04.00 on, 0 before) and
  the quantification value (10000) are read from ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``.
  DN 0 is no data. The output keeps uint16 DNs, with GDAL scale/offset tags that give
  reflectance.
- **Landsat collection folder** (``*_B1.TIF`` ... ``*_B8.TIF``): the pan (B8, 15 m) is the
  guide of the 30 m reflective bands (B1-B7, and B9 when present). Landsat's pan and MS
  grids are centre-aligned, half a pan pixel apart: the pan is read through a cubic
  ``WarpedVRT`` onto the grid that nests in the MS grid (noted in the result). DN 0 is
  no data.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GeosrError

S2_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
S2_GUIDES = ("B02", "B03", "B04", "B08")
S2_COARSE = ("B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09", "B10")
S2_RESOLUTION = {
    **dict.fromkeys(("B02", "B03", "B04", "B08"), 10),
    **dict.fromkeys(("B05", "B06", "B07", "B8A", "B11", "B12"), 20),
    **dict.fromkeys(("B01", "B09", "B10"), 60),
}
LANDSAT_COARSE = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9")
RASTER_SUFFIXES = (".jp2", ".tif", ".tiff")


@dataclass
class Product:
    """What a product argument expands to.

    Attributes:
        kind: ``"sentinel2-l1c"``, ``"sentinel2-l2a"`` or ``"landsat"``.
        coarse: coarse files in output order; ``guides``: the guide files.
        physical: per file, GDAL-style ``(scale, offset)`` giving reflectance
            (``physical = DN * scale + offset``).
        nodata: the DN that marks no data in every file.
        snap_guides: resample the guides onto the grid nesting in the first coarse file.
        names: output band description per coarse file (``B05``...).
        notes: what was decided (skipped bands, offsets).
    """

    kind: str
    coarse: list[Path]
    guides: list[Path]
    physical: dict[Path, tuple[float, float]] = field(default_factory=dict)
    nodata: float | None = 0
    snap_guides: bool = False
    names: dict[Path, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _s2_metadata(safe: Path) -> tuple[str, Path]:
    for level in ("L2A", "L1C"):
        path = safe / f"MTD_MSI{level}.xml"
        if path.is_file():
            return level, path
    raise GeosrError(f"{safe}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml; not a Sentinel-2 product")


def s2_radiometry(metadata: Path, level: str) -> tuple[str, float, dict[str, float]]:
    """``(processing baseline, quantification, {band: add offset})`` from the product XML.

    Baselines before 04.00 have no offsets (0); from 04.00 on a missing offset is an error.
    """
    try:
        root = ET.parse(metadata).getroot()
    except ET.ParseError as exc:
        raise GeosrError(f"{metadata}: not valid XML ({exc})") from None
    baseline, quantification, offsets = "", None, {}
    quant_tag = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    for element in root.iter():
        tag = _local(element.tag)
        if tag == "PROCESSING_BASELINE":
            baseline = (element.text or "").strip()
        elif tag == quant_tag:
            quantification = float(element.text)
        elif tag == offset_tag:
            offsets[S2_BANDS[int(element.get("band_id"))]] = float(element.text)
    if quantification is None:
        raise GeosrError(f"{metadata}: no {quant_tag}; cannot scale DNs to reflectance")
    if not re.fullmatch(r"\d\d\.\d\d", baseline):
        raise GeosrError(f"{metadata}: no PROCESSING_BASELINE (e.g. 04.00)")
    if baseline >= "04.00":
        missing = [b for b in S2_BANDS if b not in offsets and not (b == "B10" and level == "L2A")]
        if missing:
            raise GeosrError(
                f"{metadata}: baseline {baseline} needs {offset_tag} for every band; "
                f"missing {', '.join(missing)}"
            )
    else:
        offsets = dict.fromkeys(S2_BANDS, 0.0)
    return baseline, quantification, offsets


def _s2_band_file(granule_images: Path, band: str, level: str) -> Path | None:
    if level == "L2A":
        folder = granule_images / f"R{S2_RESOLUTION[band]}m"
        pattern = f"*_{band}_{S2_RESOLUTION[band]}m"
    else:
        folder = granule_images
        pattern = f"*_{band}"
    found = sorted(p for p in folder.glob(pattern + ".*") if p.suffix.lower() in RASTER_SUFFIXES)
    return found[0] if found else None


def sentinel2_product(safe: Path) -> Product:
    """The bands and radiometry of a ``.SAFE`` folder (see the module docstring)."""
    level, metadata = _s2_metadata(safe)
    baseline, quantification, offsets = s2_radiometry(metadata, level)
    granules = sorted((safe / "GRANULE").glob("*/IMG_DATA"))
    if len(granules) != 1:
        raise GeosrError(f"{safe}: expected one GRANULE/*/IMG_DATA folder, found {len(granules)}")
    images = granules[0]
    product = Product(f"sentinel2-{level.lower()}", [], [])
    for band in S2_GUIDES:
        path = _s2_band_file(images, band, level)
        if path is None:
            raise GeosrError(f"{safe}: guide band {band} (10 m) is missing")
        product.guides.append(path)
        product.physical[path] = (1 / quantification, offsets[band] / quantification)
    for band in S2_COARSE:
        if band == "B10" and level == "L2A":
            product.notes.append(f"{safe.name}: L2A has no B10 (cirrus); skipped")
            continue
        path = _s2_band_file(images, band, level)
        if path is None:
            raise GeosrError(f"{safe}: band {band} ({S2_RESOLUTION[band]} m) is missing")
        product.coarse.append(path)
        product.physical[path] = (1 / quantification, offsets[band] / quantification)
        product.names[path] = band
    offset = offsets.get("B02", 0.0)
    product.notes.append(
        f"{safe.name}: {level}, processing baseline {baseline}: reflectance = (DN "
        f"{offset:+g}) / {quantification:g}"
    )
    return product


def landsat_product(folder: Path) -> Product:
    """The pan-guided bands of a Landsat collection folder (see the module docstring)."""

    def band_file(band: str) -> Path | None:
        found = sorted(
            p for p in folder.iterdir() if re.search(rf"_{band}\.tiff?$", p.name, re.IGNORECASE)
        )
        return found[0] if found else None

    pan = band_file("B8")
    if pan is None:
        raise GeosrError(f"{folder}: no *_B8.TIF (panchromatic) band; not a Landsat folder")
    product = Product("landsat", [], [pan], snap_guides=True)
    for band in LANDSAT_COARSE:
        path = band_file(band)
        if path is not None:
            product.coarse.append(path)
            product.names[path] = band
    if not product.coarse:
        raise GeosrError(f"{folder}: no *_B1.TIF ... *_B7.TIF band beside the pan")
    return product


def find_product(path: str | Path) -> Product | None:
    """The product ``path`` is (a ``.SAFE`` or a Landsat folder), or ``None`` for a file."""
    path = Path(path)
    if not path.is_dir():
        return None
    if path.suffix.upper() == ".SAFE" or any(path.glob("MTD_MSIL*.xml")):
        return sentinel2_product(path)
    if any(re.search(r"_B8\.tiff?$", p.name, re.IGNORECASE) for p in path.iterdir()):
        return landsat_product(path)
    raise GeosrError(f"{path}: a folder, but neither a Sentinel-2 .SAFE nor a Landsat folder")
