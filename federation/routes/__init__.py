"""Inbound Server-Server API endpoints, mounted by client_api/app.py's route table."""

from __future__ import annotations

from starlette.routing import Route

from federation.routes import events, hierarchy, keys, media, membership, query, user_keys

routes: list[Route] = [*keys.routes, *query.routes, *events.routes, *membership.routes, *user_keys.routes,
                        *media.routes, *hierarchy.routes]
