"""WGS-84 ↔ GCJ-02: published reference pairs, exact round trips, passthrough outside China, geometry helpers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from tiles.gcj02 import (
    gcj02_to_wgs84,
    geometry_gcj02_to_wgs84,
    geometry_wgs84_to_gcj02,
    in_china,
    wgs84_to_gcj02,
)

# (WGS-84 lon, lat) → (GCJ-02 lon, lat) as published in the test suites of eviltransform (Shanghai, Shenzhen,
# Beijing) and the README of coordtransform (Tiananmen area).
REFERENCE_PAIRS = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),
]


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE_PAIRS)
def test_forward_matches_reference_implementations(
    wgs: tuple[float, float], gcj: tuple[float, float]
) -> None:
    lon, lat = wgs84_to_gcj02(*wgs)
    assert lon == pytest.approx(gcj[0], abs=1e-11)
    assert lat == pytest.approx(gcj[1], abs=1e-11)


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE_PAIRS)
def test_inverse_recovers_published_wgs84(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    lon, lat = gcj02_to_wgs84(*gcj)
    assert isinstance(lon, float)
    assert abs(lon - wgs[0]) < 1e-9
    assert abs(lat - wgs[1]) < 1e-9


def test_offset_is_hundreds_of_metres_in_china() -> None:
    lon, lat = wgs84_to_gcj02(120.70, 31.30)  # the demo district, Suzhou
    d_east_m = (lon - 120.70) * 111_320 * np.cos(np.radians(31.30))
    d_north_m = (lat - 31.30) * 110_574
    assert 200 < float(np.hypot(d_east_m, d_north_m)) < 900


def test_round_trip_over_china_grid_is_exact() -> None:
    lon, lat = np.meshgrid(np.linspace(73.0, 135.0, 120), np.linspace(18.0, 53.5, 90))
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    back_lon, back_lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert back_lon.shape == lon.shape
    assert np.max(np.abs(back_lon - lon)) < 1e-7
    assert np.max(np.abs(back_lat - lat)) < 1e-7
    assert np.max(np.abs(gcj_lon - lon)) > 1e-3  # it really shifted


def test_inverse_beats_the_one_step_approximation() -> None:
    wgs = np.array([121.4737]), np.array([31.2304])
    gcj_lon, gcj_lat = wgs84_to_gcj02(*wgs)
    one_step_lon = 2 * gcj_lon - wgs84_to_gcj02(gcj_lon, gcj_lat)[0]
    exact_lon, _ = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert abs(exact_lon[0] - wgs[0][0]) < 1e-10 < abs(one_step_lon[0] - wgs[0][0])


@pytest.mark.parametrize("point", [(2.3522, 48.8566), (-74.006, 40.7128), (151.2093, -33.8688), (0.0, 0.0)])
def test_outside_china_passes_through(point: tuple[float, float]) -> None:
    assert not in_china(*point)
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point


def test_mixed_inside_and_outside_arrays() -> None:
    lon, lat = np.array([2.3522, 116.404]), np.array([48.8566, 39.915])
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    assert (gcj_lon[0], gcj_lat[0]) == (2.3522, 48.8566)
    assert gcj_lon[1] == pytest.approx(116.41024449916938, abs=1e-11)


@pytest.mark.parametrize(
    ("lon", "lat", "message"),
    [(float("nan"), 30.0, "finite"), (500_000.0, 3_400_000.0, "projected metres"), (120.0, 95.0, "degrees")],
)
def test_bad_coordinates_are_rejected(lon: float, lat: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wgs84_to_gcj02(lon, lat)
    with pytest.raises(ValueError, match="point 0"):
        gcj02_to_wgs84([lon], [lat])


def test_geometry_helpers_round_trip_and_keep_input() -> None:
    square = Polygon([(120.70, 31.30), (120.71, 31.30), (120.71, 31.31), (120.70, 31.31)])
    shifted = geometry_wgs84_to_gcj02(square)
    assert shifted.exterior.coords[0] != square.exterior.coords[0]
    back = geometry_gcj02_to_wgs84(shifted)
    assert shapely.equals_exact(back, square, tolerance=1e-9)
    assert shapely.is_empty(geometry_wgs84_to_gcj02(Point()))


def test_geodataframe_helper_returns_a_new_frame() -> None:
    frame = gpd.GeoDataFrame(
        {"name": ["a", "b"]}, geometry=[Point(120.70, 31.30), Point(121.47, 31.23)], crs="EPSG:4326"
    )
    shifted = geometry_wgs84_to_gcj02(frame)
    assert isinstance(shifted, gpd.GeoDataFrame)
    assert list(shifted["name"]) == ["a", "b"]
    assert frame.geometry.iloc[0].x == 120.70  # input untouched
    expected = wgs84_to_gcj02(121.47, 31.23)
    assert (shifted.geometry.iloc[1].x, shifted.geometry.iloc[1].y) == pytest.approx(expected, abs=1e-12)
    series = geometry_gcj02_to_wgs84(shifted.geometry)
    assert isinstance(series, gpd.GeoSeries)
    assert series.crs == frame.crs
    assert np.allclose(series.x, frame.geometry.x, atol=1e-9)
