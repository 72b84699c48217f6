"""Flags against ground truth on the map: precision and recall per category, geolocation error, duplicates.

The truth is the simulator's ``truth.gpkg`` (layer ``objects``: footprint polygons, ``category_code``,
``violation``). The positives are the truth objects that are violations. Per category, flags are matched
one-to-one to those objects by the Hungarian method on the distance from the flag's point to the object's
footprint, within ``match_m``. A matched flag is a true positive; an unmatched flag within ``match_m`` of an
already matched violation of its category is a **duplicate** (the same object flagged twice); any other
unmatched flag is a false alarm. Duplicates count against precision too. The geolocation error of a true
positive is the distance from its point to the object's footprint centroid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
from scipy.optimize import linear_sum_assignment

from gis.crs import local_metric_crs
from gis.io import gpkg_layers
from vision.flags import read_flags_frame

TRUTH_LAYER = "objects"
MATCH_M = 3.0


class TruthError(ValueError):
    """The ground truth file is unusable; the message names the file, layer and column."""


@dataclass(frozen=True)
class CategoryScore:
    """Scores of one category: counts, precision, recall, geolocation RMS error and duplicate rate."""

    category_code: str
    truth: int
    flags: int
    true_positives: int
    duplicates: int
    false_alarms: int
    squared_errors_m2: tuple[float, ...]

    @property
    def precision(self) -> float:
        return self.true_positives / self.flags if self.flags else math.nan

    @property
    def recall(self) -> float:
        return self.true_positives / self.truth if self.truth else math.nan

    @property
    def rms_m(self) -> float:
        return math.sqrt(float(np.mean(self.squared_errors_m2))) if self.squared_errors_m2 else math.nan

    @property
    def duplicate_rate(self) -> float:
        return self.duplicates / self.flags if self.flags else math.nan


@dataclass(frozen=True)
class GeoScores:
    """Scores per category and over all categories (pooled counts)."""

    categories: tuple[CategoryScore, ...]
    match_m: float

    @property
    def overall(self) -> CategoryScore:
        return _sum("all", self.categories)

    def table(self) -> str:
        """A plain-text table, one row per category plus the overall row."""
        header = f"{'category':>9} {'truth':>6} {'flags':>6} {'TP':>5} {'dup':>4} {'FA':>4} {'precision':>9} {'recall':>7} {'RMS m':>6} {'dup %':>6}"
        rows = [header, *(_row(c) for c in (*self.categories, self.overall))]
        return "\n".join(rows)


def pool(scores: Sequence[GeoScores]) -> GeoScores:
    """Several runs' scores as one: counts and errors added up per category (small patrols hold few objects
    of a category each, so per-category rates are read over several)."""
    by_code: dict[str, list[CategoryScore]] = {}
    for run in scores:
        for category in run.categories:
            by_code.setdefault(category.category_code, []).append(category)
    pooled = tuple(_sum(code, parts) for code, parts in sorted(by_code.items()))
    return GeoScores(pooled, scores[0].match_m if scores else MATCH_M)


def _sum(code: str, parts: Sequence[CategoryScore]) -> CategoryScore:
    return CategoryScore(
        code,
        sum(p.truth for p in parts),
        sum(p.flags for p in parts),
        sum(p.true_positives for p in parts),
        sum(p.duplicates for p in parts),
        sum(p.false_alarms for p in parts),
        tuple(e for p in parts for e in p.squared_errors_m2),
    )


def _row(score: CategoryScore) -> str:
    return (
        f"{score.category_code:>9} {score.truth:>6} {score.flags:>6} {score.true_positives:>5} "
        f"{score.duplicates:>4} {score.false_alarms:>4} {score.precision:>9.1%} {score.recall:>7.1%} "
        f"{score.rms_m:>6.2f} {score.duplicate_rate:>6.1%}"
    )


def read_truth(path: Path) -> gpd.GeoDataFrame:
    """The ``objects`` layer of a truth GeoPackage.

    Raises:
        TruthError: the file is missing or unreadable, or the layer or a column is missing.
    """
    layers = gpkg_layers(path, TruthError, what="truth file")
    if TRUTH_LAYER not in layers:
        raise TruthError(f"{path}: no layer {TRUTH_LAYER!r}; layers present: {sorted(layers)}")
    frame = gpd.read_file(path, layer=TRUTH_LAYER, engine="pyogrio")
    missing = [c for c in ("category_code", "violation") if c not in frame.columns]
    if missing:
        raise TruthError(f"{path}: layer {TRUTH_LAYER} lacks column(s) {', '.join(missing)}")
    return frame


def score_files(flags_path: Path, truth_path: Path, *, match_m: float = MATCH_M) -> GeoScores:
    """:func:`score` on a flags GeoPackage and a truth GeoPackage."""
    return score(read_flags_frame(flags_path), read_truth(truth_path), match_m=match_m)


def score(flags: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, *, match_m: float = MATCH_M) -> GeoScores:
    """Score ``flags`` (points with ``category_code``) against ``truth`` (footprints with ``category_code`` and
    ``violation``), in a local metric CRS of the truth."""
    crs = local_metric_crs(truth)
    flags_m, truth_m = flags.to_crs(crs), truth.to_crs(crs)
    violations = truth_m[truth_m["violation"].astype(bool)]
    codes = sorted({*violations["category_code"].astype(str), *flags_m["category_code"].astype(str)})
    return GeoScores(tuple(_score_category(code, flags_m, violations, match_m) for code in codes), match_m)


def _score_category(
    code: str, flags: gpd.GeoDataFrame, truth: gpd.GeoDataFrame, match_m: float
) -> CategoryScore:
    points = flags.geometry[flags["category_code"].astype(str) == code].to_numpy()
    objects = truth.geometry[truth["category_code"].astype(str) == code].to_numpy()
    if not len(points) or not len(objects):
        return CategoryScore(code, len(objects), len(points), 0, 0, len(points), ())
    distances = np.array([[p.distance(o) for o in objects] for p in points])
    cost = np.where(distances <= match_m, distances, 1e9)
    rows, columns = linear_sum_assignment(cost)
    matched = [(r, c) for r, c in zip(rows, columns, strict=True) if cost[r, c] < 1e9]
    matched_flags, matched_objects = {r for r, _ in matched}, [c for _, c in matched]
    unmatched = [r for r in range(len(points)) if r not in matched_flags]
    near_matched = (
        distances[:, matched_objects] <= match_m if matched_objects else np.zeros((len(points), 0), bool)
    )
    duplicates = sum(1 for r in unmatched if near_matched[r].any())
    errors = tuple(float(points[r].distance(objects[c].centroid)) ** 2 for r, c in matched)
    return CategoryScore(
        code, len(objects), len(points), len(matched), duplicates, len(unmatched) - duplicates, errors
    )
