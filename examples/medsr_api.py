"""medsr's image-level API on a real NIfTI: python -m examples.medsr_api (needs ../shared/data)."""

import tempfile
from pathlib import Path

import nibabel as nib

from srkit import medsr

img = nib.load("../shared/data/mri_nifti/T2w.nii.gz")  # 2 mm slices along z
sr = medsr.enhance_image(img)  # the default plan: z x2 with mri_smore_x2, --clip auto
print(img.shape, img.header.get_zooms(), "->", sr.shape, sr.header.get_zooms())
print(sr.extra["medsr_provenance"]["plan"])
nib.save(sr, Path(tempfile.gettempdir()) / "T2w_sr.nii.gz")
