"""Map-side scores on hand-placed flags: matches, duplicates, false alarms, misses, RMS error and bad truth."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from gis.io import write_layers
from tests.vision.test_flags import _flag
from vision.flags import flags_frame, write_flags
from vision.metrics_geo import MATCH_M, CategoryScore, GeoScores, TruthError, pool, score, score_files

UTM51 = "EPSG:32651"
X0, Y0 = 300_000.0, 3_465_000.0


def _truth() -> gpd.GeoDataFrame:
    boxes = [shapely.box(X0 + x - 1, Y0 - 1, X0 + x + 1, Y0 + 1) for x in (0.0, 50.0, 100.0, 150.0)]
    frame = gpd.GeoDataFrame(
        {"object_id": ["A", "B", "C", "D"], "category_code": ["0505", "0505", "0505", "0101"]}
        | {"violation": [True, True, False, True]},
        geometry=boxes,
        crs=UTM51,
    )
    return frame.to_crs("EPSG:4326")


def _flags(points: list[tuple[str, float, float]]) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {"category_code": [code for code, _, _ in points]},
        geometry=[shapely.Point(X0 + x, Y0 + y) for _, x, y in points],
        crs=UTM51,
    )
    return frame.to_crs("EPSG:4326")


def test_matches_duplicates_false_alarms_and_misses() -> None:
    flags = _flags(
        [
            ("0505", 1.5, 0.0),  # A, 1.5 m from its centre: true positive
            ("0505", 0.0, 3.0),  # A again: duplicate
            ("0505", 100.0, 0.0),  # C is no violation: false alarm
            ("0101", 150.0, 2.0),  # D, 2 m off: true positive
            ("0102", 500.0, 0.0),  # nothing of that category: false alarm
        ]
    )
    scores = {c.category_code: c for c in score(flags, _truth()).categories}
    cars = scores["0505"]
    assert (cars.truth, cars.flags, cars.true_positives, cars.duplicates, cars.false_alarms) == (
        2,
        3,
        1,
        1,
        1,
    )
    assert cars.precision == pytest.approx(1 / 3) and cars.recall == pytest.approx(1 / 2)
    assert cars.rms_m == pytest.approx(1.5, abs=1e-3) and cars.duplicate_rate == pytest.approx(1 / 3)
    assert scores["0101"].rms_m == pytest.approx(2.0, abs=1e-3) and scores["0101"].recall == 1.0
    assert (
        scores["0102"].truth == 0 and math.isnan(scores["0102"].recall) and scores["0102"].false_alarms == 1
    )
    overall = score(flags, _truth()).overall
    assert overall.rms_m == pytest.approx(math.sqrt((1.5**2 + 2.0**2) / 2), abs=1e-3)
    assert (overall.true_positives, overall.flags, overall.truth) == (2, 5, 3)


def test_each_object_matches_one_flag_however_the_flags_are_ordered() -> None:
    flags = _flags([("0505", 0.0, 2.5), ("0505", 0.5, 0.0), ("0505", 50.0, 0.5)])
    cars = {c.category_code: c for c in score(flags, _truth()).categories}["0505"]
    assert (cars.true_positives, cars.duplicates) == (2, 1)
    assert cars.rms_m == pytest.approx(0.5, abs=1e-3)


def test_no_flags_means_zero_recall() -> None:
    scores = score(_flags([]), _truth())
    assert all(c.recall == 0.0 and c.flags == 0 for c in scores.categories)
    assert "0505" in scores.table() and "all" in scores.table()


def test_scores_files_written_by_the_flag_writer(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.gpkg"
    write_layers(truth_path, {"objects": _truth()})
    lon, lat = _truth().geometry.iloc[0].centroid.coords[0]
    flags_path = tmp_path / "flags.gpkg"
    write_flags([_flag(lon_deg=lon, lat_deg=lat)], flags_path)
    scores = score_files(flags_path, truth_path)
    assert scores.overall.true_positives == 1 and scores.overall.rms_m < 0.01
    assert len(flags_frame([])) == 0


def test_bad_truth_is_named(tmp_path: Path) -> None:
    write_flags([_flag()], tmp_path / "f.gpkg")
    with pytest.raises(TruthError, match="not found"):
        score_files(tmp_path / "f.gpkg", tmp_path / "absent.gpkg")
    wrong_layer = tmp_path / "wrong.gpkg"
    write_layers(wrong_layer, {"things": _truth()})
    with pytest.raises(TruthError, match=r"no layer 'objects'; layers present: \['things'\]"):
        score_files(tmp_path / "f.gpkg", wrong_layer)
    no_column = tmp_path / "nocol.gpkg"
    write_layers(no_column, {"objects": _truth().drop(columns="violation")})
    with pytest.raises(TruthError, match="lacks column"):
        score_files(tmp_path / "f.gpkg", no_column)


def test_pooled_scores_add_up_the_counts_of_each_category() -> None:
    first = GeoScores((CategoryScore("0505", 3, 4, 3, 1, 0, (0.25,)),), MATCH_M)
    second = GeoScores(
        (CategoryScore("0505", 2, 1, 1, 0, 0, (1.0,)), CategoryScore("0101", 1, 0, 0, 0, 0, ())), MATCH_M
    )
    pooled = pool([first, second])
    assert [c.category_code for c in pooled.categories] == ["0101", "0505"]
    car = pooled.categories[1]
    assert (car.truth, car.flags, car.true_positives, car.duplicates) == (5, 5, 4, 1)
    assert car.precision == pytest.approx(0.8) and car.rms_m == pytest.approx((1.25 / 2) ** 0.5)
    assert pooled.overall.truth == 6
