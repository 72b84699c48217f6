"""The tile service inside the app, on both backends: what a plan edit rebuilds (only the plan's own layers:
the district's buildings keep their prepared geometry) and the collector settings of a serving app."""

from __future__ import annotations

import gc
from dataclasses import replace

import mercantile
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.models import Building
from api.security import Principal
from api.tiles_service import TileAddress, TileService, plan_ref
from tests.api.conftest import Env

PLANNER = Principal("planner", "planner", "320571")


def test_a_new_revision_reuses_the_districts_prepared_buildings(drafted: Env) -> None:
    service = TileService()
    with drafted.db.read() as session:
        footprint = session.scalars(select(Building.geom).order_by(Building.id)).first()
        assert footprint is not None
        point = shapely.point_on_surface(footprint)
        tile = mercantile.tile(point.x, point.y, 16)
        address = TileAddress(tile.z, tile.x, tile.y)
        ref = plan_ref(session, PLANNER, 1, 1)
        first = service.plan_tile(session, ref, address, "wgs84")
        later = replace(ref, revision=ref.revision + 1)
        again = service.plan_tile(session, later, address, "wgs84")
        shifted = service.plan_tile(session, later, address, "gcj02")
    assert first and again == first  # nothing changed between the two revisions but their number
    sources = list(service._sources.values())
    assert len(sources) == 2  # revision 2 in both display CRSs; revision 1 was dropped
    shapes = {crs: service._shapes[(ref.district_id, crs)] for crs in ("wgs84", "gcj02")}
    for source, crs in zip(sources, ("wgs84", "gcj02"), strict=True):
        layers = {layer.name: layer for layer in source.layers}
        assert layers["buildings"].shape is shapes[crs]["buildings"]
        assert layers["communities"].shape is shapes[crs]["communities"]
    assert shifted != first


def test_a_serving_app_keeps_its_start_up_objects_out_of_full_collections(env: Env) -> None:
    assert gc.get_freeze_count() > 0  # the env fixture's app is serving
    gc.unfreeze()
    with TestClient(create_app(env.settings, env.db)):
        assert gc.get_freeze_count() > 10_000  # modules, classes and functions of the libraries
    assert gc.get_freeze_count() == 0  # given back at shutdown: an old app's cycles can be collected
    gc.freeze()  # as the env fixture's app left it
