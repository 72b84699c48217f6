"""Map rules: which located objects are violations, of what category and severity, and in which grid.

Rules run on zone layers loaded like the district (GeoPackage layers ``parking``, ``fire_lanes``, ``green``,
``public_space``, optionally ``corridors``, plus the registered ``buildings``) in a local metric CRS:

- a car or motorbike with at least half its footprint in a parking bay is parked legally; otherwise inside a
  fire lane → ``vehicle_in_fire_lane`` (severity 3, the most severe), on green space → ``vehicle_on_green``
  (2), anywhere else → ``vehicle_outside_bay`` (1);
- a structure (shed, steel shack) whose footprint matches no registered building: on green space →
  ``structure_on_green`` (2), on public space → ``structure_on_public_space`` (2), on a building's roof →
  ``structure_on_roof`` (1), elsewhere → ``structure_unregistered`` (1);
- clutter or garbage in a fire lane → ``clutter_in_fire_lane`` (3), in public space → ``clutter_in_public_space``
  (1), in a corridor → ``clutter_in_corridor`` (1).

Each verdict names the rule that fired; the category comes from a :class:`vision.flags.CategoryScheme`. The grid
and micro-grid come from the published plan (:class:`PlanIndex`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from gis.io import gpkg_layers
from gis.model import GridPlan
from vision.flags import DEFAULT_SCHEME, Category, CategoryScheme

ZONE_LAYERS = ("parking", "fire_lanes", "green", "public_space")
OPTIONAL_ZONE_LAYERS = ("corridors",)
VEHICLES = frozenset({"car", "motorbike"})
STRUCTURES = frozenset({"shed", "steel_shack"})
CLUTTER = frozenset({"clutter", "garbage"})
#: a structure overlapping a registered footprint by this intersection-over-union is that building
MATCH_IOU = 0.5
#: a vehicle with at least this share of its footprint in a parking bay is parked legally
BAY_SHARE = 0.5
FLOOR_HEIGHT_M = 3.0


class ZonesError(ValueError):
    """A zones file is unusable; the message names the file and layer."""


@dataclass(frozen=True)
class Zones:
    """Zone polygons and registered buildings in one metric CRS (``crs``), each as one (multi)polygon union,
    plus the building footprints with their roof heights for geolocation."""

    crs: pyproj.CRS
    parking: BaseGeometry
    fire_lanes: BaseGeometry
    green: BaseGeometry
    public_space: BaseGeometry
    corridors: BaseGeometry
    buildings: gpd.GeoDataFrame  # polygons with ``height_m``, in ``crs``

    def __post_init__(self) -> None:
        if self.buildings.crs is None or pyproj.CRS.from_user_input(self.buildings.crs) != self.crs:
            raise ZonesError(f"buildings are in {self.buildings.crs}, zones in {self.crs}; use to_crs()")
        for name in (*ZONE_LAYERS, *OPTIONAL_ZONE_LAYERS):
            shapely.prepare(getattr(self, name))


def read_zones(path: Path, crs: pyproj.CRS) -> Zones:
    """Read the zone layers and ``buildings`` of a GeoPackage (as ``skygrid demo-district`` writes it) into ``crs``.

    Building heights come from ``height_m``, else ``floors`` × 3 m, else 0 (flat ground).

    Raises:
        ZonesError: the file is missing or unreadable, or a required zone layer is missing.
    """
    present = gpkg_layers(path, ZonesError, what="zones file")
    missing = [name for name in ZONE_LAYERS if name not in present]
    if missing:
        raise ZonesError(
            f"{path}: missing zone layer(s) {', '.join(missing)}; layers present: {sorted(present)}"
        )
    unions = {name: _union(path, name, crs) if name in present else shapely.Polygon() for name in _ALL_ZONES}
    buildings = _buildings(path, crs) if "buildings" in present else _no_buildings(crs)
    return Zones(crs=crs, buildings=buildings, **unions)


_ALL_ZONES = (*ZONE_LAYERS, *OPTIONAL_ZONE_LAYERS)


def _read_layer(path: Path, layer: str, crs: pyproj.CRS) -> gpd.GeoDataFrame:
    frame = gpd.read_file(path, layer=layer, engine="pyogrio")
    if frame.crs is None:
        raise ZonesError(f"{path}: layer {layer} has no CRS")
    result: gpd.GeoDataFrame = frame.to_crs(crs)
    return result


def _union(path: Path, layer: str, crs: pyproj.CRS) -> BaseGeometry:
    geometries = _read_layer(path, layer, crs).geometry.to_numpy()
    valid = shapely.make_valid(geometries[~shapely.is_missing(geometries)])
    union: BaseGeometry = shapely.union_all(valid)
    return union


def _buildings(path: Path, crs: pyproj.CRS) -> gpd.GeoDataFrame:
    frame = _read_layer(path, "buildings", crs)
    if "height_m" in frame.columns:
        heights = frame["height_m"].astype(float).fillna(0.0).to_numpy()
    elif "floors" in frame.columns:
        heights = frame["floors"].astype(float).fillna(0.0).to_numpy() * FLOOR_HEIGHT_M
    else:
        heights = np.zeros(len(frame))
    result = gpd.GeoDataFrame({"height_m": heights}, geometry=frame.geometry.to_numpy(), crs=crs)
    return result


def _no_buildings(crs: pyproj.CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"height_m": np.zeros(0)}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)


@dataclass(frozen=True)
class Verdict:
    """Why an object is a violation: the rule that fired, its severity (1–3) and the case category."""

    rule: str
    severity: int
    category: Category


def judge(
    class_name: str, footprint: BaseGeometry, zones: Zones, scheme: CategoryScheme = DEFAULT_SCHEME
) -> Verdict | None:
    """The verdict on one located object (footprint in the zones' CRS), or None when it breaks no rule.

    A vehicle is in a bay by the share of its footprint there; other containment is judged at the footprint's
    centroid, so an object straddling a zone edge counts where most of it stands.
    """
    category = scheme.category(class_name)
    if category is None:
        return None
    point = footprint.centroid
    if class_name in VEHICLES:
        found = _vehicle_rule(footprint, point, zones)
    elif class_name in STRUCTURES:
        found = _structure_rule(footprint, point, zones)
    elif class_name in CLUTTER:
        found = _clutter_rule(point, zones)
    else:
        found = ("mapped_class_seen", 1)
    return None if found is None else Verdict(found[0], found[1], category)


def _vehicle_rule(footprint: BaseGeometry, point: BaseGeometry, zones: Zones) -> tuple[str, int] | None:
    if footprint.area > 0 and footprint.intersection(zones.parking).area >= BAY_SHARE * footprint.area:
        return None
    if zones.fire_lanes.contains(point):
        return "vehicle_in_fire_lane", 3
    if zones.green.contains(point):
        return "vehicle_on_green", 2
    return "vehicle_outside_bay", 1


def _structure_rule(footprint: BaseGeometry, point: BaseGeometry, zones: Zones) -> tuple[str, int] | None:
    if _matches_building(footprint, zones.buildings):
        return None
    if zones.green.contains(point):
        return "structure_on_green", 2
    if zones.public_space.contains(point):
        return "structure_on_public_space", 2
    if len(zones.buildings.sindex.query(point, predicate="within")):
        return "structure_on_roof", 1
    return "structure_unregistered", 1


def _matches_building(footprint: BaseGeometry, buildings: gpd.GeoDataFrame) -> bool:
    """Whether ``footprint`` is a registered building: intersection over union ≥ :data:`MATCH_IOU`."""
    candidates = buildings.geometry.to_numpy()[buildings.sindex.query(footprint, predicate="intersects")]
    if not len(candidates):
        return False
    overlap = shapely.area(shapely.intersection(candidates, footprint))
    union = shapely.area(candidates) + footprint.area - overlap
    return bool(np.any(overlap / np.maximum(union, 1e-9) >= MATCH_IOU))


def _clutter_rule(point: BaseGeometry, zones: Zones) -> tuple[str, int] | None:
    if zones.fire_lanes.contains(point):
        return "clutter_in_fire_lane", 3
    if zones.public_space.contains(point):
        return "clutter_in_public_space", 1
    if zones.corridors.contains(point):
        return "clutter_in_corridor", 1
    return None


@dataclass(frozen=True)
class GridPlace:
    """The grid and micro-grid a point lies in (None outside the plan)."""

    grid_code: str | None
    microgrid_code: str | None


class PlanIndex:
    """Looks up the grid and micro-grid of points in a published plan (:func:`gis.io.read_plan`).

    Args:
        plan: the plan, in any CRS.
        crs: the metric CRS of the points that will be looked up.
    """

    def __init__(self, plan: GridPlan, crs: pyproj.CRS) -> None:
        self._micro = plan.microgrids.to_crs(crs)
        self._grids = plan.grids.to_crs(crs)

    def place(self, point: BaseGeometry) -> GridPlace:
        """The grid and micro-grid holding ``point``; a point on no micro-grid still gets its grid when any."""
        hits = self._micro.sindex.query(point, predicate="intersects")
        if len(hits):
            row = self._micro.iloc[int(hits.min())]
            return GridPlace(str(row["grid_code"]), str(row["microgrid_code"]))
        hits = self._grids.sindex.query(point, predicate="intersects")
        if len(hits):
            return GridPlace(str(self._grids.iloc[int(hits.min())]["grid_code"]), None)
        return GridPlace(None, None)
