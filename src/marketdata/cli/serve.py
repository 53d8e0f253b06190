"""``marketdata serve`` and ``fake-polygon``: run the REST API, or a local Polygon look-alike.

:func:`register` adds both to the root app. ``serve`` checks the database and starts uvicorn
with the API (and its scheduler) in one or more worker processes; ``fake-polygon`` serves
simulated data in the vendor's shapes, with switchable faults, for tests and demos.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.markup import escape

from marketdata.cli._common import err, settings_of, with_store
from marketdata.storage.urls import DatabaseUrl

# uvicorn, the API app and the fake server are imported inside the commands, so `--help`
# answers at once.


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default MARKETDATA_HOST, 127.0.0.1).", show_default=False),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default MARKETDATA_PORT, 8000).", show_default=False)
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes; they share the database, and each scheduled run happens "
            "once among them.",
        ),
    ] = 1,
) -> None:
    """Serve the REST API (docs at /docs) and run the scheduler (the daily backfill).

    Set MARKETDATA_SCHEDULER=false to serve only (e.g. when `marketdata worker` runs apart).
    """
    import os

    import uvicorn  # only this command needs the server

    from marketdata.api.app import create_app, prepare_database

    settings = settings_of(ctx)
    # Fail fast, with one clear line, before the server starts; seed simulated data once here
    # rather than racing in every worker.
    with_store(settings, lambda store: prepare_database(store, settings, announce=False))
    bind_host = host or settings.host
    bind_port = port or settings.port
    err.print(
        f"serving {escape(DatabaseUrl.parse(settings.database_url).display)} on "
        f"http://{bind_host}:{bind_port} with {workers} worker(s)  (API docs: /docs)"
    )
    if workers == 1:
        uvicorn.run(
            create_app(settings),
            host=bind_host,
            port=bind_port,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's logs go through marketdata.logs (JSON or text)
        )
        return
    # Workers are separate processes that read their settings from the environment: hand
    # them the command line's database.
    os.environ["MARKETDATA_DATABASE_URL"] = settings.database_url
    uvicorn.run(
        "marketdata.api.app:app_from_environment",
        factory=True,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # each worker configures marketdata.logs in app_from_environment
    )


def fake_polygon(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 9100,
    seed: Annotated[int, typer.Option(help="Simulator seed: same seed, same market.")] = 0,
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated universe (default: the 15-symbol watchlist).", show_default=False
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            help="Key callers must send (default POLYGON_API_KEY, else any non-empty key).",
            show_default=False,
        ),
    ] = None,
    today: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Last session served (default: the last completed session).",
            formats=["%Y-%m-%d"],
            show_default=False,
        ),
    ] = None,
    page_size: Annotated[
        int | None,
        typer.Option(min=1, help="Results per page, to force pagination.", show_default=False),
    ] = None,
    rate_limit: Annotated[
        int | None,
        typer.Option(min=1, help="Calls per minute before answering 429.", show_default=False),
    ] = None,
    retry_after: Annotated[
        float | None,
        typer.Option(help="Seconds sent in Retry-After with 429s.", show_default=False),
    ] = None,
    throttle_first: Annotated[
        int, typer.Option(min=0, help="Answer the first N data requests with 429.")
    ] = 0,
    error_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of 5xx answers.")
    ] = 0.0,
    plan_start: Annotated[
        dt.datetime | None,
        typer.Option(
            help="Answer 403 'timeframe' before this date (the free plan keeps ~2 years).",
            formats=["%Y-%m-%d"],
            show_default=False,
        ),
    ] = None,
    slow: Annotated[float, typer.Option(min=0.0, help="Seconds of delay per answer.")] = 0.0,
) -> None:
    """Run a local Polygon/Massive look-alike serving simulated data (for tests and demos).

    Point marketdata at it with POLYGON_BASE_URL=http://127.0.0.1:9100 and any API key.
    """
    import uvicorn

    from marketdata.calendar import last_completed_session
    from marketdata.providers.simulator import DEFAULT_SYMBOLS
    from marketdata.testing import FakePolygon, FakePolygonConfig, Faults

    settings = settings_of(ctx)
    key = api_key or (
        settings.polygon_api_key.get_secret_value() if settings.polygon_api_key else None
    )
    universe = (
        tuple(s.strip() for s in symbols.split(",") if s.strip()) if symbols else DEFAULT_SYMBOLS
    )
    config = FakePolygonConfig(
        api_key=key,
        seed=seed,
        symbols=universe,
        today=today.date() if today else last_completed_session(dt.datetime.now(dt.UTC)),
        faults=Faults(
            page_size=page_size,
            rate_limit=rate_limit,
            retry_after=retry_after,
            throttle_next=throttle_first,
            error_rate=error_rate,
            plan_start=plan_start.date() if plan_start else None,
            slow_seconds=slow,
        ),
    )
    err.print(
        f"fake Polygon on http://{host}:{port}: {len(universe)} simulated symbols up to "
        f"{config.today}; {'key required' if key else 'any non-empty key accepted'}"
    )
    uvicorn.run(FakePolygon(config).app, host=host, port=port, log_level="info", access_log=False)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``fake-polygon`` to the root app."""
    app.command()(serve)
    app.command("fake-polygon")(fake_polygon)
