"""Polygon's aggregates endpoint served from our store (skeleton; issue 6)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["polygon-compatible"])
