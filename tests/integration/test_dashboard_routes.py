"""``/dashboard`` over HTTP (no browser): the pages, their headers, the static files and
plotly.js served from the installed ``plotly`` package."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketdata.api.app import create_app
from marketdata.api.dashboard import render_page
from marketdata.api.dashboard.pages import plotly_file
from marketdata.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The app on an empty SQLite database, refreshing every 42 seconds."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'md.db'}",
        simulate=False,
        scheduler=False,
        dashboard_refresh_seconds=42,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_root_links_to_the_dashboard(client: TestClient) -> None:
    """``GET /`` names the dashboard among its links."""
    assert client.get("/").json()["dashboard"] == "/dashboard"


def test_overview_page_carries_the_refresh_setting_and_a_strict_policy(client: TestClient) -> None:
    """The overview is HTML with the configured refresh, scripts from this server only."""
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-refresh="42"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'self'" in policy
    assert "http" not in page.text.replace("https://", "").split("<body", 1)[0]  # no CDN


def test_symbol_page_normalizes_the_symbol(client: TestClient) -> None:
    """``/dashboard/brk.b`` is BRK.B's page (even before it has bars); a bad symbol is 422."""
    page = client.get("/dashboard/brk.b")
    assert page.status_code == 200
    assert 'data-symbol="BRK.B"' in page.text
    assert "/dashboard/vendor/plotly.min.js?v=" in page.text
    assert '"high_below_low": {"severity": "hard"' in page.text
    assert client.get("/dashboard/bad$").status_code == 422


def test_pages_escape_what_they_are_given() -> None:
    """Values put into a page are HTML-escaped."""
    assert "&lt;b&gt;" in render_page("symbol.html", symbol="<b>")
    assert "<b>" not in render_page("symbol.html", symbol="<b>").split("<body", 1)[1][:200]


def test_plotly_is_served_from_the_installed_package(client: TestClient) -> None:
    """The bytes are the package's file, gzipped for clients that accept it, cached by ETag."""
    shipped = plotly_file().read_bytes()
    plain = client.get("/dashboard/vendor/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.content == shipped
    assert plain.headers["content-type"].startswith("text/javascript")
    raw = client.get("/dashboard/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"}).headers
    assert raw["content-encoding"] == "gzip"
    assert int(raw["content-length"]) < len(shipped) / 2
    with client.stream(
        "GET", "/dashboard/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"}
    ) as streamed:
        assert gzip.decompress(b"".join(streamed.iter_raw())) == shipped
    again = client.get(
        "/dashboard/vendor/plotly.min.js", headers={"If-None-Match": plain.headers["etag"]}
    )
    assert again.status_code == 304


def test_static_files_and_docs(client: TestClient) -> None:
    """Our scripts and styles are package data; the dashboard stays out of the OpenAPI document."""
    for name, media in (
        ("overview.js", "text/javascript"),
        ("symbol.js", "text/javascript"),
        ("dashboard.css", "text/css"),
    ):
        answer = client.get(f"/dashboard/static/{name}")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith(media)
    assert client.get("/dashboard/static/missing.js").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/dashboard")]
    assert {"/api/v1/coverage", "/api/v1/actions/{symbol}"} <= set(paths)
