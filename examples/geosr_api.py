"""geosr's image-level API on a real GeoTIFF: python -m examples.geosr_api (needs ../shared/data)."""

import tempfile
from pathlib import Path

import rasterio

from srkit import geosr

with rasterio.open("../shared/data/geotiff_rasterio/RGB.byte.tif") as src:
    sr, profile = geosr.enhance_array(src.read(), src.profile, scale=2)  # default rs model
print(sr.shape, sr.dtype, profile["transform"], profile.tags["SR_CLIP"], sep="\n")
with rasterio.open(Path(tempfile.gettempdir()) / "RGB.byte_sr.tif", "w", **profile) as dst:
    dst.write(sr)
