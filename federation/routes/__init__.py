"""Inbound Server-Server API endpoints, mounted by client_api/app.py's route table."""

from __future__ import annotations

from starlette.routing import Route

from federation.routes import events, keys, membership, query

routes: list[Route] = [*keys.routes, *query.routes, *events.routes, *membership.routes]
