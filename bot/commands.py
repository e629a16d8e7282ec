"""The command layer, shared by the Discord cogs and the console: options -> a validated request,
and a result or an error -> a neutral `Reply` that each front end draws its own way.

Which commands exist, their options and how their results render are the task specs' (bot/specs/);
this module only reads them. A request is validated here even though Discord enforces the options'
ranges: the console and direct calls do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .engine import EngineError, EngineStatus, Request
from .engine.errors import Busy, DeadlineExceeded, InvalidInput, ModelUnavailable, WorkerCrashed
from .engine.request import Option
from .reply import Reply
from .settings import Settings
from .specs import Command, commands, spec_of_result

# Every command takes it on Discord (an ephemeral answer); the console accepts it too, where every answer is private.
PRIVATE = Option("private", bool, "Only you see the answer", False)


def command(name: str) -> Command:
    """A task command by name; InvalidInput for a name no task declares."""
    found = commands().get(name)
    if found is None:
        raise InvalidInput(f"There is no command /{name}.")
    return found


def model_suggestions(settings: Settings, role: str, typed: str) -> list[str]:
    """The role's allowed models that contain what the member typed so far (Discord shows at most 25)."""
    return [model for model in settings.engine.allowed(role) if typed.casefold() in model.casefold()][:25]


def build_request(name: str, options: Mapping[str, Any], settings: Settings, **context: Any) -> Request:
    """Options as the member gave them -> a validated request (raises InvalidInput). `context` is what the
    caller adds that no member types (a conversation's history, the server's system prompt)."""
    declared = command(name)
    check_usage(name, declared.options, options)
    values = {option.name: options.get(option.name, option.default) for option in declared.options}
    request = declared.build(settings, {**values, **context})
    request.validate()
    return request


def check_usage(name: str, declared: Sequence[Option], options: Mapping[str, Any]) -> None:
    """Every required option given, and no unknown one (the console has no form to enforce it)."""
    unknown = sorted(set(options) - {option.name for option in declared})
    missing = [option.name for option in declared if option.required and option.name not in options]
    if unknown or missing:
        problem = f"unknown option {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise InvalidInput(f"/{name}: {problem}. Usage: /{name} {usage(declared)}")


def usage(declared: Sequence[Option]) -> str:
    return " ".join(f"{option.name}:" if option.required else f"[{option.name}:]" for option in declared)


def render_result(result: Any) -> Reply:
    return spec_of_result(result).render(result)


def render_waiting(position: int, eta: float) -> str:
    ahead = "you are next" if position == 0 else f"{position} ahead of you"
    return f"⏳ In the queue: {ahead}, about {max(1, round(eta))} s."


_ERROR_TITLES = {
    InvalidInput: "That didn't work",
    Busy: "Busy",
    DeadlineExceeded: "Timed out",
    ModelUnavailable: "Model unavailable",
    WorkerCrashed: "Please try again",
}


def render_error(error: EngineError) -> Reply:
    title = next((t for cls, t in _ERROR_TITLES.items() if isinstance(error, cls)), "Sorry")
    return Reply(title, [str(error)], tone="busy" if isinstance(error, Busy) else "error")


def render_apology(error_id: str) -> Reply:
    return Reply(
        "Sorry", [f"Something went wrong on my side. It has been logged (error id `{error_id}`)."], tone="error"
    )


def render_status(status: EngineStatus, settings: Settings) -> Reply:
    def ms(seconds: float | None) -> str:
        return "–" if seconds is None else f"{seconds * 1000:.0f}"

    by_dtype: dict[str, list[str]] = {}  # roles that share a dtype are listed together
    for role, dtype in status.dtypes.items():
        by_dtype.setdefault(dtype, []).append(role)
    batching = f" · {status.generation_batching} batching" if status.generation_batching else ""
    stalls = f" ({status.worker_stalls} after a stall)" if status.worker_stalls else ""
    lines = [
        f"**Device** {status.device} · profile {settings.profile}",
        "**Precision** " + " · ".join(f"{dtype}: {', '.join(roles)}" for dtype, roles in by_dtype.items()),
        f"**Worker** {status.worker_state} · restarts {status.worker_restarts}{stalls}{batching}",
        f"**Queue** {status.queued} waiting · {status.running} running · {status.queued_background} background",
    ]
    if status.shed:
        lines.append(
            "**Refused or dropped** " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(status.shed.items()))
        )
    budget = f" of a {status.memory_budget_mb:,.0f} MB budget" if status.memory_budget_mb else ""
    models = (
        "\n".join(
            [
                f"{sum(m.megabytes for m in status.models):,.1f} MB in memory{budget}; most recently used first",
                *(
                    f"{m.model_id} · {', '.join(m.roles)} · {m.dtype}"
                    + (f" · {m.megabytes:,.1f} MB" if m.megabytes else "")
                    + (f" · replica {m.replica}" if m.replica else "")
                    for m in status.models
                ),
            ]
        )
        if status.models
        else "none yet (each loads on first use)"
    )
    fields = [("Loaded models", models)]
    for task, t in status.tasks.items():
        fields.append(
            (
                task,
                f"served {t.served} · failed {t.failed}\nwait p50/p95 {ms(t.wait_p50)}/{ms(t.wait_p95)} ms\n"
                f"compute p50/p95 {ms(t.compute_p50)}/{ms(t.compute_p95)} ms\n"
                f"batch {t.mean_batch_size or 0:.1f} avg",
            )
        )
    return Reply("Status", lines, fields=fields[:25], tone="info")


def result_data(result: Any) -> dict[str, Any]:
    """A result as JSON-ready data (the console's --json output)."""
    return dataclasses.asdict(result)
