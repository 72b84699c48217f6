"""SkyGrid grid mapping: divide a district into grids (网格) and micro-grids (微网格).

Typical use::

    from gis import GridRules, make_plan, read_district, write_plan

    district = read_district("district.gpkg")
    plan = make_plan(district, GridRules(grid_min=300, grid_max=500))
    write_plan(plan, "plan.gpkg")
"""

from gis.gridder import make_plan
from gis.io import read_district, read_plan, write_district, write_plan
from gis.model import District, GridPlan, GridRules

__all__ = [
    "District",
    "GridPlan",
    "GridRules",
    "make_plan",
    "read_district",
    "read_plan",
    "write_district",
    "write_plan",
]
