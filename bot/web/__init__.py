"""The HTTP edge: accept, verify, normalize and publish webhooks; health and metrics endpoints."""

from __future__ import annotations

from bot.web.app import create_app

__all__ = ["create_app"]
