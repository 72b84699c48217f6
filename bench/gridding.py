"""Gridding benchmark: SkyGrid's solver against peers (max-p, METIS, GerryChain) on the same pipeline.

Usage::

    python bench/gridding.py [--sizes 50000,250000,1000000] [--peers maxp,metis,gerrychain] [--suzhou PATH]

For each district (the Suzhou test district and demo districts of the given sizes, seed 7, generated once and
cached under ``bench/results/``) every solver runs in its own fresh worker process with the thread pools of
numpy's libraries set to one thread, so it computes on one core at a time. Workers are not pinned to a CPU:
pinning each to the lowest allowed CPU would make two benchmarks running at once share that one core while
the others idle. The worker loads the district (not timed), runs :func:`gis.gridder.make_plan` with the
solver for both grids and micro-grids, and reports the wall time of
``make_plan`` and its CPU time (process time: on a shared machine the wall time also counts waiting for
a core), the process's peak resident memory (``ru_maxrss`` read right after ``make_plan``, so it covers
loading plus gridding and nothing else), the quality report's overall row and the number of plan-contract
violations of :func:`gis.validate.validate_plan`. A peer whose time on a smaller district extrapolates
(linearly in households) past ``--budget`` seconds is skipped at the larger sizes, and every run is killed
at ``--timeout`` seconds.

The tables are printed and written to ``bench/results/gridding.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SUZHOU = ROOT.parent / "shared" / "data" / "suzhou_district.gpkg"
DEMO_SEED = 7
SOLVERS = ("skygrid", "maxp", "metis", "gerrychain")
TARGETS = "targets: grids ≥99%, micro ≥98%, PP ≥0.65, compounds ≥97%, ≤2 s/50k hh, ≤15 s/250k, ≤2 GB at 1M"
COLUMNS = (
    "solver",
    "time s",
    "CPU s",
    "peak MB",
    "grids",
    "grids in range",
    "micro in range",
    "mean PP",
    "compounds kept",
    "contiguous",
    "violations",
    "hh conserved",
    "gap / overlap m²",
    "peer failures",
)
_RESULT_TAG = "BENCH-RESULT "
#: Thread pools limited to one thread in every worker (set before the worker imports numpy).
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
ONE_THREAD = dict.fromkeys(_THREAD_VARS, "1")


@dataclass(frozen=True)
class Case:
    """A district to benchmark: its label, its file and its households (0 when not known yet)."""

    label: str
    path: Path
    households: int


# ------------------------------------------------------------------------------------------------ worker


def make_solver(name: str, seed: int) -> Any:
    """The partitioner called ``name`` (None for SkyGrid's default solvers)."""
    if name == "skygrid":
        return None
    from bench.peers import PEERS

    return PEERS[name](seed=seed)


def run_worker(solver: str, path: Path, seed: int) -> dict[str, Any]:
    """Load ``path``, grid it with ``solver`` and measure; runs inside a fresh worker process."""
    import resource

    from gis.gridder import make_plan
    from gis.io import read_district
    from gis.metrics import quality_report
    from gis.model import GridRules
    from gis.validate import validate_plan

    district = read_district(path)
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peer = make_solver(solver, seed)
    rules = GridRules(seed=seed)
    start, start_cpu = time.perf_counter(), time.process_time()
    plan = make_plan(district, rules, grid_partitioner=peer, micro_partitioner=peer)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    overall = quality_report(plan, district).iloc[-1]
    violations = validate_plan(plan, district)
    rules_hit: dict[str, int] = {}
    for violation in violations:
        rules_hit[violation.rule] = rules_hit.get(violation.rule, 0) + 1
    stats = getattr(peer, "stats", None)
    return {
        "solver": solver,
        "households": int(district.households),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_mb": peak_mb,
        "loaded_mb": loaded_mb,
        "grids": int(overall["grids"]),
        "microgrids": int(overall["microgrids"]),
        "grids_in_range": float(overall["grids_in_range_feasible"]),
        "micro_in_range": float(overall["microgrids_in_range"]),
        "mean_pp": float(overall["mean_pp_grids"]),
        "compounds_kept": float(overall["compounds_kept"]),
        "contiguous": float(overall["contiguous"]),
        "conserved": bool(overall["households_conserved"]),
        "gap_m2": float(overall["tiling_gap_m2"]),
        "overlap_m2": float(overall["tiling_overlap_m2"]),
        "violations": len(violations),
        "violation_rules": rules_hit,
        "violation_examples": [f"{v.rule}: {v.message}"[:240] for v in violations[:3]],
        "peer_calls": stats.calls if stats else None,
        "peer_failures": stats.failures if stats else None,
        "peer_notes": sorted(set(stats.notes))[:3] if stats else [],
    }


def snapshot_gis(target: Path) -> Path:
    """Copy the ``gis`` package into ``target`` so every worker of this run imports the same code.

    Other work may change ``gis`` while a long benchmark runs; workers put the snapshot first on their path.
    """
    shutil.copytree(ROOT / "gis", target / "gis", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def spawn(solver: str, path: Path, seed: int, timeout: float, code: Path | None = None) -> dict[str, Any]:
    """Run one solver on one district in a fresh process; a dict with ``skipped`` when it did not finish.

    ``code`` is a folder holding the ``gis`` package to use (a snapshot), else the working tree's.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", solver, "--district", str(path)]
    command += ["--seed", str(seed)]
    env = dict(os.environ, **ONE_THREAD)
    paths = [*([str(code)] if code else []), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"solver": solver, "skipped": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_RESULT_TAG):
            result: dict[str, Any] = json.loads(line[len(_RESULT_TAG) :])
            result["wall_s"] = time.perf_counter() - started
            return result
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"solver": solver, "skipped": f"worker failed (exit {done.returncode}): {tail[:160]}"}


# ------------------------------------------------------------------------------------------------ driver


def demo_case(households: int) -> Case:
    """The cached demo district of ``households`` (seed 7), generated and written on first use."""
    path = RESULTS / f"demo_{households}_seed{DEMO_SEED}.gpkg"
    if not path.exists():
        from gis.demo import make_demo_district
        from gis.io import write_district

        started = time.perf_counter()
        district = make_demo_district(households, seed=DEMO_SEED).district
        tmp = path.with_name(f"{path.stem}.tmp.gpkg")
        tmp.unlink(missing_ok=True)
        write_district(district, tmp)
        tmp.replace(path)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return Case(f"demo {households:,} hh (seed {DEMO_SEED})", path, households)


def fmt_share(value: float) -> str:
    """A 0–1 share as a percentage, '—' for NaN."""
    return "—" if value != value else f"{100 * value:.1f}%"


def table_row(result: dict[str, Any]) -> str:
    """One markdown row of a result (or of a skipped run)."""
    if "skipped" in result:
        cells = [result["solver"], f"skipped ({result['skipped']})"] + [""] * (len(COLUMNS) - 2)
        return "| " + " | ".join(cells) + " |"
    failures = result["peer_failures"]
    cells = [
        result["solver"],
        f"{result['seconds']:.1f}",
        f"{result['cpu_seconds']:.1f}",
        f"{result['peak_mb']:.0f} ({result['loaded_mb']:.0f})",
        f"{result['grids']} / {result['microgrids']}",
        fmt_share(result["grids_in_range"]),
        fmt_share(result["micro_in_range"]),
        "—" if result["mean_pp"] != result["mean_pp"] else f"{result['mean_pp']:.3f}",
        fmt_share(result["compounds_kept"]),
        fmt_share(result["contiguous"]),
        str(result["violations"]),
        "yes" if result["conserved"] else "NO",
        f"{result['gap_m2']:.1f} / {result['overlap_m2']:.1f}",
        "—" if failures is None else f"{failures} of {result['peer_calls']} calls",
    ]
    return "| " + " | ".join(cells) + " |"


def table(case: Case, results: list[dict[str, Any]]) -> str:
    """The markdown table of one district with notes on violations and peer failures."""
    households = next((r["households"] for r in results if "households" in r), case.households)
    lines = [
        f"### {case.label}: {households:,} households",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
        *(table_row(r) for r in results),
        "",
    ]
    for result in results:
        if result.get("violation_rules"):
            rules = ", ".join(f"{rule} ×{n}" for rule, n in sorted(result["violation_rules"].items()))
            lines.append(f"- {result['solver']} violations: {rules}")
            lines.extend(f"  - e.g. {example}" for example in result.get("violation_examples", [])[:2])
        if result.get("peer_notes"):
            lines.append(f"- {result['solver']} failures, e.g.: {'; '.join(result['peer_notes'])}")
    lines.append("")
    return "\n".join(lines)


def predicted_seconds(history: dict[str, tuple[int, float]], solver: str, households: int) -> float | None:
    """The solver's time at ``households``, extrapolated linearly from its largest finished run."""
    if solver not in history:
        return None
    done_households, seconds = history[solver]
    return seconds * households / max(done_households, 1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="50000,250000,1000000", help="demo district sizes, households")
    parser.add_argument("--peers", default="maxp,metis,gerrychain", help="peers to run beside SkyGrid")
    parser.add_argument(
        "--suzhou",
        type=lambda v: Path(v) if v else None,
        default=SUZHOU,
        help="Suzhou district ('' to leave out)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before one run is killed")
    parser.add_argument("--budget", type=float, default=600.0, help="skip a peer predicted to take longer")
    parser.add_argument("--seed", type=int, default=0, help="seed of every solver")
    parser.add_argument("--output", type=Path, default=RESULTS / "gridding.md", help="markdown output")
    parser.add_argument("--worker", choices=SOLVERS, help=argparse.SUPPRESS)
    parser.add_argument("--district", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def plan_run(
    solver: str,
    case: Case,
    history: dict[str, tuple[int, float]],
    blocked: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run ``solver`` on ``case``, or a skipped row when it failed before or is predicted too slow."""
    if solver in blocked:
        return {"solver": solver, "skipped": blocked[solver]}
    guess = predicted_seconds(history, solver, case.households)
    if guess is not None and guess > args.budget:
        done_hh, done_s = history[solver]
        reason = f"too slow: {done_s:.0f} s on {done_hh:,} hh, ~{guess:.0f} s predicted"
        return {"solver": solver, "skipped": reason}
    return spawn(solver, case.path, args.seed, args.timeout, args.code)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(args.worker, args.district, args.seed)
        print(_RESULT_TAG + json.dumps(result), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="skygrid-bench-") as folder:
        args.code = snapshot_gis(Path(folder))
        return benchmark(args)


def benchmark(args: argparse.Namespace) -> int:
    """Run every solver on every district and write the tables."""
    peers = [p for p in args.peers.split(",") if p]
    unknown = sorted(set(peers) - set(SOLVERS[1:]))
    if unknown:
        raise SystemExit(f"unknown peer(s): {', '.join(unknown)}")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = [TARGETS, ""]
    print(TARGETS, flush=True)
    cases: list[Case | str] = []
    if args.suzhou is None:
        pass
    elif args.suzhou.exists():
        cases.append(Case("Suzhou test district", args.suzhou, 0))
    else:
        cases.append(f"Suzhou skipped: {args.suzhou} not found")
    cases.extend(demo_case(n) for n in sizes)
    history: dict[str, tuple[int, float]] = {}
    blocked: dict[str, str] = {}
    everything: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        if isinstance(case, str):
            print(case, flush=True)
            sections.append(case + "\n")
            continue
        results = []
        for solver in ("skygrid", *peers):
            result = plan_run(solver, case, history, blocked, args)
            if "seconds" in result:
                history[solver] = (result["households"], result["seconds"])
            elif solver != "skygrid" and solver not in blocked:
                blocked[solver] = f"{result['skipped']} on {case.label}"
            print(f"  {case.label} / {solver}: {table_row(result)}", flush=True)
            results.append(result)
        section = table(case, results)
        print("\n" + section, flush=True)
        sections.append(section)
        everything[case.label] = results
        args.output.write_text("\n".join(sections), encoding="utf-8")
        args.output.with_suffix(".json").write_text(json.dumps(everything, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
