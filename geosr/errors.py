"""The exception type geosr raises for problems the user can fix (bad rasters, options)."""

from __future__ import annotations

from srkit.common.errors import SRKitError


class GeosrError(SRKitError):
    """A user-facing geosr problem; the message starts with the file it concerns, if any."""
