"""marketdata: a self-hosted, verified copy of US daily stock bars."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("marketdata")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
