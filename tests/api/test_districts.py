"""District import through the API (GeoPackage, zipped Shapefiles), its errors and limits, and gridding jobs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from sqlalchemy import func, select

from api.models import Building, Community, District, Zone
from gis.io import read_district
from tests.api.conftest import Env, import_demo
from tests.shared_data import shared_path


def count(env: Env, model: type) -> int:
    with env.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def upload(env: Env, name: str, data: bytes, user: str = "planner") -> object:
    return env.client.post(
        "/api/v1/districts",
        headers=env.login(user),
        files={"file": (name, data, "application/octet-stream")},
        data={"name": "upload"},
    )


def test_import_geopackage_stores_every_layer(env: Env, demo_gpkg: Path) -> None:
    district = import_demo(env, demo_gpkg)
    buildings = gpd.read_file(demo_gpkg, layer="buildings")
    assert (district["code"], district["households"]) == ("320571", int(buildings["households"].sum()))
    assert count(env, Building) == len(buildings)
    assert count(env, Community) == len(gpd.read_file(demo_gpkg, layer="communities"))
    zones = sum(
        len(gpd.read_file(demo_gpkg, layer=layer))
        for layer in ("parking", "fire_lanes", "green", "public_space")
    )
    assert count(env, Zone) == zones
    listed = env.client.get("/api/v1/districts", headers=env.login("planner_a")).json()
    assert [d["id"] for d in listed] == [district["id"]]
    assert (
        env.client.get(f"/api/v1/districts/{district['id']}", headers=env.login("planner")).status_code == 200
    )
    assert env.client.get("/api/v1/districts/999", headers=env.login("planner")).status_code == 404


@pytest.fixture(scope="module")
def broken_gpkg(demo_gpkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo district with a negative household count in buildings row 5."""
    path = tmp_path_factory.mktemp("broken") / "broken.gpkg"
    for layer in ("buildings", "communities", "compounds", "roads"):
        frame = gpd.read_file(demo_gpkg, layer=layer)
        if layer == "buildings":
            frame.loc[5, "households"] = -3
        frame.to_file(path, layer=layer, driver="GPKG")
    return path


def test_bad_district_is_422_naming_layer_row_field_and_changes_nothing(env: Env, broken_gpkg: Path) -> None:
    response = upload(env, "broken.gpkg", broken_gpkg.read_bytes())
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["where"] == {"file": "broken.gpkg", "layer": "buildings", "row": 5, "field": "households"}
    assert "broken.gpkg" in body["detail"] and "row 5" in body["detail"]
    assert (count(env, District), count(env, Building), count(env, Community)) == (0, 0, 0)


def test_failed_write_rolls_back_the_import(env: Env, demo_gpkg: Path) -> None:
    """A community planner may not import a whole district: refused after reading, nothing stored."""
    with demo_gpkg.open("rb") as handle:
        response = env.client.post(
            "/api/v1/districts",
            headers=env.login("planner_a"),
            files={"file": ("d.gpkg", handle)},
            data={"name": "x"},
        )
    assert response.status_code == 403
    assert (count(env, District), count(env, Building), count(env, Zone)) == (0, 0, 0)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
def test_zipped_shapefiles(env: Env, demo_gpkg: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shp" / "district"
    folder.mkdir(parents=True)
    for layer in ("buildings", "communities"):
        gpd.read_file(demo_gpkg, layer=layer).to_file(folder / f"{layer}.shp", encoding="utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"district/{path.name}")
    response = upload(env, "district.zip", buffer.getvalue())
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    assert count(env, Building) == len(gpd.read_file(demo_gpkg, layer="buildings"))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("district.csv", b"a,b\n", "expected a GeoPackage"),
        ("district.zip", b"not a zip", "not a readable zip"),
        ("district.gpkg", b"not a geopackage", "district.gpkg"),
    ],
)
def test_unusable_uploads(env: Env, name: str, data: bytes, message: str) -> None:
    response = upload(env, name, data)
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert message in response.json()["detail"]  # type: ignore[attr-defined]
    assert count(env, District) == 0


def test_zip_without_buildings(env: Env) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    response = upload(env, "empty.zip", buffer.getvalue())
    assert response.status_code == 422 and response.json()["where"]["layer"] == "buildings"  # type: ignore[attr-defined]


def test_upload_size_limit_is_413(env: Env) -> None:
    response = upload(env, "huge.gpkg", b"0" * (env.settings.max_upload_bytes + 1))
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert count(env, District) == 0


def test_only_planners_import(env: Env, demo_gpkg: Path) -> None:
    response = upload(env, "d.gpkg", demo_gpkg.read_bytes(), user="inspector")
    assert response.status_code == 403 and "needs planner" in response.json()["detail"]  # type: ignore[attr-defined]


def test_grid_job_reports_progress_and_result(env: Env, demo_gpkg: Path) -> None:
    district = import_demo(env, demo_gpkg)
    headers = env.login("planner")
    started = env.client.post(
        f"/api/v1/districts/{district['id']}/grid", headers=headers, json={"name": "v1"}
    )
    assert started.status_code == 202 and started.json()["status"] == "queued"
    job = env.client.get(f"/api/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert (job["status"], job["progress"]) == ("done", 1.0)
    assert job["result"]["grids"] > 0 and job["result"]["version"] == 1
    assert env.client.get(f"/api/v1/jobs/{job['id']}", headers=env.login("inspector")).status_code == 404


def test_failed_grid_job_is_recorded_and_stores_nothing(env: Env, demo_gpkg: Path) -> None:
    district = import_demo(env, demo_gpkg)
    headers = env.login("planner")
    started = env.client.post(
        f"/api/v1/districts/{district['id']}/grid", headers=headers, json={"name": "x", "plan_id": 4242}
    )
    job = env.client.get(f"/api/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert job["status"] == "failed" and "plan 4242 does not exist" in job["message"]
    assert env.client.get("/api/v1/plans", headers=headers).json() == []


def test_grid_rules_are_checked(env: Env, demo_gpkg: Path) -> None:
    district = import_demo(env, demo_gpkg)
    response = env.client.post(
        f"/api/v1/districts/{district['id']}/grid", headers=env.login("planner"), json={"grid_min": 0}
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "grid_min"]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_import_the_suzhou_district(env: Env) -> None:
    """The real Suzhou footprints go in through the API as a planner would upload them."""
    path = shared_path("data", "suzhou_district.gpkg")
    env.client.app.state.service.settings.max_upload_bytes = 64 * 1024 * 1024  # type: ignore[attr-defined]
    district = import_demo(env, path, user="admin")  # Suzhou (320508) is outside the demo planners' district
    expected = read_district(path)
    assert district["households"] == expected.households
    assert count(env, Building) == len(expected.buildings)
    assert count(env, Community) == len(expected.communities)
