"""Background jobs: gridding a stored district into a new plan (or the next draft of a plan), with progress.

A job runs outside the request; its row records status (queued, running, done, failed), progress 0–1 and a
message. The plan is written in one transaction at the end, so a crashed job leaves no half-written plan.
"""

from __future__ import annotations

import logging
from typing import Any

from api.db import transaction
from api.deps import Service
from api.districts import load_district
from api.models import Job, Plan, utcnow
from api.plans import get_plan, store_version
from api.security import Principal
from gis.gridder import make_plan
from gis.model import GridRules

log = logging.getLogger(__name__)


def run_grid_job(
    service: Service, who: Principal, *, job_id: int, district_id: int, params: dict[str, Any]
) -> None:
    """Grid district ``district_id`` with ``params`` (see :class:`api.schemas.GridRequest`) and store the plan."""
    try:
        _progress(service, job_id, 0.05, "reading the district / 读取辖区")
        with service.db.read() as session:
            district = load_district(session, district_id)
        rules = GridRules(
            **{k: params[k] for k in ("grid_min", "grid_max", "micro_min", "micro_max", "seed")}
        )
        _progress(service, job_id, 0.2, f"gridding {district.households} households / 划分网格")
        grid_plan = make_plan(district, rules)
        _progress(service, job_id, 0.8, f"storing {len(grid_plan.grids)} grids / 保存方案")
        with transaction(service.db.write) as session:
            if params.get("plan_id") is not None:
                plan = get_plan(session, int(params["plan_id"]))
            else:
                plan = Plan(district_id=district_id, name=str(params["name"]), created_by=who.username)
                session.add(plan)
                session.flush()
            version = store_version(
                session, who, plan, grid_plan, reason=str(params.get("reason", "")), parent_id=None
            )
            result = {
                "plan_id": plan.id,
                "version": version.number,
                "grids": len(grid_plan.grids),
                "microgrids": len(grid_plan.microgrids),
            }
        _finish(service, job_id, "done", "done / 完成", result)
    except Exception as error:  # a job must end in a recorded state whatever failed; the cause is logged
        log.exception("job %s failed", job_id)
        _finish(service, job_id, "failed", f"{type(error).__name__}: {error}", None)


def _progress(service: Service, job_id: int, progress: float, message: str) -> None:
    with transaction(service.db.write) as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.progress, job.message = "running", progress, message


def _finish(service: Service, job_id: int, status: str, message: str, result: dict[str, Any] | None) -> None:
    with transaction(service.db.write) as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.status, job.message, job.result, job.finished_at = status, message, result, utcnow()
            job.progress = 1.0 if status == "done" else job.progress
