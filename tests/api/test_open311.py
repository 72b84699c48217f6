"""Open311 GeoReport v2: services, requests (the spec's fields), status mapping, filing by form."""

from __future__ import annotations

import pytest

from tests.api.conftest import COMMUNITY_A, Env, file, ok

#: Fields of a service request in the GeoReport v2 specification (GET /requests).
REQUEST_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}


@pytest.fixture
def city(stored: Env) -> Env:
    return stored


def test_services(env: Env) -> None:
    for path in ("/open311/v2/services", "/open311/v2/services.json"):
        services = env.client.get(path).json()
        assert all(set(s) == SERVICE_FIELDS for s in services)
        by_code = {s["service_code"]: s for s in services}
        assert sorted(by_code) == ["0101", "0102", "0505", "0506", "0507"]
        assert by_code["0505"]["service_name"] == "机动车乱停放"
        assert "illegal car parking" in by_code["0505"]["description"]
        assert all(s["type"] == "realtime" and s["metadata"] is False for s in services)


def test_requests_have_the_spec_fields_and_map_states(
    city: Env, points: dict[str, tuple[float, float]]
) -> None:
    reported = file(city, points[COMMUNITY_A])
    rejected = file(city, points[COMMUNITY_A], category="0505")
    rejected = ok(city, ok(city, rejected, "inspector", "triage"), "inspector", "reject")
    listed = city.client.get("/open311/v2/requests.json").json()
    assert all(set(r) == REQUEST_FIELDS for r in listed)
    by_id = {r["service_request_id"]: r for r in listed}
    first = by_id[str(reported["id"])]
    assert (first["status"], first["service_code"], first["lat"], first["long"]) == (
        "open",
        "0507",
        pytest.approx(points[COMMUNITY_A][1]),
        pytest.approx(points[COMMUNITY_A][0]),
    )
    assert first["expected_datetime"] is not None and first["requested_datetime"].endswith("Z")
    assert (by_id[str(rejected["id"])]["status"], by_id[str(rejected["id"])]["status_notes"]) == (
        "closed",
        "rejected",
    )
    closed = city.client.get("/open311/v2/requests", params={"status": "closed"}).json()
    assert [r["service_request_id"] for r in closed] == [str(rejected["id"])]
    one = city.client.get(f"/open311/v2/requests/{reported['id']}.json").json()
    assert len(one) == 1 and one[0]["service_request_id"] == str(reported["id"])
    missing = city.client.get("/open311/v2/requests/9999")
    assert missing.status_code == 404
    assert missing.json() == [
        {"code": 404, "description": "service request 9999 does not exist (service_request_id: 9999)"}
    ]
    assert (first["service_name"], by_id[str(rejected["id"])]["service_name"]) == (
        "乱堆物堆料",
        "机动车乱停放",
    )


def test_post_request_by_form(city: Env, points: dict[str, tuple[float, float]]) -> None:
    lon, lat = points[COMMUNITY_A]
    form = {"service_code": "0507", "lat": str(lat), "long": str(lon), "description": "楼道堆物"}
    anonymous = city.client.post("/open311/v2/requests.json", data=form)
    assert anonymous.status_code == 401 and anonymous.json()[0]["code"] == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    token = city.login("worker")["Authorization"].removeprefix("Bearer ")
    filed = city.client.post("/open311/v2/requests.json", data={**form, "api_key": token})
    assert filed.status_code == 201, filed.text
    request_id = filed.json()[0]["service_request_id"]
    back = city.client.get(f"/open311/v2/requests/{request_id}").json()[0]
    assert (back["status"], back["description"], back["service_code"]) == ("open", "楼道堆物", "0507")
    bad = city.client.post("/open311/v2/requests", data={**form, "service_code": "ufo", "api_key": token})
    assert bad.status_code == 400
    [error] = bad.json()
    assert (
        error["code"] == 400 and "unknown category 'ufo'; valid codes: 0101 私搭乱建" in error["description"]
    )
    assert "(field: service_code)" in error["description"]
    no_place = city.client.post("/open311/v2/requests", data={"service_code": "0507", "api_key": token})
    assert no_place.status_code == 400 and "lat" in no_place.json()[0]["description"]


def test_errors_outside_open311_keep_the_api_form(city: Env) -> None:
    response = city.client.get("/api/v1/cases/9999", headers=city.login("inspector"))
    assert response.status_code == 404 and set(response.json()) == {"error", "detail", "where"}
