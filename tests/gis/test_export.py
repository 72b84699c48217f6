"""Tests of gis.export: GeoJSON, Shapefile, roster CSV, offline HTML map and print maps."""

from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import folium
import geopandas as gpd
import pandas as pd
import pytest
from matplotlib.text import Text
from PIL import Image
from shapely.geometry import box

from gis import export
from gis.errors import GisError, PlanError
from gis.model import District, GridPlan

CRS = "EPSG:32651"  # WGS 84 / UTM zone 51N: Shanghai
X0, Y0 = 350_000.0, 3_450_000.0
COMMUNITY = "310101001001"
COMMUNITY_NAME = "南京东路社区"
GRID_CODES = [f"{COMMUNITY}-01", f"{COMMUNITY}-02"]
NOTE = "超出范围，待调整"
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def _grids() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "grid_code": GRID_CODES,
            "community_code": [COMMUNITY] * 2,
            "households": [360, 620],
            "buildings": [3, 3],
            "status": ["ok", "community_infeasible"],
            "note": ["", NOTE],
        },
        geometry=[box(X0, Y0, X0 + 200, Y0 + 400), box(X0 + 200, Y0, X0 + 400, Y0 + 400)],
        crs=CRS,
    )


def _microgrids() -> gpd.GeoDataFrame:
    rows = [
        {
            "microgrid_code": f"{GRID_CODES[g]}-0{m + 1}",
            "grid_code": GRID_CODES[g],
            "households": (120, 240, 206, 414)[2 * g + m],
            "status": "ok",
            "note": "楼栋长 张三",
        }
        for g in range(2)
        for m in range(2)
    ]
    geometry = [
        box(X0 + 200 * g, Y0 + 200 * m, X0 + 200 * g + 200, Y0 + 200 * m + 200)
        for g in range(2)
        for m in range(2)
    ]
    return gpd.GeoDataFrame(rows, geometry=geometry, crs=CRS)


def _units() -> gpd.GeoDataFrame:
    rows, geometry = [], []
    for i in range(6):
        grid, row = divmod(i, 3)
        rows.append(
            {
                "building_id": f"B{i}",
                "unit": 0,
                "floor_from": pd.NA,
                "floor_to": pd.NA,
                "households": (120, 120, 120, 206, 207, 207)[i],
                "grid_code": GRID_CODES[grid],
                "microgrid_code": f"{GRID_CODES[grid]}-0{min(row, 1) + 1}",
            }
        )
        left, bottom = X0 + 200 * grid + 20 + 50 * row, Y0 + 30 + 120 * row
        geometry.append(box(left, bottom, left + 40, bottom + 60))
    units = gpd.GeoDataFrame(rows, geometry=geometry, crs=CRS)
    return units.astype({"floor_from": "Int64", "floor_to": "Int64"})


@pytest.fixture
def plan() -> GridPlan:
    """A community square split into 2 grids of 2 micro-grids each, with 6 building units."""
    return GridPlan(_grids(), _microgrids(), _units(), pd.DataFrame({"community_code": ["overall"]}))


@pytest.fixture
def district() -> District:
    """The plan's community with a 4 x 8 block of buildings."""
    rows, geometry = [], []
    for i in range(8):
        for j in range(4):
            rows.append(
                {
                    "building_id": f"D{i}{j}",
                    "households": 30,
                    "households_estimated": False,
                    "floors": 6,
                    "units": 2,
                    "compound_id": None,
                    "community_code": COMMUNITY,
                }
            )
            geometry.append(box(X0 + 10 + 50 * i, Y0 + 10 + 100 * j, X0 + 40 + 50 * i, Y0 + 60 + 100 * j))
    buildings = gpd.GeoDataFrame(rows, geometry=geometry, crs=CRS).astype(
        {"floors": "Int64", "units": "Int64"}
    )
    communities = gpd.GeoDataFrame(
        {"community_code": [COMMUNITY], "name": [COMMUNITY_NAME]},
        geometry=[box(X0, Y0, X0 + 400, Y0 + 400)],
        crs=CRS,
    )
    return District(buildings, communities)


def _page_count(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![A-Za-z])", pdf.read_bytes()))


def _leftovers(folder: Path) -> list[str]:
    """Names of temporary files or folders left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------------------------------------
# GeoJSON


def test_geojson_is_wgs84_with_all_features(plan: GridPlan, tmp_path: Path) -> None:
    paths = export.export_geojson(plan, tmp_path / "out")
    assert [p.name for p in paths] == ["grids.geojson", "microgrids.geojson", "building_units.geojson"]
    counts = {}
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["type"] == "FeatureCollection"
        assert "crs" not in data  # RFC 7946: WGS 84 implied
        counts[path.stem] = len(data["features"])
        for feature in data["features"]:
            for lon, lat in feature["geometry"]["coordinates"][0]:
                assert 120.0 < lon < 122.5
                assert 30.5 < lat < 31.8
    assert counts == {"grids": 2, "microgrids": 4, "building_units": 6}


def test_geojson_keeps_codes_and_chinese_text(plan: GridPlan, tmp_path: Path) -> None:
    export.export_geojson(plan, tmp_path)
    grids = json.loads((tmp_path / "grids.geojson").read_text(encoding="utf-8"))
    assert [f["properties"]["grid_code"] for f in grids["features"]] == GRID_CODES
    assert grids["features"][1]["properties"]["note"] == NOTE


# ---------------------------------------------------------------------------------------------------------
# Shapefile


def test_shapefile_reads_back_with_chinese_text(plan: GridPlan, tmp_path: Path) -> None:
    paths = export.export_shapefile(plan, tmp_path)
    assert [p.name for p in paths] == ["grids.shp", "microgrids.shp", "building_units.shp"]
    for path in paths:
        for suffix in (".shx", ".dbf", ".prj"):
            assert path.with_suffix(suffix).exists()
        assert path.with_suffix(".cpg").read_text(encoding="ascii") == "UTF-8"
    grids = gpd.read_file(paths[0])
    assert grids.crs.to_epsg() == 32651
    assert list(grids["grid_code"]) == GRID_CODES
    assert grids.loc[1, "note"] == NOTE
    assert list(grids["comm_code"]) == [COMMUNITY] * 2
    micro = gpd.read_file(paths[1])
    assert list(micro["mgrid_code"]) == list(plan.microgrids["microgrid_code"])
    assert set(micro["note"]) == {"楼栋长 张三"}
    units = gpd.read_file(paths[2])
    assert list(units["bldg_id"]) == list(plan.building_units["building_id"])
    assert int(units["households"].sum()) == int(plan.building_units["households"].sum())


def test_shapefile_writes_empty_layers(plan: GridPlan, tmp_path: Path) -> None:
    empty = GridPlan(plan.grids, plan.microgrids.iloc[0:0], plan.building_units.iloc[0:0], plan.report)
    paths = export.export_shapefile(empty, tmp_path)
    assert len(gpd.read_file(paths[1])) == 0


def test_dbf_names_are_short_and_unique() -> None:
    columns = ["microgrid_code", "households", "a_very_long_name_1", "a_very_long_name_2", "geometry"]
    mapping = export._dbf_names(columns)
    assert mapping["microgrid_code"] == "mgrid_code"
    assert "households" not in mapping  # already short enough
    assert "geometry" not in mapping
    long_names = [mapping["a_very_long_name_1"], mapping["a_very_long_name_2"]]
    assert all(len(name) <= 10 for name in long_names)
    assert len(set(long_names)) == 2


# ---------------------------------------------------------------------------------------------------------
# Roster


def test_roster_has_one_row_per_unit(plan: GridPlan, tmp_path: Path) -> None:
    path = export.export_roster(plan, tmp_path / "roster.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM, for Excel
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(export.ROSTER_COLUMNS)
    assert len(rows) == len(plan.building_units)
    assert sum(int(r["households"]) for r in rows) == int(plan.building_units["households"].sum())
    assert {r["community_code"] for r in rows} == {COMMUNITY}
    assert rows[0]["floor_from"] == ""


def test_roster_names_communities(plan: GridPlan, district: District, tmp_path: Path) -> None:
    path = export.export_roster(plan, tmp_path / "roster.csv", district)
    roster = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert list(roster.columns) == [*export.ROSTER_COLUMNS, "community_name"]
    assert set(roster["community_name"]) == {COMMUNITY_NAME}


# ---------------------------------------------------------------------------------------------------------
# HTML map

_REMOTE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.IGNORECASE)


def test_html_map_is_offline_and_complete(plan: GridPlan, district: District, tmp_path: Path) -> None:
    path = export.export_html_map(plan, tmp_path / "map.html", district, title="测试 网格图")
    page = path.read_text(encoding="utf-8")
    assert not _REMOTE.search(page)
    assert not re.search(r"<(?:script|link)\b[^>]*\b(?:src|href)=", page)  # nothing external at all
    assert "Leaflet 1.9.4" in page
    assert "L.map(" in page
    assert "sourceMappingURL" not in page
    assert "url(images/" not in page  # Leaflet's images are data URIs
    for code in [*GRID_CODES, *plan.microgrids["microgrid_code"]]:
        assert code in page
    assert "<title>测试 网格图</title>" in page
    for word in ("网格", "微网格", "户数", "状态"):
        assert word in page
    assert export.ALERT_COLOUR in page  # the second grid is outside its range
    assert "L.control.layers" in page


def test_html_map_without_district_or_microgrids(plan: GridPlan, tmp_path: Path) -> None:
    bare = GridPlan(plan.grids, plan.microgrids.iloc[0:0], plan.building_units, plan.report)
    page = export.export_html_map(bare, tmp_path / "map.html").read_text(encoding="utf-8")
    assert all(code in page for code in GRID_CODES)
    assert "Buildings" not in page


def test_html_map_rounds_coordinates(plan: GridPlan, tmp_path: Path) -> None:
    page = export.export_html_map(plan, tmp_path / "map.html").read_text(encoding="utf-8")
    data = page[page.index('"coordinates"') :][:400]
    assert not re.search(r"\d\.\d{7,}", data)


def test_grid_colours_differ_between_touching_grids() -> None:
    cells = [box(x, y, x + 1, y + 1) for y in range(3) for x in range(3)]
    grids = gpd.GeoDataFrame({"grid_code": [f"g{i}" for i in range(9)]}, geometry=cells, crs=CRS)
    colours = export.grid_colours(grids)
    assert set(colours) == set(grids["grid_code"])
    for i, a in enumerate(cells):
        for j, b in enumerate(cells):
            if i < j and a.intersects(b):
                assert colours[f"g{i}"] != colours[f"g{j}"]


# ---------------------------------------------------------------------------------------------------------
# Print maps


def test_print_pdf_has_one_page_per_grid(plan: GridPlan, district: District, tmp_path: Path) -> None:
    paths = export.export_print_maps(plan, tmp_path, district)
    assert paths == [tmp_path / "grids.pdf"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    assert _page_count(paths[0]) == 2
    one = export.export_print_maps(plan, tmp_path / "one", grid_codes=GRID_CODES[1:])
    assert _page_count(one[0]) == 1


def test_print_png_is_a4_portrait_at_300_dpi(plan: GridPlan, district: District, tmp_path: Path) -> None:
    paths = export.export_print_maps(plan, tmp_path, district, fmt="png")
    assert [p.name for p in paths] == [f"{code}.png" for code in GRID_CODES]
    for path in paths:
        with Image.open(path) as image:
            width, height = image.size
            assert height / width == pytest.approx(297 / 210, rel=0.005)
            assert width == pytest.approx(210 / 25.4 * 300, abs=2)


def test_print_maps_without_cjk_font_warn_and_use_english(
    plan: GridPlan, district: District, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "_find_cjk_font", lambda: None)
    drawn: list[str] = []
    original = export._grid_page

    def spy(scene: Any, text: Any, code: str) -> Any:
        figure = original(scene, text, code)
        drawn.extend(t.get_text() for t in figure.findobj(Text) if isinstance(t, Text))
        return figure

    monkeypatch.setattr(export, "_grid_page", spy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = export.export_print_maps(plan, tmp_path, district, fmt="png")
    assert all(p.exists() for p in paths)
    assert any(issubclass(w.category, export.CjkFontWarning) for w in caught)
    assert not [w for w in caught if "Glyph" in str(w.message)]  # no tofu boxes
    assert "Grid 310101001001-01" in drawn
    assert not [text for text in drawn if _CJK.search(text)]


def test_print_maps_with_cjk_font_draw_every_glyph(
    plan: GridPlan, district: District, tmp_path: Path
) -> None:
    if export._find_cjk_font() is None:
        pytest.skip("no CJK font installed (e.g. apt-get install fonts-wqy-microhei)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export.export_print_maps(plan, tmp_path, district, fmt="png", grid_codes=GRID_CODES[:1])
    assert not [
        w for w in caught if "Glyph" in str(w.message) or issubclass(w.category, export.CjkFontWarning)
    ]


def test_print_maps_reject_unknown_or_no_grids(plan: GridPlan, tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="nope"):
        export.export_print_maps(plan, tmp_path, grid_codes=["nope"])
    with pytest.raises(PlanError, match="no grid"):
        export.export_print_maps(plan, tmp_path, grid_codes=[])


def test_nice_length_picks_1_2_5() -> None:
    assert [export._nice_length(v) for v in (0.3, 7, 19, 45, 260, 1999)] == [1, 5, 10, 20, 200, 1000]


def test_register_cjk_files_adds_only_cjk_fonts() -> None:
    added: list[str] = []

    def add(path: str) -> None:
        if "broken" in path:
            raise RuntimeError("cannot load")
        added.append(path)

    paths = ["/f/DejaVuSans.ttf", "/f/wqy-microhei.ttc", "/f/NotoSansCJK-Regular.ttc", "/f/broken-wqy.ttf"]
    export._register_cjk_files(paths, add)
    assert added == ["/f/wqy-microhei.ttc", "/f/NotoSansCJK-Regular.ttc"]


# ---------------------------------------------------------------------------------------------------------
# Atomic writes


def test_failed_roster_keeps_old_file(
    plan: GridPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "roster.csv"
    target.write_text("old", encoding="utf-8")

    def half_write(self: pd.DataFrame, path: Path, **kwargs: Any) -> None:
        Path(path).write_text("building_id,un", encoding="utf-8")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_write)
    with pytest.raises(OSError, match="disk full"):
        export.export_roster(plan, target)
    assert target.read_text(encoding="utf-8") == "old"
    assert _leftovers(tmp_path) == []


def test_failed_geojson_leaves_no_file(
    plan: GridPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = gpd.GeoDataFrame.to_file

    def fail_on_units(self: gpd.GeoDataFrame, path: Path, **kwargs: Any) -> None:
        if Path(path).stem == "building_units":
            Path(path).write_text('{"type": "Feat', encoding="utf-8")
            raise OSError("disk full")
        original(self, path, **kwargs)

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", fail_on_units)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        export.export_geojson(plan, out)
    assert list(out.iterdir()) == []


def test_failed_print_leaves_no_pdf(plan: GridPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = export._grid_page
    calls: list[str] = []

    def fail_second(scene: Any, text: Any, code: str) -> Any:
        calls.append(code)
        if len(calls) == 2:
            raise RuntimeError("render failed")
        return original(scene, text, code)

    monkeypatch.setattr(export, "_grid_page", fail_second)
    formats: tuple[Literal["pdf", "png"], ...] = ("pdf", "png")
    for fmt in formats:
        calls.clear()
        with pytest.raises(RuntimeError, match="render failed"):
            export.export_print_maps(plan, tmp_path, fmt=fmt)
        assert list(tmp_path.iterdir()) == []


def test_failed_html_leaves_no_file(plan: GridPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def remote(figure: Any) -> None:
        figure.header.add_child(folium.Element('<script src="https://cdn.example/x.js"></script>'))

    monkeypatch.setattr(export, "_inline_leaflet", remote)
    with pytest.raises(GisError, match="network"):
        export.export_html_map(plan, tmp_path / "map.html")
    assert list(tmp_path.iterdir()) == []
