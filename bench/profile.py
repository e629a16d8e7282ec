"""python -m bench.profile [--task sentiment] [--requests 160] [--rows N --tokens N] [--torch-profile]

Where the worker's time goes for one classification task, against the same passes run bare:

1. ceiling: the request set pre-tokenized, sorted by length, run as forward passes in this process (bench/baselines.py);
2. engine: every request submitted at once from 64 users to the real worker with `profile_passes` on; each unit
   reports its seconds per phase (bot/engine/profiling.py): waiting for the unit (the device idle between units),
   tokenize, collate (pad, move to the device), forward, postprocess, messages (results back to the parent),
   other (the rest of the unit: model lookup, task set-up).
3. with --torch-profile: torch.profiler over the ceiling's forward passes (the ops the forward spends its time in).

`--rows/--tokens` override the device's pass shape (e.g. --rows 8 --tokens 8192: the earlier fixed 8-row passes),
for an A/B inside one run. Timings on a shared machine are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

PHASES = ("wait", "tokenize", "collate", "forward", "postprocess", "messages", "other")


async def engine_breakdown(task: str, requests: list[Any], paths: dict[str, Path], rows: int, tokens: int) -> dict:
    from bot.engine import Engine

    from .load import TimedWorker
    from .models import engine_config

    config = engine_config(
        paths,
        torch_threads=os.cpu_count() or 1,
        max_queue=100_000,
        max_per_user=1_000_000,
        forward_rows=rows,
        forward_tokens=tokens,
        profile_passes=True,
    )
    worker = TimedWorker(config)
    async with Engine(config, executor=worker) as engine:
        for _ in range(2):  # load the model, warm the kernels
            await engine.submit(requests[0], user="warmup")
        worker.batches.clear()
        started = time.perf_counter()
        await asyncio.gather(*(engine.submit(r, user=f"user{i % 64}") for i, r in enumerate(requests)))
        wall = time.perf_counter() - started
        shape = engine.executor.info.passes
    units = [b for b in worker.batches if b.phases is not None]
    units[0].phases["wait"] = 0.0  # the first unit waited for the run to start, not for the worker
    passes = sum(u.phases.get("forward passes", 0) for u in units)
    seconds = {name: sum(u.phases.get(name, 0.0) for u in units) for name in PHASES[:-1]}
    seconds["other"] = sum(u.worker_seconds for u in units) - sum(seconds.values()) + seconds["wait"]
    return {
        "wall_s": wall,
        "rps": len(requests) / wall,
        "units": len(units),
        "rows_per_unit": sum(u.size for u in units) / len(units),
        "rows_per_pass": sum(u.size for u in units) / passes if passes else None,
        "pass_shape": f"{shape.rows} rows, {shape.tokens} tokens, widths x{shape.pad_multiple}",
        "phase_seconds": seconds,
    }


def ceiling(task: str, texts: list[Any], path: Path, dtype: str, torch_profile: bool) -> dict:
    import torch

    from .runner import CLASSIFIERS

    bench = CLASSIFIERS[task]
    _, pipe = bench.naive(path)
    pipe.model.to(getattr(torch, dtype))
    result = bench.ceiling(pipe, texts)
    top = ""
    if torch_profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            bench.ceiling(pipe, texts)
        top = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    by_rows = {rows: round(len(texts) / seconds, 1) for rows, seconds in result.seconds_by_rows.items()}
    return {
        "rps": len(texts) / result.seconds,
        "rows_per_forward": result.rows_per_forward,
        "by_rows": by_rows,
        "ops": top,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--task", default="sentiment", choices=("sentiment", "fill_mask", "zero_shot", "ner"))
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--rows", type=int, default=0, help="rows per pass (0: the device's)")
    parser.add_argument("--tokens", type=int, default=0, help="tokens per pass (0: the device's)")
    parser.add_argument("--torch-profile", action="store_true", help="torch.profiler's top ops of the ceiling")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from .models import build_models
    from .runner import CLASSIFIERS, SEEDS

    torch.set_num_threads(os.cpu_count() or 1)
    paths = build_models()
    bench = CLASSIFIERS[args.task]
    inputs = bench.inputs(SEEDS[args.task], args.requests)
    requests = [bench.request(x) for x in inputs]
    from bot.engine.registry import resolve_dtype

    dtype = str(resolve_dtype("auto", torch.device("cpu"), decoder=False)).removeprefix("torch.")
    load = os.getloadavg()[0]
    # The ceiling before and after the engine: how far they differ is the machine's noise meanwhile.
    before = ceiling(args.task, inputs, paths[args.task], dtype, torch_profile=False)
    engine = asyncio.run(engine_breakdown(args.task, requests, paths, args.rows, args.tokens))
    bare = ceiling(args.task, inputs, paths[args.task], dtype, args.torch_profile)
    load = max(load, os.getloadavg()[0])
    n = args.requests
    print(f"{args.task}: {n} requests, {dtype}, {torch.get_num_threads()} threads, load average up to {load:.1f}")
    print(
        f"ceiling {bare['rps']:.1f} req/s ({1000 / bare['rps']:.2f} ms/request; req/s by rows per pass: "
        f"{bare['by_rows']} after the engine, {before['by_rows']} before)"
    )
    print(
        f"engine  {engine['rps']:.1f} req/s ({1000 / engine['rps']:.2f} ms/request; {engine['units']} units of "
        f"{engine['rows_per_unit']:.1f} requests, {engine['rows_per_pass']:.1f} a forward pass; "
        f"pass shape {engine['pass_shape']}): "
        f"{engine['rps'] / bare['rps']:.2f}x the ceiling"
    )
    print("phase        ms/request  share")
    total = sum(engine["phase_seconds"].values())
    for name in PHASES:
        value = engine["phase_seconds"][name]
        print(f"{name:<12} {1000 * value / n:>10.2f}  {value / total:>5.0%}")
    if bare["ops"]:
        print(bare["ops"])
    return 0


if __name__ == "__main__":
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    sys.exit(main())
