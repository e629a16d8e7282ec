"""python -m bench.runs MAIN.json OTHER.json ... [--results bench/RESULTS.md]

One report from several runs saved with `python -m bench --json`: the targets of every run side by side
(each run's verdicts, in the order given), then MAIN's whole report. So a claim such as "in three
consecutive quick runs" can be read off one file, every figure from a run that is in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import report


def runs_table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """Each target's measured value per run, with whether it was reached."""
    header = "| target | " + " | ".join(name for name, _ in runs) + " |"
    lines = [header, "|---|" + "---:|" * len(runs)]
    verdicts = [report.targets(result) for _, result in runs]
    for row in range(len(verdicts[0])):
        cells = []
        for targets in verdicts:
            target = targets[row]
            value = target["value"]
            shown = (
                "–"
                if value is None
                else f"{100 * value:.1f}%"
                if target["unit"] == ""
                else f"{value:g}{target['unit']}"
            )
            cells.append(shown if target["reached"] else f"**{shown}** (not reached)")
        lines.append(f"| {verdicts[0][row]['target']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("main", type=Path, help="the run whose whole report follows (e.g. the full profile's)")
    parser.add_argument("others", type=Path, nargs="*", help="more runs, in the order they ran")
    parser.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    args = parser.parse_args(argv)
    results = [json.loads(path.read_text()) for path in [args.main, *args.others]]
    runs = [(f"{r['profile']} run, {r['date']}", r) for r in results]
    runs = [runs[0], *sorted(runs[1:], key=lambda run: run[1]["date"])]
    main_run = results[0]
    command = main_run.get("command") or f"python -m bench --profile {main_run['profile']} --json"
    text = "\n".join(
        [
            "# Inference engine benchmark: several runs",
            "",
            "The targets in each run (`python -m bench.runs`; the first column is the run reported in full below, "
            "the others ran before it, in this order, on the same machine):",
            "",
            runs_table(runs),
            "",
            report.markdown(main_run, command).replace("# Inference engine benchmark", "# The run in full", 1),
        ]
    )
    args.results.write_text(text + "\n")
    print(f"wrote {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
