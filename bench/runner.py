"""Orchestrates one benchmark run: for each classification task naive -> ceiling -> engine,
then generation (16 users, Poisson arrivals: naive, static batching, the engine), the mixed
load (streaming generations + Poisson sentiment), then fairness; returns one result dict."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bot.engine import Cancelled, Engine, EngineError, Request, WorkerStalled
from bot.specs.fill_mask import FillMaskRequest, FillMaskResult
from bot.specs.generation import GenerationRequest, GenerationResult
from bot.specs.ner import NerRequest, NerResult
from bot.specs.question_answering import QuestionAnsweringRequest, QuestionAnsweringResult
from bot.specs.sentiment import SentimentRequest, SentimentResult
from bot.specs.summarization import SummarizationRequest
from bot.specs.zero_shot import DEFAULT_TEMPLATE, ZeroShotRequest, ZeroShotResult

from . import baselines, flops, workload
from .load import (
    CpuProbe,
    LagProbe,
    RunResult,
    TimedWorker,
    batch_summary,
    now,
    open_loop,
    single_thread_server,
    static_batching_server,
)
from .models import SHAPES, bench_device, build_models, engine_config, generation_folder

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Profile:
    name: str
    requests: dict[str, int]  # per classification-style task
    gen_requests: int  # generation: requests from gen_users users, Poisson arrivals
    gen_naive_requests: int  # the naive loop's share (its rate needs fewer; it is slow)
    gen_users: int = 16
    gen_rate: float = 6.0  # generation arrivals per second (above every server's capacity: a queue forms)
    max_new_tokens: int = 32
    mixed_users: int = 8  # mixed load: users streaming one long generation each...
    mixed_tokens: int = 256
    mixed_summaries: int = 2  # ...and users streaming a summary (of mixed_summary_words words) each...
    mixed_summary_words: int = 300
    mixed_sentiment: int = 24  # ...while sentiment requests arrive (Poisson, mixed_rate a second)
    mixed_rate: float = 1.0
    light_requests: int = 8  # light user, one a second, idle and under flood
    flood_concurrency: int = 192  # the heavy user's outstanding requests
    calibration_seconds: float = 3.0  # sequential naive calls (at least 3) to estimate the naive rate
    naive_load: float = 2.0  # open-loop rate shared by naive and engine: x the naive rate
    saturate: float = 4.0  # capacity run: x the ceiling rate (overload: a queue forms at once)


PROFILES = {
    "quick": Profile(
        "quick",
        {"sentiment": 160, "zero_shot": 16, "fill_mask": 160, "ner": 120, "question_answering": 120},
        gen_requests=48,
        gen_naive_requests=8,
        light_requests=12,
    ),
    "full": Profile(
        "full",
        {"sentiment": 400, "zero_shot": 48, "fill_mask": 240, "ner": 240, "question_answering": 240},
        gen_requests=96,
        gen_naive_requests=16,
        light_requests=30,
        mixed_sentiment=40,
        calibration_seconds=5.0,
    ),
    # A fast end-to-end check of the bench itself; its numbers mean little.
    "smoke": Profile(
        "smoke",
        {"sentiment": 24, "zero_shot": 6, "fill_mask": 16, "ner": 12, "question_answering": 12},
        gen_requests=16,
        gen_naive_requests=2,
        max_new_tokens=8,
        mixed_users=2,
        mixed_tokens=16,
        mixed_summaries=1,
        mixed_summary_words=40,
        mixed_sentiment=4,
        light_requests=3,
        flood_concurrency=48,
        calibration_seconds=0.5,
    ),
}

USER_POOL = 64  # open-loop requests come from this many simulated users
STALL_TIMEOUT = 10.0  # the watchdog's limit in this run (default 120 s), so the hung-worker incident is short
SEEDS = {
    "sentiment": 11,
    "zero_shot": 22,
    "fill_mask": 33,
    "generation": 44,
    "light": 55,
    "ner": 66,
    "question_answering": 77,
}


@dataclass(frozen=True)
class Classifier:
    """How one classification-style task is benchmarked: its inputs, the engine's request for one, the
    naive loop, the ceiling, and the rows (tokenized sequences) the worker runs for a request."""

    inputs: Callable[[int, int], list[Any]]  # (seed, n) -> texts, or (question, context) pairs
    request: Callable[[Any], Any]
    result: type
    naive: Callable[[Path], tuple[Callable[[Any], Any], Any]]  # folder -> (one call, what the ceiling runs)
    ceiling: Callable[[Any, list[Any]], baselines.Ceiling]
    rows: Callable[[Any, Any], list[Any]]  # (tokenizer, request) -> its sequences' encodings

    def lengths(self, tokenizer: Any, request: Any) -> list[int]:
        return [len(row["input_ids"]) for row in self.rows(tokenizer, request)]


def _one_text(tokenizer: Any, text: str) -> list[Any]:
    return [tokenizer(text, truncation=True, max_length=512)]


CLASSIFIERS = {
    "sentiment": Classifier(
        workload.texts,
        lambda x: SentimentRequest(texts=(x,)),
        SentimentResult,
        baselines.naive_sentiment,
        baselines.ceiling_sentiment,
        lambda tok, r: [row for t in r.texts for row in _one_text(tok, t)],
    ),
    "zero_shot": Classifier(
        workload.texts,
        lambda x: ZeroShotRequest(text=x, labels=workload.ZERO_SHOT_LABELS),
        ZeroShotResult,
        lambda path: baselines.naive_zero_shot(path, workload.ZERO_SHOT_LABELS, DEFAULT_TEMPLATE),
        lambda pipe, xs: baselines.ceiling_zero_shot(pipe, xs, workload.ZERO_SHOT_LABELS, DEFAULT_TEMPLATE),
        lambda tok, r: [tok(r.text, h, truncation="only_first", max_length=512) for h in r.hypotheses()],
    ),
    "fill_mask": Classifier(
        workload.masked_texts,
        lambda x: FillMaskRequest(text=x, top_k=5),
        FillMaskResult,
        baselines.naive_fill_mask,
        baselines.ceiling_fill_mask,
        lambda tok, r: _one_text(tok, r.text),
    ),
    "ner": Classifier(
        workload.texts,
        NerRequest,
        NerResult,
        baselines.naive_ner,
        baselines.ceiling_ner,
        lambda tok, r: _one_text(tok, r.text),
    ),
    "question_answering": Classifier(
        workload.question_pairs,
        lambda pair: QuestionAnsweringRequest(*pair),
        QuestionAnsweringResult,
        baselines.naive_question_answering,
        baselines.ceiling_question_answering,
        lambda tok, r: [tok(r.question, r.context, truncation="only_second", max_length=384)],
    ),
}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


class Bench:
    def __init__(self, profile: Profile, wait_quiet: float = 0.0) -> None:
        self.p = profile
        self.wait_quiet = wait_quiet
        self.waited: dict[str, float] = {}
        self.threads = os.cpu_count() or 1
        self.lag_saturated: list[float] = []
        self.lag_phases: dict[str, dict[str, Any]] = {}
        self.cpu: dict[str, dict[str, float]] = {}
        self._last_lag: list[float] = []

    # --- helpers -------------------------------------------------------------------------
    def _pids(self) -> list[int]:
        pid = self.worker.info.pid if hasattr(self, "worker") else None
        return [os.getpid()] + ([pid] if pid else [])

    async def _quiet(self, label: str) -> None:
        """Wait (at most `wait_quiet` s) until other processes use < 0.3 cores over a second."""
        if self.wait_quiet <= 0:
            return
        t = time.perf_counter()
        while time.perf_counter() - t < self.wait_quiet:
            with CpuProbe(self._pids) as cpu:
                await asyncio.sleep(1.0)
            if cpu.cores["other_processes"] < 0.3:
                break
        waited = time.perf_counter() - t
        self.waited[label] = round(waited, 1)
        log.info(
            "  waited %.0fs for a quiet machine before %s (other processes now %.2f cores)",
            waited,
            label,
            cpu.cores["other_processes"],
        )

    def _cpu(self, name: str, cpu: CpuProbe, run: RunResult | None) -> None:
        """Cores used during the phase, and CPU seconds (bench + worker) per unit served: less
        sensitive than wall time to other processes sharing the cores."""
        per_unit = round(1000 * cpu.own_cpu_seconds / run.units, 2) if run and run.units else None
        self.cpu[name] = cpu.cores | {
            "wall_s": round(cpu.wall, 2),
            "own_cpu_s": round(cpu.own_cpu_seconds, 2),
            "own_cpu_ms_per_unit": per_unit,
        }

    async def _engine_phase(
        self, name: str, coro_fn, *, saturated: bool, lengths=None, per_unit: bool = True
    ) -> tuple[RunResult, dict[str, Any]]:
        first = len(self.worker.batches)
        with LagProbe() as lag, CpuProbe(self._pids) as cpu:
            run = await coro_fn()
        self._cpu(name, cpu, run if per_unit else None)
        self.lag_phases[name] = {
            "p50_ms": _r(lag.ms(50)),
            "p99_ms": _r(lag.ms(99)),
            "max_ms": _r(lag.ms(100)),
            "samples": len(lag.samples),
        }
        self._last_lag = lag.samples
        if saturated:
            self.lag_saturated += lag.samples
        batches = batch_summary(self.worker.batches[first:], cpu.wall, lengths, self.worker.info.passes)
        log.info(
            "  %-26s %7.2f /s  p50 %7.0f ms  p99 %7.0f ms  batches %s  loop lag p99 %.1f ms  cpu %s",
            name,
            run.rate,
            run.ms(50) or 0,
            run.ms(99) or 0,
            batches.get("mean_batch_size"),
            lag.ms(99) or 0,
            cpu.cores,
        )
        if run.failed or run.refused:
            log.warning("  %s: %d failed, %d refused %s", name, run.failed, run.refused, run.errors[:3])
        return run, batches

    async def _plain_phase(self, name: str, coro_fn, per_unit: bool = True) -> RunResult:
        with CpuProbe(self._pids) as cpu:
            run = await coro_fn()
        self._cpu(name, cpu, run if per_unit else None)
        log.info(
            "  %-26s %7.2f /s  p50 %7.0f ms  p99 %7.0f ms  cpu %s",
            name,
            run.rate,
            run.ms(50) or 0,
            run.ms(99) or 0,
            cpu.cores,
        )
        return run

    # --- the run -------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        torch.set_num_threads(self.threads)
        paths = build_models()
        # One engine for the whole run. The per-user cap is raised (default 3) so the fairness
        # flood can come from ONE user id, and the queue bound is raised so open-loop overload
        # is queued, not refused (refusals are still counted).
        self.config = engine_config(
            paths, torch_threads=self.threads, max_queue=100_000, max_per_user=1_000_000, stall_timeout=STALL_TIMEOUT
        )
        self.gen_folder = generation_folder(self.config)
        self.worker = TimedWorker(self.config)
        self.engine = Engine(self.config, executor=self.worker)
        log.info("starting the engine worker (torch threads %d in the worker and in this process)", self.threads)
        t = time.perf_counter()
        await self.engine.start()
        await self._warm_engine()
        log.info("engine ready and warm in %.1fs", time.perf_counter() - t)
        self.peaks: dict[str, float] = {}
        self._measure_peaks()

        tasks: dict[str, Any] = {}
        try:
            for task in CLASSIFIERS:
                await self._quiet(task)
                tasks[task] = await self._guarded(task, self._classify(task, paths[task]))
            self._measure_peaks()  # again: the best of two, so a moment of sharing does not lower the peak
            for measured in tasks.values():
                peak = self.peaks.get(measured.get("engine_dtype"))
                if peak and "engine_gflops" in measured:
                    measured["engine_mfu"] = _r(measured["engine_gflops"] / peak, 3)
                    measured["ceiling_mfu"] = _r(measured["ceiling_gflops"] / peak, 3)
            await self._quiet("generation")
            tasks["generation"] = await self._guarded("generation", self._generation())
            await self._quiet("mixed")
            mixed = await self._guarded("mixed", self._mixed())
            await self._quiet("fairness")
            fairness = await self._guarded("fairness", self._fairness())
            status = self.engine.status()
            incidents = await self._guarded("incidents", self._incidents())  # last: it restarts the worker
        finally:
            await self.engine.close()

        lag99 = workload.pct(self.lag_saturated, 99)
        return {
            "tasks": tasks,
            "loop_lag_p99_ms": _r(None if lag99 is None else lag99 * 1000),
            "light_user_p99_ms": (fairness or {}).get("light_user_p99_ms"),
            "light_user_idle_p99_ms": (fairness or {}).get("light_user_idle_p99_ms"),
            "fairness": fairness,
            "mixed": mixed,
            "incidents": incidents,
            "gemm_peak_gflops": self.peaks,
            "loop_lag_phases": self.lag_phases,
            "cpu_cores_by_phase": self.cpu,
            "waited_for_quiet_s": self.waited,
            "engine_status_tasks": {
                k: {f: _r(v, 4) if isinstance(v, float) else v for f, v in asdict(s).items()}
                for k, s in status.tasks.items()
            },
            "engine_shed": dict(status.shed),
            "engine_settings": {
                "max_batch_size": self.config.max_batch_size,
                "max_batch_tokens": self.config.max_batch_tokens,
                "max_queue": self.config.max_queue,
                "max_per_user": self.config.max_per_user,
                "torch_threads": self.config.torch_threads,
                "device": status.device,
                "dtypes": status.dtypes,
                "generation_batching": status.generation_batching,
            },
            "profile": self.p.name,
            "profile_settings": asdict(self.p),
            "models": SHAPES,
            "device": bench_device(),
            "torch_threads": self.threads,
            "machine": {
                "cpu_cores": os.cpu_count(),
                "cpu": _cpu_name(),
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "memory_gib": _mem_gib(),
                "platform": platform.platform(),
            },
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": _tf_version(),
            },
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "runtime_s": round(time.perf_counter() - started, 1),
        }

    def _measure_peaks(self) -> None:
        """The GEMM peak at each dtype the classifiers run in, on the same thread count (the worker idle);
        the best measured in the run is kept."""
        dtypes = self.engine.status().dtypes
        for dtype in sorted({dtypes[task] for task in CLASSIFIERS if task in dtypes}):
            gflops = round(flops.gemm_peak(getattr(torch, dtype), bench_device()) / 1e9, 1)
            self.peaks[dtype] = max(gflops, self.peaks.get(dtype, 0.0))
        log.info("GEMM peak, GFLOP/s: %s", self.peaks)

    async def _guarded(self, name: str, coro) -> Any:
        try:
            return await coro
        except Exception as error:  # keep going: a partial report beats none
            log.exception("%s failed", name)
            return {"error": f"{type(error).__name__}: {error}"}

    async def _warm_engine(self) -> None:
        """Load every model in the worker and run each task once, before anything is timed."""
        samples = [
            SentimentRequest(texts=("A warm-up sentence for the sentiment model.",)),
            ZeroShotRequest(text="A warm-up sentence about football.", labels=workload.ZERO_SHOT_LABELS),
            FillMaskRequest(text="Paris is the <mask> of France."),
            NerRequest("Ada Lovelace worked with Charles Babbage in London."),
            QuestionAnsweringRequest("Who worked in London?", "Ada Lovelace worked with Charles Babbage in London."),
            GenerationRequest(prompt="Once upon a time", max_new_tokens=4, temperature=0.0),
            SummarizationRequest("Ada Lovelace worked with Charles Babbage in London.", max_new_tokens=4),
        ]
        for request in samples:
            for _ in range(2):  # the first call loads the model
                result = await self.engine.submit(request, user="warmup")
            log.info("  warm %-10s -> %s", request.task, type(result).__name__)
        self.worker.batches.clear()

    # --- classification-style tasks --------------------------------------------------------
    async def _classify(self, task: str, path) -> dict[str, Any]:
        n = self.p.requests[task]
        bench = CLASSIFIERS[task]
        texts = bench.inputs(SEEDS[task], n)
        requests, result_type = [bench.request(x) for x in texts], bench.result
        log.info("[%s] %d requests (%s)", task, n, SHAPES[task])
        call, pipe = bench.naive(path)

        # Warm up, then time sequential calls on other texts (>= 3 calls and ~2 s) to set the offered rate.
        spare = bench.inputs(SEEDS[task] + 1000, 32)
        call(spare[0])
        t, calls = time.perf_counter(), 0
        for x in spare[1:]:
            call(x)
            calls += 1
            if calls >= 3 and time.perf_counter() - t >= self.p.calibration_seconds:
                break
        calibrated = calls / (time.perf_counter() - t)

        # The ceiling runs at the engine's dtype for this role (DTYPE=auto); the naive pipeline in its default float32.
        dtype = self.engine.status().dtypes[task]
        pipe.model.to(getattr(torch, dtype))
        with CpuProbe(self._pids) as cpu:
            ceiling = bench.ceiling(pipe, texts)
        mask_only = None
        if task == "fill_mask" and hasattr(pipe.model, "lm_head"):
            mask_only = n / baselines.fill_mask_head_at_mask_only(pipe, texts)
            log.info(
                "  %-26s %7.2f /s  (informational: LM head at the mask position only, 8-row chunks)",
                "ceiling, mask-only head",
                mask_only,
            )
        pipe.model.to(torch.float32)
        # (every row count tried, plus tokenizing: CPU ms per request is an upper estimate here)
        self._cpu(f"{task}: ceiling (all row counts)", cpu, RunResult(units=n * len(baselines.CEILING_ROWS)))
        ceiling_rps = n / ceiling.seconds
        log.info(
            "  %-26s %7.2f /s  (best of rows/forward %s: %s; %.0f%% padding; tokenizing, not timed: %.2fs)",
            "ceiling",
            ceiling_rps,
            baselines.CEILING_ROWS,
            {r: round(n / s, 2) for r, s in ceiling.seconds_by_rows.items()},
            100 * (1 - ceiling.real_tokens / ceiling.padded_tokens),
            ceiling.tokenize_seconds,
        )

        # One open-loop schedule, shared by the naive loop and the engine.
        offered = self.p.naive_load * calibrated
        offsets = workload.poisson_offsets(SEEDS[task], n, offered)
        serve = single_thread_server(call)
        naive = await self._plain_phase(
            f"{task}: naive @{offered:.1f}/s", lambda: open_loop(lambda i: serve(texts[i]), offsets)
        )
        tokenizer = pipe.tokenizer
        # Model FLOPs of each request, from its real token counts (no padding).
        rows = [[dict(row) for row in bench.rows(tokenizer, r)] for r in requests]
        flop_model = flops.FlopModel(pipe.model, [row for request_rows in rows for row in request_rows])
        flops_per_request = sum(flop_model(len(row["input_ids"])) for r in rows for row in r) / n
        call = serve = None  # freed before the engine phase; the model stays for the second ceiling
        gc.collect()

        def lengths(batch: list) -> list[int]:
            """Token lengths of the sequences the worker runs for a batch (as the task builds them)."""
            return [n for r in batch for n in bench.lengths(tokenizer, r)]

        users = workload.users(SEEDS[task], n, USER_POOL)
        bad: list[str] = []

        async def engine_call(i: int) -> float:
            out = await self.engine.submit(requests[i], user=users[i])
            if not isinstance(out, result_type):
                bad.append(type(out).__name__)
            return 1.0

        same, same_batches = await self._engine_phase(
            f"{task}: engine @{offered:.1f}/s",
            lambda: open_loop(engine_call, offsets),
            saturated=False,
            lengths=lengths,
        )
        # Capacity is measured in overload: the same requests arriving at several times the ceiling's rate, so
        # the queue holds passes' worth of work from the first second on, as the ceiling has them all at once.
        # (At the schedule above the queue first has to build up, which in a run of a few seconds lowers the
        # rate by the ramp; that rate is kept as `engine_at_offered_rps`.)
        arrival_rate = (n - 1) / offsets[-1] if offsets[-1] > 0 else float("inf")
        kept_up = same.rate >= 0.9 * arrival_rate
        naive_kept_up = naive.rate >= 0.9 * arrival_rate  # then naive_rps is the offered rate, not its capacity
        if naive_kept_up:
            log.warning("  the naive loop kept up with %.1f/s: naive_rps is a lower bound of its capacity", offered)
        if not kept_up:  # the engine was saturated by this schedule: its loop lag counts
            self.lag_saturated += self._last_lag
        sat_rate = max(self.p.saturate * ceiling_rps, 2 * offered)
        sat_offsets = workload.poisson_offsets(SEEDS[task] + 7, n, sat_rate)
        sat, sat_batches = await self._engine_phase(
            f"{task}: engine @{sat_rate:.1f}/s",
            lambda: open_loop(engine_call, sat_offsets),
            saturated=True,
            lengths=lengths,
        )
        sat_arrival = (n - 1) / sat_offsets[-1]
        result: dict[str, Any] = {
            "saturation_offered_rps": _r(sat_rate),
            "saturation_p50_ms": _r(sat.ms(50), 1),
            "saturation_p99_ms": _r(sat.ms(99), 1),
            "engine_batches_saturated": sat_batches,
            "engine_rps_is_lower_bound": sat.rate >= 0.9 * sat_arrival,
        }
        runs = (same, sat)
        engine_rps = sat.rate
        # The ceiling again, right after the engine: the machine's speed drifts by 10-20% within minutes here,
        # so the engine is compared with the mean of the two measurements that bracket it.
        pipe.model.to(getattr(torch, dtype))
        after = bench.ceiling(pipe, texts)
        pipe = None
        gc.collect()
        before_rps, after_rps = ceiling_rps, n / after.seconds
        ceiling_rps = (before_rps + after_rps) / 2
        log.info(
            "  %-26s %7.2f /s  (before the naive loop %.2f /s; the mean is the ceiling)",
            "ceiling after",
            after_rps,
            before_rps,
        )
        result |= {
            "gflop_per_request": _r(flops_per_request / 1e9, 3),
            "engine_gflops": _r(flops_per_request * engine_rps / 1e9, 1),
            "ceiling_gflops": _r(flops_per_request * ceiling_rps / 1e9, 1),
        }
        return {
            "engine_dtype": dtype,
            "ceiling_dtype": dtype,
            "naive_dtype": "float32",
            "naive_rps": _r(naive.rate),
            "ceiling_rps": _r(ceiling_rps),
            "engine_rps": _r(engine_rps),
            "engine_over_naive": _r(engine_rps / naive.rate),
            "engine_over_ceiling": _r(engine_rps / ceiling_rps),
            "p50_ms": _r(same.ms(50), 1),
            "p99_ms": _r(same.ms(99), 1),
            "naive_p50_ms": _r(naive.ms(50), 1),
            "naive_p99_ms": _r(naive.ms(99), 1),
            "offered_rps": _r(offered),
            "naive_calibrated_rps": _r(calibrated),
            "engine_at_offered_rps": _r(same.rate),
            "engine_kept_up_with_offered": kept_up,
            "naive_rps_is_lower_bound": naive_kept_up,
            "requests": n,
            "completed": sum(r.completed for r in runs),
            "refused": sum(r.refused for r in runs),
            "failed": sum(r.failed for r in runs) + naive.failed,
            "wrong_result_type": len(bad),
            "ceiling": {
                "rps_before": _r(before_rps),
                "rps_after": _r(after_rps),
                "seconds": _r(ceiling.seconds, 3),
                "tokenize_seconds": _r(ceiling.tokenize_seconds, 3),
                "rows": ceiling.rows,
                "padding_fraction": _r(1 - ceiling.real_tokens / ceiling.padded_tokens, 3),
                "mean_tokens_per_row": _r(ceiling.real_tokens / ceiling.rows, 1),
                "rows_per_forward": ceiling.rows_per_forward,
                "rps_by_rows_per_forward": {str(r): _r(n / sec) for r, sec in ceiling.seconds_by_rows.items()},
            }
            | ({"mask_only_lm_head_rps": _r(mask_only)} if mask_only else {}),
            "engine_batches_at_offered": same_batches,
        } | result

    # --- generation ------------------------------------------------------------------------
    async def _generation(self) -> dict[str, Any]:
        """16 users, Poisson arrivals faster than any server here keeps up with: tokens/s of the naive
        one-at-a-time loop, of static batching (what waits runs as one generate) and of the engine."""
        p = self.p
        prompts = workload.prompts(SEEDS["generation"], p.gen_requests)
        offsets = workload.poisson_offsets(SEEDS["generation"], p.gen_requests, p.gen_rate)
        users = [f"gen{i % p.gen_users}" for i in range(p.gen_requests)]
        log.info(
            "[generation] %d requests from %d users, Poisson %.1f/s, greedy, max_new_tokens=%d (%s)",
            p.gen_requests,
            p.gen_users,
            p.gen_rate,
            p.max_new_tokens,
            SHAPES["generation"],
        )
        gen = baselines.Generator.load(self.gen_folder, p.max_new_tokens)
        gen.generate(prompts[:2], max_new_tokens=4)  # warm-up
        serve = single_thread_server(gen.naive, units=float)
        naive = await self._plain_phase(
            "generation: naive", lambda: open_loop(lambda i: serve(prompts[i]), offsets[: p.gen_naive_requests])
        )
        static = static_batching_server(gen.generate, p.gen_users)
        batched = await self._plain_phase(
            "generation: static batching", lambda: open_loop(lambda i: static(prompts[i]), offsets)
        )
        gen = serve = static = None  # freed before the engine phase
        gc.collect()

        async def engine_call(i: int) -> float:
            request = GenerationRequest(
                prompt=prompts[i], max_new_tokens=p.max_new_tokens, temperature=0.0, mode="complete"
            )
            out: GenerationResult = await self.engine.submit(request, user=users[i])
            return float(out.new_tokens[0])

        run, batches = await self._engine_phase(
            "generation: engine", lambda: open_loop(engine_call, offsets), saturated=True
        )
        return {
            "naive_rps": _r(naive.rate),
            "static_rps": _r(batched.rate),
            "engine_rps": _r(run.rate),
            "engine_over_naive": _r(run.rate / naive.rate),
            "engine_over_static": _r(run.rate / batched.rate),
            "static_over_naive": _r(batched.rate / naive.rate),
            "p50_ms": _r(run.ms(50), 1),
            "p99_ms": _r(run.ms(99), 1),
            "static_p50_ms": _r(batched.ms(50), 1),
            "static_p99_ms": _r(batched.ms(99), 1),
            "naive_p50_ms": _r(naive.ms(50), 1),
            "naive_p99_ms": _r(naive.ms(99), 1),
            "unit": "tokens/s",
            "requests": p.gen_requests,
            "naive_requests": p.gen_naive_requests,
            "users": p.gen_users,
            "arrival_rate": p.gen_rate,
            "max_new_tokens": p.max_new_tokens,
            "batching": self.engine.status().generation_batching,
            "new_tokens": {"naive": int(naive.units), "static": int(batched.units), "engine": int(run.units)},
            "failed": run.failed + naive.failed + batched.failed,
            "engine_batches": batches,
        }

    # --- mixed load ------------------------------------------------------------------------
    async def _mixed(self) -> dict[str, Any]:
        """Users stream long generations and summaries while sentiment requests arrive: a cheap request
        must not wait for someone else's long job."""
        p = self.p
        prompts = workload.prompts(SEEDS["generation"] + 100, p.mixed_users)
        documents = workload.texts(
            SEEDS["generation"] + 300, p.mixed_summaries, p.mixed_summary_words, p.mixed_summary_words
        )
        texts = workload.texts(SEEDS["sentiment"] + 200, p.mixed_sentiment)
        offsets = [1.0 + t for t in workload.poisson_offsets(SEEDS["sentiment"] + 200, p.mixed_sentiment, p.mixed_rate)]
        log.info(
            "[mixed] %d users stream %d-token generations, %d users summaries of %d words; "
            "%d sentiment requests arrive at %.1f/s from 1 s on",
            p.mixed_users,
            p.mixed_tokens,
            p.mixed_summaries,
            p.mixed_summary_words,
            p.mixed_sentiment,
            p.mixed_rate,
        )
        first_token: list[float] = []
        durations: list[float] = []
        summaries: list[float] = []

        async def stream(request: Request, user: str, took: list[float]) -> None:
            sent = now()
            job = self.engine.submit_job(request, user=user)
            async for _ in job.chunks():
                first_token.append(now() - sent)
                break
            await job.result()
            took.append(now() - sent)

        generations = [
            stream(GenerationRequest(prompt, max_new_tokens=p.mixed_tokens, temperature=0.0), f"streamer{i}", durations)
            for i, prompt in enumerate(prompts)
        ]
        summarizing = [
            stream(SummarizationRequest(text), f"summarizer{i}", summaries) for i, text in enumerate(documents)
        ]

        async def sentiment(i: int) -> float:
            await self.engine.submit(SentimentRequest(texts=(texts[i],)), user=f"reader{i}")
            return 1.0

        async def both() -> RunResult:
            streams = asyncio.gather(*generations, *summarizing)
            run = await open_loop(sentiment, offsets)
            await streams
            return run

        run, _ = await self._engine_phase("mixed: sentiment during streams", both, saturated=True, per_unit=False)
        generation = workload.pct(durations, 50)
        return {
            "sentiment_p50_ms": _r(run.ms(50), 1),
            "sentiment_p99_ms": _r(run.ms(99), 1),
            "sentiment_requests": run.completed,
            "generation_p50_s": _r(generation, 2),
            "generation_max_s": _r(max(durations), 2),
            "summary_p50_s": _r(workload.pct(summaries, 50), 2),
            "summaries": len(summaries),
            "summary_words": p.mixed_summary_words,
            "sentiment_p99_over_generation": _r(run.ms(99) / 1000 / generation, 4) if generation else None,
            "ttft_p50_ms": _r(1000 * workload.pct(first_token, 50), 1),
            "ttft_p99_ms": _r(1000 * workload.pct(first_token, 99), 1),
            "users": p.mixed_users,
            "max_new_tokens": p.mixed_tokens,
            "sentiment_rate": p.mixed_rate,
            "failed": run.failed,
        }

    # --- incidents --------------------------------------------------------------------------
    async def _incidents(self) -> dict[str, Any]:
        """The four cases issue 7 started from: a cheap request 0.5 s into a 256-token chat answer,
        cancelling a running generation, and a worker that hangs (SIGSTOP)."""
        chat = "Write a long story about a robot who learns to paint."
        quick = SentimentRequest(texts=("What a great match that was!",))

        async def timed(coro) -> float:
            started = now()
            await coro
            return now() - started

        idle = sorted([await timed(self.engine.submit(quick, user="probe")) for _ in range(5)])[2]
        story = self.engine.submit_job(
            GenerationRequest(chat, max_new_tokens=256, temperature=0.0, mode="chat"), user="writer"
        )
        started = now()
        await asyncio.sleep(0.5)
        behind = await timed(self.engine.submit(quick, user="probe"))
        await story.result()
        story_seconds = now() - started

        job = self.engine.submit_job(
            GenerationRequest(chat, max_new_tokens=256, temperature=0.0, mode="chat"), user="writer"
        )
        async for _ in job.chunks():
            break
        cancelled_at = now()
        job.cancel()
        while self.engine.scheduler._decoding_rows or self.worker._units:  # until the worker has stopped it
            await asyncio.sleep(0.005)
        stop_seconds = now() - cancelled_at

        job = self.engine.submit_job(
            GenerationRequest(chat, max_new_tokens=256, temperature=0.0, mode="chat"), user="writer"
        )
        async for _ in job.chunks():
            break
        hung_at = now()
        os.kill(self.worker.info.pid, signal.SIGSTOP)
        try:
            await job.result()
            detected = None
        except WorkerStalled:
            detected = now() - hung_at
        state = self.engine.status().worker_state
        await self.engine.submit(quick, user="probe")  # the new worker loads its model, then answers
        recovered = now() - hung_at
        log.info(
            "[incidents] sentiment idle %.0f ms, 0.5 s into a 256-token chat answer %.0f ms (answer took %.1f s); "
            "cancel stopped a generation in %.0f ms; a hung worker was detected after %s s (%s) "
            "and served again after %.1f s",
            1000 * idle,
            1000 * behind,
            story_seconds,
            1000 * stop_seconds,
            detected and round(detected, 1),
            state,
            recovered,
        )
        return {
            "sentiment_idle_ms": _r(1000 * idle, 1),
            "sentiment_behind_generation_ms": _r(1000 * behind, 1),
            "generation_seconds": _r(story_seconds, 2),
            "cancel_stop_ms": _r(1000 * stop_seconds, 1),
            "stall_limit_s": STALL_TIMEOUT,
            "stall_detected_s": _r(detected, 2),
            "state_after_stall": state,
            "served_again_s": _r(recovered, 2),
        }

    # --- fairness --------------------------------------------------------------------------
    async def _fairness(self) -> dict[str, Any]:
        p = self.p
        light_texts = workload.texts(SEEDS["light"], p.light_requests, 10, 25)
        flood_texts = workload.texts(SEEDS["sentiment"] + 500, 512)
        offsets = [float(i) for i in range(p.light_requests)]  # one request a second

        async def light(i: int) -> float:
            await self.engine.submit(SentimentRequest(texts=(light_texts[i],)), user="light-user")
            return 1.0

        log.info(
            "[fairness] light user: %d sentiment requests, one a second; heavy user: %d outstanding (one user id)",
            p.light_requests,
            p.flood_concurrency,
        )
        idle = await self._plain_phase("light user, engine idle", lambda: open_loop(light, offsets), per_unit=False)

        stop = False
        queued = 0
        heavy = RunResult()
        heavy.started = now()
        jobs: set = set()

        async def flooder(k: int) -> None:
            i = k
            while not stop:
                sent = now()
                try:
                    job = self.engine.submit_job(
                        SentimentRequest(texts=(flood_texts[i % len(flood_texts)],)), user="heavy-user"
                    )
                except EngineError:  # refused (Busy): counted, and this flooder stops
                    heavy.refused += 1
                    return
                jobs.add(job)
                try:
                    await job.result()
                except Cancelled:
                    return
                except EngineError:
                    heavy.failed += 1
                    continue
                finally:
                    jobs.discard(job)
                heavy.record(sent, 1.0)
                i += p.flood_concurrency

        async def flooded() -> RunResult:
            nonlocal stop, queued
            floods = [asyncio.create_task(flooder(k)) for k in range(p.flood_concurrency)]
            await asyncio.sleep(1.5)  # let the queue fill
            queued = self.engine.status().queued
            run = await open_loop(light, offsets)
            stop = True
            for job in list(jobs):
                job.cancel()  # queued ones are dropped; the running batch finishes
            await asyncio.gather(*floods)
            return run

        preempted = self.engine.metrics.preempted["sentiment"]
        busy, batches = await self._engine_phase("light user, heavy flood", flooded, saturated=True, per_unit=False)
        preempted = self.engine.metrics.preempted["sentiment"] - preempted
        heavy_rps = heavy.completed / heavy.seconds
        return {
            "light_user_p99_ms": _r(busy.ms(99), 1),
            "light_user_idle_p99_ms": _r(idle.ms(99), 1),
            "light_user_p50_ms": _r(busy.ms(50), 1),
            "light_user_idle_p50_ms": _r(idle.ms(50), 1),
            "light_requests": p.light_requests,
            "light_failed": busy.failed + busy.refused,
            "heavy_user_outstanding": p.flood_concurrency,
            "heavy_queue_depth_at_start": queued,
            "heavy_rps": _r(heavy_rps),
            "heavy_p50_ms": _r(heavy.ms(50), 1),
            "heavy_refused": heavy.refused,
            "passes_preempted": preempted,  # flood passes given up mid-pass for the light user's request
            "heavy_failed": heavy.failed,
            # What the light user would wait in a plain FIFO queue behind the flood.
            "fifo_wait_estimate_ms": _r(1000 * p.flood_concurrency / heavy_rps, 1) if heavy_rps else None,
            "flood_user_ids": 1,
            "max_per_user": self.config.max_per_user,
            "engine_batches": batches,
        }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def _tf_version() -> str:
    import transformers

    return transformers.__version__


async def run(profile: str, wait_quiet: float = 0.0) -> dict[str, Any]:
    return await Bench(PROFILES[profile], wait_quiet).run()
