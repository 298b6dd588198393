"""The ``geosr`` command: parsing and error reporting only; the work is in the modules."""

from __future__ import annotations

from common.cli import make_group, models_command
from common.training.cli import make_train_command

main = make_group("geosr", "Super-resolution of GeoTIFF rasters with georeferencing kept.")
main.add_command(models_command(("rs", "natural")))
main.add_command(make_train_command())

if __name__ == "__main__":
    main()
