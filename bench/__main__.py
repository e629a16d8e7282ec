"""python -m bench [--full] [--json] [--results PATH]

Quick profile by default (a few minutes on 2 cores). Progress goes to stderr; with
--json stdout carries exactly one JSON object. bench/RESULTS.md is (re)written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="the longer profile (more requests)")
    parser.add_argument(
        "--profile", choices=("quick", "full", "smoke"), help="pick a profile by name (smoke: checks the bench itself)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on a shared machine: before each task wait up to SECONDS for other processes to go quiet",
    )
    parser.add_argument(
        "--from-json", type=Path, metavar="FILE", help=argparse.SUPPRESS
    )  # re-render a saved --json output
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parent / "RESULTS.md",
        help="where to write the markdown report (default: bench/RESULTS.md)",
    )
    args = parser.parse_args(argv)

    # No Hub on these machines; keep library chatter down. Set before torch/transformers
    # are imported, so the spawned worker inherits them too.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("bot.engine.registry").setLevel(logging.WARNING)

    # With --json, stdout is reserved for the result: anything else that writes to fd 1
    # (libraries, the worker process, which inherits it) goes to stderr meanwhile.
    real_stdout = os.dup(1) if args.json else None
    if args.json:
        sys.stdout.flush()
        os.dup2(2, 1)
    try:
        from . import report, runner

        profile = args.profile or ("full" if args.full else "quick")
        if args.from_json:
            result = json.loads(args.from_json.read_text())
        else:
            result = asyncio.run(runner.run(profile, args.wait_quiet))
            saved = Path(tempfile.gettempdir()) / "bench-last-result.json"
            saved.write_text(json.dumps(report.public(result)))
            logging.getLogger("bench").info("raw result saved in %s", saved)
        command = result.get("command") or "python -m bench" + (
            f" --profile {args.profile}" if args.profile else " --full" if args.full else ""
        ) + (" --json" if args.json else "") + (f" --wait-quiet {args.wait_quiet:g}" if args.wait_quiet else "")
        result["command"] = command
        args.results.write_text(report.markdown(result, command) + "\n")
        logging.getLogger("bench").info("wrote %s", args.results)
    finally:
        if real_stdout is not None:
            sys.stdout.flush()
            os.dup2(real_stdout, 1)
            os.close(real_stdout)
    if args.json:
        print(json.dumps(report.public(result)))
    else:
        print(report.table(result))
        print()
        print(report.targets_table(result))
        print(
            f"\nloop lag p99 {result['loop_lag_p99_ms']} ms; light user p99 {result['light_user_p99_ms']} ms "
            f"(idle {result['light_user_idle_p99_ms']} ms); report: {args.results}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
