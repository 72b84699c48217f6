"""The vision benchmark of issue 4 (section 7), both parts in one run, figures side by side.

    python -m bench.vision [--seeds 101 102] [--altitudes 60 100] [--model M.onnx] [--only flags|models]

1. **Flags against the simulator's truth** (``bench/vision_flags.py``): simulated patrols of unseen seeds,
   the labelled ORACLE detector (exact and noisy telemetry) beside the real detector as ``skygrid detect`` runs
   it, per category, per patrol and pooled per altitude; frames per second end to end and the pipeline's
   overhead over the bare model call.
2. **Detector models** (``bench/vision_models.py``): ms per 640 tile on ONNX Runtime, OpenCV DNN and
   ultralytics, and vehicles on real drone frames (``../shared``), sliced against full-frame inference,
   zero-shot and fine-tuned.

Run it as a module from the repository root, like the other benchmarks. The report is printed and written to
``bench/results/vision.md``. The evaluation seeds are 101 and 102; the pipeline's defaults were chosen on
``--seeds 201 202 203 204``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.vision_flags import FlagsOptions, flags_report
from bench.vision_models import models_report

RESULTS = Path(__file__).resolve().parent / "results" / "vision.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("flags", "models"), help="Run one part only.")
    parser.add_argument("--work", type=Path, default=Path("/tmp/skygrid-bench-vision"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102])
    parser.add_argument("--altitudes", type=float, nargs="+", default=[60.0, 100.0])
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--model", type=Path, help="Detector for part 1 (default: the demo model).")
    parser.add_argument("--novelty", type=float, default=0.4)
    parser.add_argument("--oracle-only", action="store_true", help="Part 1 without a real model.")
    parser.add_argument("--repeats", type=int, default=30, help="Part 2: timed calls per backend.")
    parser.add_argument("--threads", type=int, default=2, help="Part 2: inference threads.")
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--results", type=Path, default=RESULTS, help="Where the report is written.")
    args = parser.parse_args(argv)
    sections = []
    if args.only != "models":
        options = FlagsOptions(
            work=args.work,
            seeds=tuple(args.seeds),
            altitudes_m=tuple(args.altitudes),
            households=args.households,
            model=args.model,
            novelty=args.novelty,
            oracle_only=args.oracle_only,
        )
        sections.append(flags_report(options))
    if args.only != "flags":
        sections.append(models_report(args.repeats, args.threads, args.finetune_epochs))
    report = "# Vision benchmark\n\n" + "\n\n".join(sections) + "\n"
    print(report)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
