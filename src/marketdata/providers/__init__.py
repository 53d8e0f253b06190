"""Providers: where bars come from (files now; Polygon and the simulator in their own issues)."""

from marketdata.providers.files import BarFile, FileChunk, open_bar_file

__all__ = ["BarFile", "FileChunk", "open_bar_file"]
