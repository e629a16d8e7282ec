"""Typed messages between the bot process and the worker process (pickled over a pipe).

The parent hands the worker *units* of work: a classification unit is one forward
pass worth of requests; a generation unit is one request, which decodes alongside
the others. Results come back per job, so each request finishes on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import ModelInfo
from .passes import PassShape
from .request import Request

# --- parent -> worker ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunUnit:
    unit_id: int
    task: str
    jobs: list[tuple[int, Request]]  # (job id, request)

    @property
    def streams(self) -> bool:
        """A unit of a streaming task: each request decodes on its own, alongside the others."""
        return self.jobs[0][1].streams


@dataclass(frozen=True)
class CancelJob:
    """Stop a job at the next step (its caller went away or its deadline passed)."""

    job_id: int


@dataclass(frozen=True)
class StopWorker:
    pass


ToWorker = RunUnit | CancelJob | StopWorker

# --- worker -> parent ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerFailed:
    """The worker can't start (e.g. DEVICE names a GPU it does not have); then it exits."""

    reason: str  # for the operator: what to change


@dataclass(frozen=True)
class WorkerReady:
    pid: int
    device: str
    dtypes: dict[str, str]  # role -> dtype the role's model runs in
    generation_batching: str  # "continuous" or "static": what new generation requests get
    passes: PassShape  # how big one classification forward pass is on this device
    preemptible: bool = False  # a classification unit can be given up mid-pass (preemption.py)


@dataclass(frozen=True)
class UnitStarted:
    unit_id: int


@dataclass(frozen=True)
class Chunk:
    job_id: int
    sequence: int
    text: str


@dataclass(frozen=True)
class JobDone:
    job_id: int
    outcome: Any  # a result dataclass or a Failure


@dataclass(frozen=True)
class UnitDone:
    """Every job of the unit has an outcome (or was cancelled): its slot is free again."""

    unit_id: int
    seconds: float
    phases: dict[str, float] | None = None  # seconds per phase (wait, tokenize, ...) with profile_passes on
    preempted: bool = False  # given up for a newcomer: no job of it was reported, all go back to the queue


@dataclass(frozen=True)
class Heartbeat:
    """Sent twice a second by the worker; the parent's watchdog reads it."""

    steps: int  # forward passes completed so far
    step_running_for: float | None  # seconds the current forward pass has been running
    loading: bool  # a model is being loaded (slow, but progress)
    models: tuple[ModelInfo, ...] = ()  # the models in memory, most recently used first
    dtypes: dict[str, str] = field(default_factory=dict)  # role -> dtype its model runs (or will run) in


FromWorker = WorkerFailed | WorkerReady | UnitStarted | Chunk | JobDone | UnitDone | Heartbeat
