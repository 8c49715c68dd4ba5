"""pylibos: what it costs a library OS to create and wake threads over host channels."""

from __future__ import annotations

__version__ = "0.1.0"
