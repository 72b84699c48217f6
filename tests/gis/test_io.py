"""Tests of gis.io: reading districts and registers, writing and reading plans."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Point, Polygon, box

from gis.errors import DistrictError, PlanError
from gis.io import (
    GeometryRepairedWarning,
    RegisterReport,
    read_district,
    read_plan,
    read_register,
    write_district,
    write_layers,
    write_plan,
)
from gis.model import BUILDING_COLUMNS, GridPlan, GridRules

CRS = "EPSG:32651"
X0, Y0 = 271000.0, 3466000.0  # central Suzhou, UTM 51N
CODE_A, CODE_B = "320508001001", "320508001002"
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SUZHOU = SHARED / "data" / "suzhou_district.gpkg"


# ------------------------------------------------------------------------------------------ fixture builder


def rect(x: float, y: float, width: float, height: float) -> Polygon:
    """A rectangle whose lower-left corner is (x, y) metres from the district origin."""
    return box(X0 + x, Y0 + y, X0 + x + width, Y0 + y + height)


def district_layers() -> dict[str, gpd.GeoDataFrame]:
    """A tiny district: communities A and B side by side, three buildings, one compound, one road.

    Building b2 has no households (estimated 15 x 20 m x 3 floors / 90 = 10), no compound_id (filled from
    compound K1) and no community_code (filled from community A).
    """
    buildings = gpd.GeoDataFrame(
        {
            "building_id": ["b1", "b2", "b3"],
            "households": [40.0, None, 100.0],
            "floors": [6, 3, 10],
            "compound_id": ["K1", None, None],
            "community_code": [CODE_A, None, CODE_B],
        },
        geometry=[rect(10, 10, 20, 30), rect(50, 10, 15, 20), rect(250, 50, 30, 30)],
        crs=CRS,
    )
    communities = gpd.GeoDataFrame(
        {"community_code": [CODE_A, CODE_B], "name": ["社区A", "社区B"]},
        geometry=[rect(0, 0, 200, 200), rect(200, 0, 200, 200)],
        crs=CRS,
    )
    compounds = gpd.GeoDataFrame({"compound_id": ["K1"]}, geometry=[rect(5, 5, 100, 60)], crs=CRS)
    roads = gpd.GeoDataFrame({"kind": ["street"]}, geometry=[rect(195, 0, 10, 200)], crs=CRS)
    return {"buildings": buildings, "communities": communities, "compounds": compounds, "roads": roads}


def write_gpkg(path: Path, layers: Mapping[str, gpd.GeoDataFrame]) -> Path:
    """Write ``layers`` to a GeoPackage at ``path`` as given (no checks), and return the path."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, frame in layers.items():
            pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG")
    return path


def write_directory(path: Path, layers: Mapping[str, gpd.GeoDataFrame], suffix: str, driver: str) -> Path:
    """Write each layer to ``path/<name><suffix>`` with ``driver``, and return the directory."""
    path.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, frame in layers.items():
            pyogrio.write_dataframe(frame, path / f"{name}{suffix}", driver=driver)
    return path


def gpkg_with(tmp_path: Path, **changes: gpd.GeoDataFrame | None) -> Path:
    """The tiny district with some layers replaced (None drops a layer), written to a GeoPackage."""
    layers: dict[str, gpd.GeoDataFrame] = district_layers()
    for name, frame in changes.items():
        if frame is None:
            del layers[name]
        else:
            layers[name] = frame
    return write_gpkg(tmp_path / "district.gpkg", layers)


def buildings_with(column: str, values: list[object]) -> gpd.GeoDataFrame:
    """The tiny district's buildings with one column replaced."""
    frame = district_layers()["buildings"]
    frame[column] = values
    return frame


def district_error(path: Path, **kwargs: object) -> DistrictError:
    """Read ``path`` expecting a DistrictError, and return it."""
    with pytest.raises(DistrictError) as info:
        read_district(path, **kwargs)  # type: ignore[arg-type]
    return info.value


# ---------------------------------------------------------------------------------------------- good input


def test_reads_geopackage_into_the_building_contract(tmp_path: Path) -> None:
    district = read_district(gpkg_with(tmp_path))
    buildings = district.buildings
    assert list(buildings.columns) == [*BUILDING_COLUMNS, "geometry"]
    assert buildings["building_id"].tolist() == ["b1", "b2", "b3"]
    assert buildings["households"].dtype == np.int64
    assert buildings["households"].tolist() == [40, 10, 100]
    assert buildings["households_estimated"].tolist() == [False, True, False]
    assert str(buildings["floors"].dtype) == "Int64"
    assert str(buildings["units"].dtype) == "Int64"
    assert buildings["units"].isna().all()
    assert buildings["compound_id"].tolist() == ["K1", "K1", None]
    assert buildings["community_code"].tolist() == [CODE_A, CODE_A, CODE_B]
    assert district.households == 150
    assert district.compounds is not None and district.roads is not None
    assert district.buildings.crs == district.communities.crs == district.roads.crs
    assert district.compounds["name"].tolist() == [None]
    assert district.communities["name"].tolist() == ["社区A", "社区B"]


def test_optional_layers_may_be_absent(tmp_path: Path) -> None:
    district = read_district(gpkg_with(tmp_path, compounds=None, roads=None))
    assert district.compounds is None
    assert district.roads is None
    assert district.buildings["compound_id"].tolist() == ["K1", None, None]


def test_layers_can_be_renamed(tmp_path: Path) -> None:
    layers = district_layers()
    path = write_gpkg(tmp_path / "d.gpkg", {"my_buildings": layers["buildings"], "sq": layers["communities"]})
    district = read_district(path, layers={"buildings": "my_buildings", "communities": "sq"})
    assert len(district.buildings) == 3


def test_households_column_absent_estimates_all(tmp_path: Path) -> None:
    buildings = district_layers()["buildings"].drop(columns="households")
    district = read_district(gpkg_with(tmp_path, buildings=buildings), rules=GridRules(m2_per_household=60.0))
    # 600*6/60, 300*3/60, 900*10/60
    assert district.buildings["households"].tolist() == [60, 15, 150]
    assert district.buildings["households_estimated"].all()


def test_missing_floors_count_as_one_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buildings = buildings_with("floors", [6, None, 10])
    with caplog.at_level(logging.WARNING, logger="gis.io"):
        district = read_district(gpkg_with(tmp_path, buildings=buildings))
    assert district.buildings["households"].tolist() == [40, 3, 100]  # round(300 / 90)
    assert "1 buildings without households have no floors" in caplog.text


def test_same_estimates_in_wgs84_and_utm(tmp_path: Path) -> None:
    layers = district_layers()
    layers["buildings"]["households"] = None
    utm = read_district(write_gpkg(tmp_path / "utm.gpkg", layers))
    wgs = read_district(write_gpkg(tmp_path / "wgs.gpkg", {k: v.to_crs(4326) for k, v in layers.items()}))
    assert wgs.buildings.crs.to_epsg() == 4326
    assert utm.buildings.crs.to_epsg() == 32651
    assert wgs.buildings["households"].tolist() == utm.buildings["households"].tolist() == [40, 10, 100]


def test_layers_in_another_crs_are_reprojected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    communities = district_layers()["communities"].to_crs(4326)
    with caplog.at_level(logging.WARNING, logger="gis.io"):
        district = read_district(gpkg_with(tmp_path, communities=communities))
    assert district.communities.crs.to_epsg() == 32651
    assert "reprojected to the buildings' CRS" in caplog.text


def test_spatial_community_wins_over_a_wrong_code(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buildings = buildings_with("community_code", [CODE_B, None, CODE_B])
    with caplog.at_level(logging.WARNING, logger="gis.io"):
        district = read_district(gpkg_with(tmp_path, buildings=buildings))
    assert district.buildings["community_code"].tolist() == [CODE_A, CODE_A, CODE_B]
    assert "1 buildings lie in another community" in caplog.text


def test_integer_ids_and_codes_become_strings(tmp_path: Path) -> None:
    buildings = buildings_with("building_id", [101, 102, 103])
    buildings["community_code"] = [int(CODE_A), int(CODE_A), int(CODE_B)]
    district = read_district(gpkg_with(tmp_path, buildings=buildings))
    assert district.buildings["building_id"].tolist() == ["101", "102", "103"]
    assert district.buildings["community_code"].tolist() == [CODE_A, CODE_A, CODE_B]


@pytest.mark.parametrize(
    ("suffix", "driver"), [(".geojson", "GeoJSON"), (".shp", "ESRI Shapefile"), (".fgb", "FlatGeobuf")]
)
def test_reads_directory_of_files(tmp_path: Path, suffix: str, driver: str) -> None:
    layers = district_layers()
    if driver == "GeoJSON":
        layers = {name: frame.to_crs(4326) for name, frame in layers.items()}
    district = read_district(write_directory(tmp_path / "district", layers, suffix, driver))
    # FlatGeobuf stores features in spatial-index order
    buildings = district.buildings.sort_values("building_id")
    assert buildings["households"].tolist() == [40, 10, 100]
    assert buildings["community_code"].tolist() == [CODE_A, CODE_A, CODE_B]
    assert buildings["compound_id"].tolist() == ["K1", "K1", None]
    assert district.roads is not None


def test_district_round_trips_through_write_district(tmp_path: Path) -> None:
    district = read_district(gpkg_with(tmp_path))
    write_district(district, tmp_path / "out.gpkg")
    again = read_district(tmp_path / "out.gpkg")
    for column in BUILDING_COLUMNS:
        assert again.buildings[column].tolist() == district.buildings[column].tolist(), column


@pytest.mark.skipif(
    not SUZHOU.is_file(), reason=f"sample district {SUZHOU} not present (needs <repo>/../shared)"
)
def test_reads_the_suzhou_sample() -> None:
    district = read_district(SUZHOU)
    assert len(district.buildings) == 3076
    assert district.households == 45321
    assert not district.buildings["households_estimated"].any()
    assert len(district.communities) == 13
    assert district.compounds is not None and district.roads is not None
    assert district.buildings["community_code"].notna().all()


# ----------------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    error = district_error(tmp_path / "nope.gpkg")
    assert error.file == str(tmp_path / "nope.gpkg")
    assert "file not found" in str(error)


def test_missing_layer_names_the_layers_present(tmp_path: Path) -> None:
    error = district_error(gpkg_with(tmp_path, communities=None))
    assert error.layer == "communities"
    assert "layer 'communities' not found; layers present: buildings, compounds, roads" in str(error)


def test_missing_file_in_directory(tmp_path: Path) -> None:
    layers = {"buildings": district_layers()["buildings"]}
    error = district_error(write_directory(tmp_path / "d", layers, ".geojson", "GeoJSON"))
    assert error.layer == "communities"
    assert "files present: buildings.geojson" in str(error)


def test_unknown_layer_rename(tmp_path: Path) -> None:
    error = district_error(gpkg_with(tmp_path), layers={"streets": "x"})
    assert "unknown layer(s) streets" in str(error)


def test_missing_building_id_column(tmp_path: Path) -> None:
    buildings = district_layers()["buildings"].drop(columns="building_id")
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.field) == ("buildings", "building_id")
    assert "missing required column 'building_id'" in str(error)


def test_missing_community_code_column(tmp_path: Path) -> None:
    communities = district_layers()["communities"].drop(columns="community_code")
    error = district_error(gpkg_with(tmp_path, communities=communities))
    assert (error.layer, error.field) == ("communities", "community_code")
    assert "columns present: name" in str(error)


def test_empty_layer(tmp_path: Path) -> None:
    error = district_error(gpkg_with(tmp_path, buildings=district_layers()["buildings"].iloc[:0]))
    assert error.layer == "buildings"
    assert "has no features" in str(error)


def test_missing_crs(tmp_path: Path) -> None:
    buildings = district_layers()["buildings"].set_crs(None, allow_override=True)
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert error.layer == "buildings"
    assert "has no CRS; declare one, e.g. EPSG:4326" in str(error)


def test_mixed_geometry_types_name_the_first_odd_row(tmp_path: Path) -> None:
    buildings = district_layers()["buildings"]
    buildings.loc[1, "geometry"] = Point(X0 + 55, Y0 + 15)
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.row, error.field) == ("buildings", 1, "geometry")
    assert "mixed geometry types: a Point among polygon features" in str(error)


def test_buildings_must_be_polygons(tmp_path: Path) -> None:
    buildings = district_layers()["buildings"]
    buildings["geometry"] = buildings.geometry.centroid
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.row) == ("buildings", 0)
    assert "features must be polygons, found Point" in str(error)


def test_self_touching_polygon_is_repaired_with_a_warning(tmp_path: Path) -> None:
    # a ring touching itself at (25, 40): invalid, but make_valid keeps the same area
    ring = [(10, 10), (30, 10), (30, 40), (25, 40), (26, 41), (24, 41), (25, 40), (10, 40)]
    buildings = district_layers()["buildings"]
    buildings.loc[0, "geometry"] = Polygon([(X0 + x, Y0 + y) for x, y in ring])
    assert not buildings.geometry.iloc[0].is_valid
    with pytest.warns(
        GeometryRepairedWarning, match=r"layer buildings: repaired 1 invalid geometries \(rows 0\)"
    ):
        district = read_district(gpkg_with(tmp_path, buildings=buildings))
    assert district.buildings.geometry.is_valid.all()
    assert district.buildings["households"].iloc[0] == 40


def test_bowtie_cannot_be_repaired(tmp_path: Path) -> None:
    bowtie = [(50, 10), (65, 30), (65, 10), (50, 30)]
    buildings = district_layers()["buildings"]
    buildings.loc[1, "geometry"] = Polygon([(X0 + x, Y0 + y) for x, y in bowtie])
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.row, error.field) == ("buildings", 1, "geometry")
    assert "invalid geometry (Self-intersection" in str(error)


@pytest.mark.parametrize("empty", [None, Polygon()])
def test_null_or_empty_geometry_names_the_row(tmp_path: Path, empty: Polygon | None) -> None:
    buildings = district_layers()["buildings"]
    buildings.loc[2, "geometry"] = empty
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.row, error.field) == ("buildings", 2, "geometry")
    assert "geometry is null or empty" in str(error)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "households must be a number, got 'abc'"),
        ("-3", "households must be 0 or more, got -3"),
        ("2.5", "households must be a whole number, got 2.5"),
    ],
)
def test_bad_households_name_row_and_field(tmp_path: Path, value: str, message: str) -> None:
    buildings = buildings_with("households", ["40", None, value])
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.row, error.field) == ("buildings", 2, "households")
    assert message in str(error)
    assert "row 2, field 'households'" in str(error)


def test_numeric_negative_households(tmp_path: Path) -> None:
    error = district_error(gpkg_with(tmp_path, buildings=buildings_with("households", [40, -3, 1])))
    assert (error.row, error.field) == (1, "households")


def test_bad_floors(tmp_path: Path) -> None:
    error = district_error(gpkg_with(tmp_path, buildings=buildings_with("floors", [6, 0, 10])))
    assert (error.row, error.field) == (1, "floors")


def test_duplicate_building_id_names_both_rows(tmp_path: Path) -> None:
    error = district_error(gpkg_with(tmp_path, buildings=buildings_with("building_id", ["b1", "b2", "b1"])))
    assert (error.layer, error.row, error.field) == ("buildings", 2, "building_id")
    assert "duplicate building_id 'b1' in rows 0 and 2" in str(error)


def test_duplicate_community_code(tmp_path: Path) -> None:
    communities = district_layers()["communities"]
    communities["community_code"] = [CODE_A, CODE_A]
    error = district_error(gpkg_with(tmp_path, communities=communities))
    assert (error.layer, error.row, error.field) == ("communities", 1, "community_code")
    assert "duplicate community_code" in str(error)


@pytest.mark.parametrize("code", ["32050800100", "3205080010011", "32050800100X"])
def test_community_code_must_have_12_digits(tmp_path: Path, code: str) -> None:
    communities = district_layers()["communities"]
    communities["community_code"] = [CODE_A, code]
    error = district_error(gpkg_with(tmp_path, communities=communities))
    assert (error.layer, error.row, error.field) == ("communities", 1, "community_code")
    assert "is not a 12-digit administrative division code" in str(error)


def test_building_code_must_have_12_digits(tmp_path: Path) -> None:
    buildings = buildings_with("community_code", [CODE_A, "1234", CODE_B])
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert (error.layer, error.row, error.field) == ("buildings", 1, "community_code")


def test_buildings_outside_every_community_are_listed(tmp_path: Path) -> None:
    layers = district_layers()
    outside = gpd.GeoDataFrame(
        {"building_id": [f"out{i:02d}" for i in range(12)], "households": [5] * 12},
        geometry=[rect(500 + 20 * i, 500, 10, 10) for i in range(12)],
        crs=CRS,
    )
    buildings = pd.concat([layers["buildings"], outside], ignore_index=True)
    error = district_error(gpkg_with(tmp_path, buildings=buildings))
    assert error.layer == "buildings"
    text = str(error)
    assert "12 buildings lie outside every community: out00, out01" in text
    assert "out09" in text and "out10" not in text


# ------------------------------------------------------------------------------------------------ register


def register_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "building_id": ["b1", "zz9", "b2", "yy8"],
            "households": [44, 3, 12, 7],
            "floors": [None, None, 4, None],
            "备注": ["一号楼", "", "二号楼", ""],
        }
    )


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_register_csv_reports_unmatched_rows(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "register.csv"
    register_frame().to_csv(path, index=False, encoding=encoding)
    district = read_district(gpkg_with(tmp_path))
    buildings, report = read_register(path, district.buildings)
    assert report == RegisterReport(matched=2, unmatched_rows=(3, 5), unmatched_ids=("zz9", "yy8"))
    assert buildings["households"].tolist() == [44, 12, 100]
    assert buildings["households"].dtype == np.int64
    assert buildings["households_estimated"].tolist() == [False, False, False]
    assert buildings["floors"].tolist() == [6, 4, 10]
    assert district.buildings["households"].tolist() == [40, 10, 100]  # input untouched


def test_register_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "register.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["building_id", "households"])
    for row in (["b3", 120], [102, 5], ["b2", 9]):
        sheet.append(row)
    workbook.save(path)
    district = read_district(gpkg_with(tmp_path))
    buildings, report = read_register(path, district.buildings)
    assert report == RegisterReport(matched=2, unmatched_rows=(3,), unmatched_ids=("102",))
    assert buildings["households"].tolist() == [40, 9, 120]


def test_read_district_applies_register(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "register.csv"
    register_frame().to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="gis.io"):
        district = read_district(gpkg_with(tmp_path), register=path)
    assert district.buildings["households"].tolist() == [44, 12, 100]
    assert "2 register rows name no known building (rows 3, 5)" in caplog.text


def test_register_bad_number_names_spreadsheet_row(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text("building_id,households\nb1,4\nb2,many\n", encoding="utf-8")
    with pytest.raises(DistrictError) as info:
        read_register(path, read_district(gpkg_with(tmp_path)).buildings)
    assert (info.value.file, info.value.row, info.value.field) == (str(path), 3, "households")
    assert "households must be a number, got 'many'" in str(info.value)


def test_register_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text("building_id,hh\nb1,4\n", encoding="utf-8")
    with pytest.raises(DistrictError, match="missing required column 'households'"):
        read_register(path, read_district(gpkg_with(tmp_path)).buildings)


def test_register_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DistrictError, match="file not found"):
        read_register(tmp_path / "none.csv", read_district(gpkg_with(tmp_path)).buildings)


# ------------------------------------------------------------------------------------------------- writing


def test_write_layers_writes_feature_layers_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "out.gpkg"
    layers = district_layers()
    table = pd.DataFrame({"key": ["a", "b"], "flag": [True, False], "n": [1, 2]})
    write_layers(path, {"buildings": layers["buildings"], "table": table})
    assert sorted(str(row[0]) for row in pyogrio.list_layers(path)) == ["buildings", "table"]
    back = pyogrio.read_dataframe(path, layer="table", read_geometry=False)
    assert back["flag"].tolist() == [True, False]
    assert list(tmp_path.iterdir()) == [path]


def test_write_layers_failure_leaves_old_file_untouched(tmp_path: Path) -> None:
    path = write_gpkg(tmp_path / "plan.gpkg", {"buildings": district_layers()["buildings"]})
    before = path.read_bytes()
    good = district_layers()["communities"]
    bad = good.assign(value=np.array([1 + 2j, 3j]))  # complex numbers have no GeoPackage field type
    with pytest.raises(NotImplementedError):
        write_layers(path, {"good": good, "bad": bad})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def tiny_plan() -> GridPlan:
    grids = gpd.GeoDataFrame(
        {
            "grid_code": ["320508001001001"],
            "community_code": [CODE_A],
            "households": [50],
            "buildings": [2],
            "status": ["community_too_small"],
            "note": [None],
        },
        geometry=[rect(0, 0, 200, 200)],
        crs=CRS,
    )
    microgrids = gpd.GeoDataFrame(
        {
            "microgrid_code": ["32050800100100101"],
            "grid_code": ["320508001001001"],
            "households": [50],
            "status": ["ok"],
            "note": ["hand-drawn"],
        },
        geometry=[rect(0, 0, 200, 200)],
        crs=CRS,
    )
    units = gpd.GeoDataFrame(
        {
            "building_id": ["b1", "b2", "b2"],
            "unit": [0, 1, 1],
            "floor_from": pd.array([None, 1, 4], dtype="Int64"),
            "floor_to": pd.array([None, 3, 6], dtype="Int64"),
            "households": [40, 5, 5],
            "grid_code": ["320508001001001"] * 3,
            "microgrid_code": ["32050800100100101"] * 3,
        },
        geometry=[rect(10, 10, 20, 30), rect(50, 10, 15, 20), rect(50, 10, 15, 20)],
        crs=CRS,
    )
    report = pd.DataFrame({"community_code": [CODE_A, "overall"], "grids": [1, 1], "ok_share": [0.0, 0.0]})
    rules = GridRules(
        grid_min=200,
        grid_max=400,
        micro_min=40,
        micro_max=90,
        m2_per_household=75.5,
        seed=7,
        straighten_boundaries=False,
    )
    return GridPlan(grids, microgrids, units, report, rules)


def test_plan_round_trip(tmp_path: Path) -> None:
    plan = tiny_plan()
    path = tmp_path / "plan.gpkg"
    write_plan(plan, path)
    back = read_plan(path)
    assert back.rules == plan.rules
    assert back.crs == plan.crs
    units = back.building_units
    assert units["unit"].dtype == np.int64
    assert units["households"].dtype == np.int64
    assert str(units["floor_from"].dtype) == "Int64"
    assert units["floor_from"].tolist() == [pd.NA, 1, 4]
    assert units["floor_to"].tolist() == [pd.NA, 3, 6]
    assert units["microgrid_code"].tolist() == ["32050800100100101"] * 3
    assert back.grids["households"].dtype == np.int64
    assert back.grids["note"].tolist() == [None]
    assert back.microgrids["note"].tolist() == ["hand-drawn"]
    assert back.report["community_code"].tolist() == [CODE_A, "overall"]
    assert back.grids.geometry.area.iloc[0] == pytest.approx(40000.0)


def test_read_plan_without_rules_layer_uses_defaults(tmp_path: Path) -> None:
    plan = tiny_plan()
    path = tmp_path / "plan.gpkg"
    layers = {"grids": plan.grids, "microgrids": plan.microgrids, "building_units": plan.building_units}
    write_layers(path, {**layers, "report": plan.report})
    assert read_plan(path).rules == GridRules()


def test_read_plan_names_missing_layer(tmp_path: Path) -> None:
    plan = tiny_plan()
    path = tmp_path / "plan.gpkg"
    write_layers(path, {"grids": plan.grids, "report": plan.report})
    with pytest.raises(PlanError, match=r"plan\.gpkg: missing layer\(s\) microgrids, building_units"):
        read_plan(path)


def test_read_plan_names_missing_column(tmp_path: Path) -> None:
    plan = tiny_plan()
    path = tmp_path / "plan.gpkg"
    layers = {
        "grids": plan.grids.drop(columns="status"),
        "microgrids": plan.microgrids,
        "building_units": plan.building_units,
        "report": plan.report,
    }
    write_layers(path, layers)
    with pytest.raises(PlanError, match=r"plan\.gpkg: layer grids lacks column\(s\) status"):
        read_plan(path)


def test_read_plan_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="file not found"):
        read_plan(tmp_path / "none.gpkg")


def test_register_duplicate_id_names_both_rows(tmp_path: Path) -> None:
    path = tmp_path / "register.csv"
    path.write_text("building_id,households\nb1,4\nb2,5\nb1,6\n", encoding="utf-8")
    with pytest.raises(DistrictError, match="duplicate building_id 'b1' in rows 2 and 4"):
        read_register(path, read_district(gpkg_with(tmp_path)).buildings)
