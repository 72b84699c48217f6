"""Tests of gis.crs: choosing a local metric CRS."""

from __future__ import annotations

import geopandas as gpd
import pyproj
import pytest
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from shapely.geometry import box

from gis.crs import gk_zone, is_metric, local_metric_crs, to_crs_of, to_metric, utm_zone
from gis.errors import DistrictError

SUZHOU = box(120.60, 31.29, 120.61, 31.30)


def frame(geometry: object = SUZHOU, crs: object = "EPSG:4326") -> gpd.GeoDataFrame:
    """A one-feature frame in ``crs``."""
    return gpd.GeoDataFrame({"n": [1]}, geometry=[geometry], crs=crs)


def test_projected_metric_crs_is_kept() -> None:
    utm = frame().to_crs(32651)
    assert local_metric_crs(utm) == pyproj.CRS.from_epsg(32651)


def test_wgs84_gets_utm_zone_of_centre() -> None:
    assert local_metric_crs(frame()).to_epsg() == 32651


def test_southern_hemisphere_gets_south_utm_zone() -> None:
    assert local_metric_crs(frame(box(151.0, -34.0, 151.1, -33.9))).to_epsg() == 32756


@pytest.mark.parametrize(
    ("lon", "epsg", "meridian"),
    [
        (120.6, 4549, "120E"),
        (116.4, 4548, "117E"),
        (118.6, 4549, "120E"),
        (75.2, 4534, "75E"),
        (134.9, 4554, "135E"),
    ],
)
def test_cgcs2000_gets_gauss_kruger_zone(lon: float, epsg: int, meridian: str) -> None:
    crs = local_metric_crs(frame(box(lon - 0.01, 31.0, lon + 0.01, 31.01), crs="EPSG:4490"))
    assert crs.to_epsg() == epsg
    assert crs.name == f"CGCS2000 / 3-degree Gauss-Kruger CM {meridian}"


def test_gk_zone_clamps_to_chinas_zones() -> None:
    assert gk_zone(60.0).to_epsg() == 4534
    assert gk_zone(150.0).to_epsg() == 4554


def test_web_mercator_is_not_treated_as_metric() -> None:
    assert not is_metric(pyproj.CRS.from_epsg(3857))
    assert local_metric_crs(frame().to_crs(3857)).to_epsg() == 32651


def test_projected_feet_is_not_metric() -> None:
    assert not is_metric(pyproj.CRS.from_epsg(2263))


def test_missing_crs_raises() -> None:
    with pytest.raises(DistrictError, match=r"has no CRS; declare one, e\.g\. EPSG:4326"):
        local_metric_crs(frame(crs=None))


def test_utm_zone_of_point() -> None:
    assert utm_zone(120.6, 31.3).to_epsg() == 32651


@pytest.mark.parametrize(
    ("lon", "lat"), [(-179.9, 10.0), (-0.1, -33.9), (0.1, 51.5), (5.4, 60.0), (116.4, 39.9), (179.9, -45.0)]
)
def test_utm_zone_matches_projs_database(lon: float, lat: float) -> None:
    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    assert utm_zone(lon, lat).to_epsg() in {int(info.code) for info in infos}


def test_to_metric_measures_same_area_from_any_crs() -> None:
    utm = frame(box(271000, 3466000, 271030, 3466020), crs="EPSG:32651")
    assert to_metric(utm) is utm
    area = float(to_metric(utm.to_crs(4326)).area.iloc[0])
    assert area == pytest.approx(600.0, rel=1e-6)


def test_to_crs_of_returns_same_frame_when_already_there() -> None:
    wgs = frame()
    assert to_crs_of(wgs, "EPSG:4326") is wgs
    assert to_crs_of(wgs, 32651).crs == pyproj.CRS.from_epsg(32651)
