"""The console's moderation view: a server's calibrated policies (/policies) and how its learned labels do,
with the learning curve (/learning), read from the database the bot writes (Settings.database). The same
renders as /policy list and /labelset report on Discord."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .engine import Request
from .engine.errors import InvalidInput
from .engine.request import Option
from .learning import TOO_FEW_FOR_CURVE, learning_curve, render_curve, report_request
from .moderation import identical_labels, render_fine_tuning, render_report
from .policies import render_policies
from .reply import Reply
from .settings import Settings
from .specs.zero_shot import EMBEDDING
from .storage import Storage

SERVER = Option("server", int, "The server's id (optional when the database holds one server)", None)
OPTIONS: dict[str, tuple[Option, ...]] = {"policies": (SERVER,), "learning": (SERVER,)}


class ModerationView:
    """Opens the bot's database on the first moderation command (other commands never touch it)."""

    def __init__(self, settings: Settings, submit: Callable[[Request], Awaitable[Any]]) -> None:
        self.settings = settings
        self.submit = submit  # runs a request on the console's engine
        self.storage: Storage | None = None

    async def run(self, command: str, options: dict[str, Any]) -> tuple[Reply, dict[str, Any]]:
        """The reply to show and the --json result of /policies or /learning."""
        storage = await self.open()
        guild_id = await self.server(storage, options.get("server"))
        if command == "policies":
            return await self.policies(storage, guild_id)
        return await self.learning(storage, guild_id)

    async def open(self) -> Storage:
        if self.storage is None:
            target = self.settings.database
            if isinstance(target, Path) and not target.exists():  # opening would create an empty one
                raise InvalidInput(f"There is no database at {target}: the bot has stored nothing yet (DATABASE_PATH).")
            storage = Storage(target)
            await storage.open()
            self.storage = storage
        return self.storage

    async def close(self) -> None:
        if self.storage is not None:
            await self.storage.close()

    @staticmethod
    async def server(storage: Storage, given: int | None) -> int:
        """The server asked for, or the database's only one."""
        known = await storage.guild_ids()
        listed = ", ".join(map(str, known[:10])) + (", …" if len(known) > 10 else "")
        if given is not None:
            if given not in known:
                there = f" Servers there: {listed}." if known else ""
                raise InvalidInput(f"The database has no server {given}.{there}")
            return given
        if not known:
            raise InvalidInput("The database has no servers yet: nothing was tagged or set on Discord.")
        if len(known) > 1:
            raise InvalidInput(f"The database has {len(known)} servers: name one with server: ({listed}).")
        return known[0]

    async def policies(self, storage: Storage, guild_id: int) -> tuple[Reply, dict[str, Any]]:
        policies = await storage.policies.policies(guild_id)
        if not policies:
            raise InvalidInput(f"Server {guild_id} has no policies (its moderators set them with /policy set).")
        data = {"server": guild_id, "policies": [dataclasses.asdict(policy) for policy in policies]}
        return render_policies(policies, f"Policies of server {guild_id}"), data

    async def learning(self, storage: Storage, guild_id: int) -> tuple[Reply, dict[str, Any]]:
        store = storage.moderation
        config, pairs = await store.config(guild_id), await store.examples(guild_id)
        min_examples = self.settings.min_examples
        request = report_request(config, pairs, min_examples)
        curve = await learning_curve(self.submit, config, pairs, await store.asked_messages(guild_id))
        if not curve.points:
            raise InvalidInput(f"Server {guild_id} has {TOO_FEW_FOR_CURVE}.")
        evaluation = await self.submit(request)
        encoder = await store.encoder(guild_id)
        fits = encoder is not None and encoder.fits(config, self.settings.engine.models[EMBEDDING.name])
        reply = render_report(
            evaluation,
            identical_labels(pairs, config),
            min_examples,
            render_fine_tuning(encoder, config.store_text, fits),
            render_curve(curve),
        )
        reply.title = f"{reply.title}, server {guild_id}"
        report = {k: v for k, v in dataclasses.asdict(evaluation).items() if k != "held_out"}  # one row per example
        return reply, {"server": guild_id, "curve": dataclasses.asdict(curve), "report": report}
