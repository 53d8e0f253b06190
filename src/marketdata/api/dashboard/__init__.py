"""The web dashboard served at ``/dashboard`` (pages, their scripts and the chart library)."""

from marketdata.api.dashboard.pages import install_dashboard, render_page, router

__all__ = ["install_dashboard", "render_page", "router"]
