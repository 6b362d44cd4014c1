"""A capability's HTTP routes live in its package and are declared by it (`Capability.routes`); the web app
composes them from the ordered capability list, and no integration module defines them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from pathlib import Path

from bot.capability import Capability
from bot.services import Services
from handlers.capabilities import CAPABILITIES
from integrations.web import create_app
from tests.conftest import make_settings

#: An installation without the visits capability (`MADOGUCHI_CAPABILITIES` names such a list).
WITHOUT_VISITS = tuple(capability for capability in CAPABILITIES if capability.name != "visits")


def app_paths(services: Services) -> set[str]:
    return set(create_app(services).openapi()["paths"])


def declared(services: Services, name: str) -> dict[str, str]:
    """Path -> module of each route a capability declares."""
    capability = next(c for c in services.capabilities if c.name == name)
    assert capability.routes is not None
    return {route.path: route.endpoint.__module__ for route in capability.routes(services).routes
            if isinstance(route, APIRoute)}


def test_the_staff_api_routes_come_from_their_capabilities(sqlite_services: Services) -> None:
    assert declared(sqlite_services, "hearing") == {"/api/hearings": "handlers.hearing.routes",
                                             "/api/hearings/{response_id}": "handlers.hearing.routes"}
    assert declared(sqlite_services, "visits") == {"/api/visits": "handlers.visits.routes",
                                            "/api/visits/{visit_id}": "handlers.visits.routes"}
    assert {*declared(sqlite_services, "hearing"), *declared(sqlite_services, "visits")} <= app_paths(sqlite_services)
    names = [capability.name for capability in sqlite_services.capabilities if capability.routes is not None]
    assert names == ["hearing", "visits"]


def test_a_capability_left_out_leaves_no_routes_and_a_new_one_is_mounted(sqlite_services: Services, tmp_path: Path) -> None:
    """Adding a capability with routes is its package plus the list entry: the app needs no change."""
    router = APIRouter(prefix="/api")

    @router.get("/ping-capability")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    sqlite_services.install(Capability(name="pinger", routes=lambda _services: router))
    with TestClient(create_app(sqlite_services)) as client:
        assert client.get("/api/ping-capability").json() == {"pong": "yes"}

    without_visits = Services.create(make_settings(tmp_path / "other",
                                                   capabilities="tests.test_capability_routes:WITHOUT_VISITS"))
    paths = app_paths(without_visits)
    assert "/api/visits" not in paths and "/api/hearings" in paths and "/api/ping-capability" not in paths
    without_visits.close()
