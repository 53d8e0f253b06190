"""Test and demo tooling shipped with the package: a Polygon-compatible local server."""

from marketdata.testing.polygon_server import (
    FakePolygon,
    FakePolygonConfig,
    Faults,
    RecordedRequest,
)
from marketdata.testing.server import serve_in_thread

__all__ = ["FakePolygon", "FakePolygonConfig", "Faults", "RecordedRequest", "serve_in_thread"]
