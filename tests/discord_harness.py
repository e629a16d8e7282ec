"""Offline test harness for discord.py 2.x bots.

Drives a bot's *real* ``app_commands.CommandTree`` / view store / event dispatch with
*real* ``discord.Interaction`` and ``discord.Message`` objects built from raw gateway
payloads, while the two HTTP exits of discord.py are replaced by a :class:`Recorder`:

* ``client.http.request`` (REST: channel messages, reactions, threads, command sync, ...)
* the webhook adapter (``discord.webhook.async_.async_context``), through which every
  interaction response, defer, followup and edit/delete of the original response goes.

Everything above those two functions (payload building, ``allowed_mentions`` merging,
file handling, ``InteractionMessage`` / ``WebhookMessage`` construction, view storage)
is discord.py's own code.  The recorder plays "Discord server": it records each call and
answers with plausible JSON (fresh snowflakes, timestamps, a message store that applies
edits), so discord.py keeps working after the call.

Usage::

    harness = await FakeDiscord.create(bot)          # no login / gateway needed
    await harness.invoke_slash("labelset add", {"name": "bug", "count": 3})
    assert "bug" in harness.recorder.all_text()
    await harness.close()

See ``tests/test_discord_harness.py`` for complete examples.

Things a test author must know (discord.py 2.7 behaviour, verified by the self-test):

* Completion: each ``invoke_*`` / ``dispatch_message`` returns after every task the
  dispatch started has finished (tree invoker, view dispatch, ``on_*`` event
  handlers, and whatever those spawn).  Tasks are tracked through a loop task factory
  installed by :meth:`FakeDiscord.create`.  Pass ``wait=False`` to act while a callback
  is still running (e.g. press Stop during a stream), then ``await harness.settle()``.
* ``Range[int, 1, 5]``, ``Range[str, ...]`` and ``Literal[...]`` are **not** checked by
  discord.py (identity transformers; Discord enforces them).  A forged out-of-range value
  reaches the callback unchanged and no error is raised.  The harness rejects such values
  itself with :class:`DiscordValidationError` unless ``validate=False``.  ``Enum`` and
  ``Choice[T]`` parameters *are* converted locally, so a bad value becomes
  ``app_commands.TransformerError`` at the tree's ``on_error``; an exception raised in a
  callback arrives there as ``app_commands.CommandInvokeError`` (``.original``).
* Default ``CommandTree.on_error`` / ``View.on_error`` / ``Client.on_error`` only *log*;
  tests do not fail by themselves.  Use ``harness.errors`` / ``assert_no_errors()``.
* The 3-second initial-response deadline is not enforced (Discord does that); the
  15-minute token lifetime is, from the interaction id's timestamp (``invoke_slash(age=)``
  sends an old one): every call for it gets 404 like Discord's.  ``InteractionResponded``
  for a second response *is* raised by discord.py itself.  The recorder answers a followup /
  ``edit_original_response`` sent before any initial response with 404 Unknown Webhook.
* Without the ``message_content`` intent, guild messages that don't mention the bot
  arrive with empty content (the harness blanks them like Discord; message context menu
  targets keep their content).
* ``interaction.permissions`` comes from the payload (``permissions=`` argument), while
  ``Member.guild_permissions`` is computed by discord.py from cached roles; members are
  only cached when the client's member cache flags allow it (members intent).
  ``interaction.app_permissions`` is the bot's own in the channel, computed like Discord does
  from its roles and the channel's overwrites (:meth:`FakeDiscord.set_overwrite`); the bot
  starts with @everyone's permissions only, so give it a role for more.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import json
import logging
import mimetypes
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import discord
from discord import app_commands
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter, async_context

__all__ = [
    "FakeDiscord",
    "Recorder",
    "Record",
    "RecordedFile",
    "DiscordValidationError",
    "HarnessTimeout",
    "make_http_error",
    "next_snowflake",
]

_log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: Interaction callback (response) types, for readability in tests.
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
MODAL = 9

EPHEMERAL = 1 << 6  # MessageFlags.ephemeral
LOADING = 1 << 7  # MessageFlags.loading ("Bot is thinking...")

#: Seconds an interaction token can be used (Discord's limit).
INTERACTION_LIFETIME = 15 * 60

#: Default attachment size limit put into interaction payloads (10 MiB, Discord's default).
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

#: Permissions the @everyone role gets in the fake guild.
DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    read_message_history=True,
    add_reactions=True,
    embed_links=True,
    attach_files=True,
    use_application_commands=True,
    use_external_emojis=True,
    connect=True,
    speak=True,
    change_nickname=True,
    create_instant_invite=True,
)

# Names of tasks that carry "work" triggered by a dispatched interaction/message and that
# the harness waits for.  (View timeout tasks and ``delete_after`` sleepers are unnamed
# or not listed here, so they are never waited for.)
_WORK_TASK_PREFIXES = (
    "CommandTree-invoker",  # app_commands.CommandTree._from_interaction
    "discord-ui-view-dispatch-",  # View._dispatch_item
    "discord-ui-dynamic-item-",  # ViewStore.dispatch_dynamic_items
    "discord-ui-modal-dispatch-",  # Modal._dispatch_submit
    "discord.py: ",  # Client._schedule_event (on_interaction, on_message, listeners ...)
)


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------

_last_snowflake = 0


def next_snowflake() -> int:
    """Return a fresh, strictly increasing snowflake whose timestamp is *now*."""
    global _last_snowflake
    now = discord.utils.time_snowflake(datetime.now(timezone.utc))
    _last_snowflake = max(_last_snowflake + 1, now)
    return _last_snowflake


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _age(snowflake: int) -> float:
    """Seconds since the snowflake was made."""
    return (datetime.now(timezone.utc) - discord.utils.snowflake_time(snowflake)).total_seconds()


def _snowflake_of(value: Any) -> int:
    if isinstance(value, (int, str)):
        return int(value)
    return int(value.id)


_HTTP_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class _FakeResponse:
    """Just enough of ``aiohttp.ClientResponse`` for ``discord.HTTPException``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = _HTTP_REASONS.get(status, "Error")
        self.headers: dict[str, str] = {}


def make_http_error(status: int, code: int = 0, message: str = "") -> discord.HTTPException:
    """Build the ``discord.HTTPException`` subclass discord.py would raise for ``status``."""
    data = {"code": code, "message": message}
    resp: Any = _FakeResponse(status)
    if status == 403:
        return discord.Forbidden(resp, data)
    if status == 404:
        return discord.NotFound(resp, data)
    if status >= 500:
        return discord.DiscordServerError(resp, data)
    return discord.HTTPException(resp, data)


def _unknown_webhook() -> discord.HTTPException:
    return make_http_error(404, 10015, "Unknown Webhook")


def _unknown_message() -> discord.HTTPException:
    return make_http_error(404, 10008, "Unknown Message")


def _walk_components(components: Iterable[JSON]) -> Iterator[JSON]:
    """Yield every component dict (action rows and what they hold)."""
    for comp in components or []:
        yield comp
        yield from _walk_components(comp.get("components") or [])


def payload_text(payload: Mapping[str, Any] | None) -> list[str]:
    """Human-visible text of a message payload: content and embed parts."""
    if not payload:
        return []
    parts: list[str] = []
    if payload.get("content"):
        parts.append(str(payload["content"]))
    for embed in payload.get("embeds") or []:
        author = (embed.get("author") or {}).get("name")
        for piece in (author, embed.get("title"), embed.get("description")):
            if piece:
                parts.append(str(piece))
        for fld in embed.get("fields") or []:
            parts.append(f"{fld.get('name', '')}: {fld.get('value', '')}")
        footer = (embed.get("footer") or {}).get("text")
        if footer:
            parts.append(str(footer))
    return parts


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


@dataclass
class RecordedFile:
    """A file uploaded with a request (bytes read at request time)."""

    filename: str
    data: bytes


@dataclass
class Record:
    """One outgoing Discord HTTP call.

    ``payload`` is the message-like JSON body; for interaction callbacks (``kind ==
    "response"``) it is the inner ``data`` object and ``response_type`` holds the callback
    type (4 message, 5 deferred/thinking, 6 deferred update, 7 update message, 8
    autocomplete).  ``body`` is the full JSON body exactly as sent.
    """

    kind: str
    method: str
    route: str
    url: str
    params: dict[str, str] = field(default_factory=dict)
    payload: JSON = field(default_factory=dict)
    body: Any = None
    files: list[RecordedFile] = field(default_factory=list)
    query: dict[str, Any] | None = None
    reason: str | None = None
    response_type: int | None = None
    interaction_id: int | None = None
    message_id: int | None = None
    channel_id: int | None = None
    result: Any = None
    error: BaseException | None = None
    unhandled: bool = False

    @property
    def content(self) -> str | None:
        return self.payload.get("content")

    @property
    def embeds(self) -> list[JSON]:
        return list(self.payload.get("embeds") or [])

    @property
    def components(self) -> list[JSON]:
        return list(self.payload.get("components") or [])

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def allowed_mentions(self) -> JSON | None:
        return self.payload.get("allowed_mentions")

    @property
    def filenames(self) -> list[str]:
        return [f.filename for f in self.files]

    def text(self) -> str:
        """Content + embed texts of this record, newline separated."""
        return "\n".join(payload_text(self.payload))


@dataclass
class _InteractionState:
    interaction_id: int
    interaction_type: int
    channel_id: int
    source_message_id: int | None = None  # component interactions: the clicked message
    command_type: int | None = None
    responded: bool = False
    response_type: int | None = None
    original_message_id: int | None = None


class DiscordValidationError(ValueError):
    """Discord itself would have refused/never sent this interaction (harness-side check)."""


class HarnessTimeout(TimeoutError):
    """Work triggered by a dispatch did not finish in time."""


# --------------------------------------------------------------------------------------
# recorder / fake Discord server
# --------------------------------------------------------------------------------------

_MESSAGE_KINDS = frozenset({"response", "followup", "edit_original", "send_message", "edit_message"})


class Recorder:
    """Captures every outgoing Discord HTTP call and answers like Discord would.

    Also acts as the fake server's data store: ``messages`` (id -> current message JSON,
    edits applied) and ``users``/``members``/``roles``/``channels`` (raw payloads).
    """

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.messages: dict[int, JSON] = {}
        #: Messages whose content the client may not read (no message_content intent): history returns them blank.
        self.unreadable: set[int] = set()
        self.users: dict[int, JSON] = {}
        self.members: dict[int, JSON] = {}  # guild member payloads without "user"
        self.roles: dict[int, JSON] = {}
        self.channels: dict[int, JSON] = {}
        self.synced_commands: dict[int | None, list[JSON]] = {}
        self.bot_user: JSON = {}
        self.application_id: int = 0
        self.guild_id: int | None = None
        self.owner_id: int | None = None
        self._interactions: dict[str, _InteractionState] = {}
        #: The last modal the bot opened (its response payload's data), kept across ``clear()``.
        self.modal: JSON | None = None
        self._failures: list[tuple[str, discord.HTTPException]] = []
        #: Called with a thread's payload when the bot starts one
        #: (FakeDiscord adds it to the guild, as THREAD_CREATE does).
        self.on_thread_created: Callable[[JSON], None] = lambda payload: None
        #: The guild's AutoMod rules, as Discord returns them (created through the API, or put here by a test).
        self.automod_rules: dict[int, JSON] = {}

    # ---------------------------------------------------------------- accessors
    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def kinds(self) -> list[str]:
        """Kinds of all records in order, e.g. ``["response", "edit_original"]``."""
        return [r.kind for r in self.records]

    def of_kind(self, *kinds: str) -> list[Record]:
        """Records whose ``kind`` is one of ``kinds`` (all records if none given)."""
        return [r for r in self.records if not kinds or r.kind in kinds]

    def last(self, *kinds: str) -> Record | None:
        """Most recent record (optionally restricted to ``kinds``)."""
        found = self.of_kind(*kinds)
        return found[-1] if found else None

    def message_records(self) -> list[Record]:
        """Records that carry a message payload (responses, followups, sends, edits)."""
        return [r for r in self.records if r.kind in _MESSAGE_KINDS]

    def embeds(self, *kinds: str) -> list[JSON]:
        """All embed dicts sent, in order."""
        recs = self.of_kind(*kinds) if kinds else self.message_records()
        return [e for r in recs for e in r.embeds]

    def all_text(self, *kinds: str) -> str:
        """Content + embed author/title/description/fields/footer of all records, joined."""
        recs = self.of_kind(*kinds) if kinds else self.message_records()
        return "\n".join(part for r in recs for part in payload_text(r.payload))

    def files(self, *kinds: str) -> list[RecordedFile]:
        """All uploaded files, in order."""
        return [f for r in self.of_kind(*kinds) for f in r.files]

    def message(self, message_id: int) -> JSON | None:
        """Current server-side JSON of a message (edits applied), or None."""
        return self.messages.get(int(message_id))

    def clear(self) -> None:
        """Forget recorded calls (the message store is kept)."""
        self.records.clear()

    # ---------------------------------------------------------------- fault injection
    def fail_next(self, kind: str, status: int = 403, code: int = 50013, message: str = "Missing Permissions") -> None:
        """Make the next call of ``kind`` raise the matching ``discord.HTTPException``."""
        self._failures.append((kind, make_http_error(status, code, message)))

    # ---------------------------------------------------------------- interaction registry
    def register_interaction(self, payload: JSON) -> None:
        """Called by the harness before dispatching an interaction payload."""
        message = payload.get("message")
        self._interactions[payload["token"]] = _InteractionState(
            interaction_id=int(payload["id"]),
            interaction_type=int(payload["type"]),
            channel_id=int(payload["channel_id"]),
            source_message_id=int(message["id"]) if message else None,
            command_type=(payload.get("data") or {}).get("type"),
        )

    # ---------------------------------------------------------------- message building
    def _attachment(self, channel_id: int, filename: str, data: bytes) -> JSON:
        aid = next_snowflake()
        url = f"https://cdn.discordapp.com/attachments/{channel_id}/{aid}/{filename}"
        return {
            "id": str(aid),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
            "content_type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
        }

    def _attachments(self, body: JSON, files: list[RecordedFile], channel_id: int, existing: list[JSON]) -> list[JSON]:
        specs = body.get("attachments")
        if specs is None:
            specs = [{"id": str(a["id"])} for a in existing] + [
                {"id": i, "filename": f.filename} for i, f in enumerate(files)
            ]
        by_id = {str(a["id"]): a for a in existing}
        result: list[JSON] = []
        for spec in specs:
            sid = str(spec.get("id"))
            if sid in by_id:
                result.append(by_id[sid])
                continue
            try:
                f = files[int(spec["id"])]
            except (KeyError, ValueError, IndexError, TypeError):
                continue
            result.append(self._attachment(channel_id, f.filename, f.data))
        return result

    def _mentions(self, content: str) -> tuple[list[JSON], list[str], bool]:
        users = []
        for uid in dict.fromkeys(int(x) for x in re.findall(r"<@!?(\d+)>", content or "")):
            if uid in self.users:
                users.append(dict(self.users[uid]))
        roles = list(dict.fromkeys(re.findall(r"<@&(\d+)>", content or "")))
        everyone = "@everyone" in (content or "") or "@here" in (content or "")
        return users, roles, everyone

    def new_message(
        self,
        body: JSON,
        files: Sequence[RecordedFile] = (),
        *,
        channel_id: int,
        author: JSON | None = None,
        msg_type: int = 0,
        extra_flags: int = 0,
        webhook: bool = False,
    ) -> JSON:
        """Create + store the JSON Discord would return for a newly created message."""
        mid = next_snowflake()
        content = body.get("content") or ""
        mentions, mention_roles, everyone = self._mentions(content)
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": msg_type,
            "content": content,
            "author": dict(author or self.bot_user),
            "embeds": copy.deepcopy(body.get("embeds") or []),
            "components": copy.deepcopy(body.get("components") or []),
            "attachments": self._attachments(body, list(files), channel_id, []),
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": everyone,
            "pinned": False,
            "tts": bool(body.get("tts", False)),
            "timestamp": _iso_now(),
            "edited_timestamp": None,
            "flags": int(body.get("flags") or 0) | extra_flags,
            "reactions": [],
        }
        if webhook:
            msg["webhook_id"] = str(self.application_id)
            msg["application_id"] = str(self.application_id)
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            msg["type"] = 19  # REPLY
            msg["message_reference"] = dict(ref, channel_id=str(ref.get("channel_id") or channel_id))
            referenced = self.messages.get(int(ref["message_id"]))
            if referenced is not None:
                msg["referenced_message"] = {k: v for k, v in referenced.items() if k != "referenced_message"}
        self.messages[mid] = msg
        return msg

    def apply_edit(self, message_id: int, body: JSON, files: Sequence[RecordedFile] = ()) -> JSON:
        """Apply an edit payload to a stored message and return its new JSON."""
        msg = self.messages.get(int(message_id))
        if msg is None:
            raise _unknown_message()
        if "content" in body:
            msg["content"] = body["content"] or ""
            msg["mentions"], msg["mention_roles"], msg["mention_everyone"] = self._mentions(msg["content"])
        for key in ("embeds", "components"):
            if key in body:
                msg[key] = copy.deepcopy(body[key] or [])
        if "attachments" in body or files:
            msg["attachments"] = self._attachments(body, list(files), int(msg["channel_id"]), msg["attachments"])
        flags = int(msg.get("flags") or 0) & ~LOADING
        if body.get("flags") is not None:
            flags = (flags & EPHEMERAL) | int(body["flags"])
        msg["flags"] = flags
        msg["edited_timestamp"] = _iso_now()
        return msg

    def find_component(self, custom_id: str, message_id: int | None = None) -> tuple[int | None, JSON | None]:
        """Locate a component by ``custom_id`` (newest message first)."""
        ids = [int(message_id)] if message_id is not None else sorted(self.messages, reverse=True)
        for mid in ids:
            msg = self.messages.get(mid)
            if msg is None:
                continue
            for comp in _walk_components(msg.get("components") or []):
                if comp.get("custom_id") == custom_id:
                    return mid, comp
        return (int(message_id) if message_id is not None else None), None

    # ---------------------------------------------------------------- request plumbing
    @staticmethod
    def _route_params(route: Route) -> dict[str, str]:
        pattern = re.escape(route.path)
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/?]+)", pattern)
        m = re.fullmatch(Route.BASE.replace(".", r"\.") + pattern, route.url)
        return {k: unquote(v) for k, v in (m.groupdict() if m else {}).items()}

    @staticmethod
    def _decode(
        payload: Any, multipart: Sequence[JSON] | None, files: Sequence[discord.File] | None
    ) -> tuple[Any, list[RecordedFile]]:
        body = payload
        for part in multipart or []:
            if part.get("name") == "payload_json":
                body = json.loads(part["value"])
        recorded = []
        for f in files or []:
            fp = f.fp
            pos = fp.tell()
            data = fp.read()
            fp.seek(pos)
            recorded.append(RecordedFile(f.filename, data))
        return body, recorded

    def _check_failure(self, record: Record) -> None:
        for i, (kind, exc) in enumerate(self._failures):
            if kind == record.kind:
                del self._failures[i]
                raise exc

    async def _finish(self, record: Record, body: Any, produce: Callable[[], Any]) -> Any:
        self.records.append(record)
        try:
            self._check_failure(record)
            result = produce()
        except BaseException as exc:
            record.error = exc
            raise
        record.result = result
        return copy.deepcopy(result)

    # ---------------------------------------------------------------- webhook adapter side
    async def handle_webhook(
        self,
        route: Route,
        *,
        payload: JSON | None = None,
        multipart: list[JSON] | None = None,
        files: Sequence[discord.File] | None = None,
        reason: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Entry point for every request of discord.py's webhook adapter."""
        body, recorded = self._decode(payload, multipart, files)
        token = route.webhook_token or ""
        state = self._interactions.get(token)
        if state is not None and _age(state.interaction_id) > INTERACTION_LIFETIME:
            state = None  # an expired token: Discord knows it no more
        path = route.path
        rec = Record(
            kind="webhook",
            method=route.method,
            route=path,
            url=route.url,
            params=self._route_params(route),
            body=body,
            payload=body if isinstance(body, dict) else {},
            files=recorded,
            query=params,
            reason=reason,
            interaction_id=state.interaction_id if state else None,
            channel_id=state.channel_id if state else None,
        )
        produce: Callable[[], Any] = lambda: None  # noqa: E731
        method = route.method

        if path.endswith("/callback"):
            rec.kind = "response"
            rec.response_type = int(body["type"])
            rec.payload = dict(body.get("data") or {})
            produce = lambda: self._interaction_callback(rec, state, recorded)  # noqa: E731
        elif path.endswith("/messages/@original"):
            rec.kind = {"GET": "fetch_original", "PATCH": "edit_original", "DELETE": "delete_original"}[method]
            produce = lambda: self._original(rec, state, body or {}, recorded)  # noqa: E731
        elif path == "/webhooks/{webhook_id}/{webhook_token}" and method == "POST":
            rec.kind = "followup"
            produce = lambda: self._followup(rec, state, body or {}, recorded, params or {})  # noqa: E731
        else:
            rec.kind = f"{method} {path}"
            rec.unhandled = True
        try:
            return await self._finish(rec, body, produce)
        except discord.NotFound as error:
            if error.code == 10062:  # Discord gave up on this interaction: its token is dead from now on
                self._interactions.pop(token, None)
            raise

    def _interaction_callback(self, rec: Record, state: _InteractionState | None, files: list[RecordedFile]) -> JSON:
        if state is None:
            raise make_http_error(404, 10062, "Unknown interaction")
        if state.responded:
            raise make_http_error(400, 40060, "Interaction has already been acknowledged.")
        rtype = rec.response_type or 0
        data = rec.payload
        if rtype == MODAL:
            self.modal = {**data, "channel_id": state.channel_id}
        state.responded = True
        state.response_type = rtype
        message: JSON | None = None
        if rtype in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            msg_type = {1: 20, 3: 23}.get(state.command_type or 0, 0) if state.interaction_type == 2 else 0
            message = self.new_message(
                data,
                files,
                channel_id=state.channel_id,
                msg_type=msg_type,
                extra_flags=LOADING if rtype == DEFERRED_CHANNEL_MESSAGE else 0,
                webhook=True,
            )
            state.original_message_id = int(message["id"])
        elif rtype == UPDATE_MESSAGE and state.source_message_id is not None:
            message = self.apply_edit(state.source_message_id, data, files)
            state.original_message_id = state.source_message_id
        elif rtype == DEFERRED_UPDATE_MESSAGE:
            state.original_message_id = state.source_message_id
        rec.message_id = state.original_message_id
        flags = int((message or data).get("flags") or 0)
        inter: JSON = {"id": str(state.interaction_id), "type": state.interaction_type}
        if state.original_message_id is not None and rtype in (4, 5, 6, 7):
            inter["response_message_id"] = str(state.original_message_id)
            inter["response_message_loading"] = rtype == DEFERRED_CHANNEL_MESSAGE
            inter["response_message_ephemeral"] = bool(flags & EPHEMERAL)
        result: JSON = {"interaction": inter}
        if message is not None:
            result["resource"] = {"type": rtype, "message": message}
        return result

    def _original(self, rec: Record, state: _InteractionState | None, body: JSON, files: list[RecordedFile]) -> Any:
        if state is None or not state.responded:
            raise _unknown_webhook()
        mid = state.original_message_id
        if mid is None or mid not in self.messages:
            raise _unknown_message()
        rec.message_id = mid
        if rec.kind == "fetch_original":
            return self.messages[mid]
        if rec.kind == "delete_original":
            self.messages.pop(mid, None)
            return None
        return self.apply_edit(mid, body, files)

    def _followup(
        self, rec: Record, state: _InteractionState | None, body: JSON, files: list[RecordedFile], query: JSON
    ) -> Any:
        if state is None or not state.responded:
            raise _unknown_webhook()
        msg = self.new_message(body, files, channel_id=state.channel_id, webhook=True)
        rec.message_id = int(msg["id"])
        rec.channel_id = state.channel_id
        return msg if query.get("wait") else None

    # ---------------------------------------------------------------- REST side
    async def handle_http(
        self,
        route: Route,
        *,
        files: Sequence[discord.File] | None = None,
        form: Iterable[JSON] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Replacement for ``HTTPClient.request``."""
        body, recorded = self._decode(kwargs.get("json"), list(form) if form else None, files)
        params = self._route_params(route)
        rec = Record(
            kind="http",
            method=route.method,
            route=route.path,
            url=route.url,
            params=params,
            body=body,
            payload=body if isinstance(body, dict) else {},
            files=recorded,
            query=kwargs.get("params"),
            reason=kwargs.get("reason"),
        )
        if "channel_id" in params:
            rec.channel_id = int(params["channel_id"])
        if "message_id" in params:
            rec.message_id = int(params["message_id"])
        key = (route.method, route.path)
        handler = _HTTP_ROUTES.get(key)
        if handler is None:
            rec.kind = f"{route.method} {route.path}"
            rec.unhandled = True
            produce: Callable[[], Any] = lambda: None  # noqa: E731
        else:
            rec.kind, fn = handler
            produce = lambda: fn(self, rec, body if body is not None else {}, recorded)  # noqa: E731
        return await self._finish(rec, body, produce)

    # REST handlers ----------------------------------------------------------------------
    def _h_send_message(self, rec: Record, body: JSON, files: list[RecordedFile]) -> JSON:
        msg = self.new_message(body, files, channel_id=rec.channel_id or 0)
        rec.message_id = int(msg["id"])
        return msg

    def _h_edit_message(self, rec: Record, body: JSON, files: list[RecordedFile]) -> JSON:
        return self.apply_edit(rec.message_id or 0, body, files)

    def _h_delete_message(self, rec: Record, body: JSON, files: list[RecordedFile]) -> None:
        self.messages.pop(rec.message_id or 0, None)

    def _h_fetch_message(self, rec: Record, body: JSON, files: list[RecordedFile]) -> JSON:
        msg = self.messages.get(rec.message_id or 0)
        if msg is None:
            raise _unknown_message()
        return msg

    def _h_history(self, rec: Record, body: JSON, files: list[RecordedFile]) -> list[JSON]:
        query = rec.query or {}
        limit = int(query.get("limit", 50))
        before = int(query.get("before") or 2**64)
        msgs = [
            blank_content(m) if mid in self.unreadable else m
            for mid, m in sorted(self.messages.items(), reverse=True)
            if int(m["channel_id"]) == rec.channel_id and mid < before
        ]
        return msgs[:limit]

    def _h_start_thread(self, rec: Record, body: JSON, files: list[RecordedFile]) -> JSON:
        """A public thread on a message: the thread's id is the message's."""
        if (rec.message_id or 0) not in self.messages:
            raise _unknown_message()
        payload = thread_payload(
            rec.message_id or 0,
            body.get("name", "thread"),
            guild_id=self.guild_id or 0,
            parent_id=rec.channel_id or 0,
            owner_id=self.application_id,
        )
        self.channels[rec.message_id or 0] = payload
        self.on_thread_created(payload)
        return payload

    def _h_add_reaction(self, rec: Record, body: JSON, files: list[RecordedFile]) -> None:
        msg = self.messages.get(rec.message_id or 0)
        if msg is None:
            raise _unknown_message()
        emoji = rec.params.get("emoji", "")
        name, _, eid = emoji.partition(":")
        for reaction in msg.setdefault("reactions", []):
            if reaction["emoji"].get("name") == name and reaction.get("me"):
                return None
        msg["reactions"].append(
            {
                "emoji": {"id": eid or None, "name": name},
                "count": 1,
                "me": True,
                "count_details": {"burst": 0, "normal": 1},
                "burst_colors": [],
                "me_burst": False,
                "burst_count": 0,
            }
        )
        return None

    def _h_noop(self, rec: Record, body: JSON, files: list[RecordedFile]) -> None:
        return None

    def _h_sync(self, rec: Record, body: Any, files: list[RecordedFile]) -> list[JSON]:
        guild_id = int(rec.params["guild_id"]) if "guild_id" in rec.params else None
        out = []
        for cmd in body or []:
            data = dict(cmd)
            data.setdefault("type", 1)
            data.setdefault("description", "")
            data.setdefault("options", [])
            data.update(
                id=str(next_snowflake()), application_id=str(self.application_id), version=str(next_snowflake())
            )
            if guild_id is not None:
                data["guild_id"] = str(guild_id)
            out.append(data)
        self.synced_commands[guild_id] = out
        return out

    def _h_fetch_member(self, rec: Record, body: Any, files: list[RecordedFile]) -> JSON:
        uid = int(rec.params.get("user_id") or rec.params["member_id"])  # Guild.fetch_member's route names it member_id
        if uid not in self.members:
            raise make_http_error(404, 10007, "Unknown Member")
        return dict(self.members[uid], user=self.users[uid])

    def _h_edit_member(self, rec: Record, body: Any, files: list[RecordedFile]) -> JSON:
        """PATCH a member (nick, roles, timeout ``communication_disabled_until``): applied to the stored member."""
        uid = int(rec.params["user_id"])
        if uid not in self.members:
            raise make_http_error(404, 10007, "Unknown Member")
        self.members[uid].update(body or {})
        return dict(self.members[uid], user=self.users[uid])

    def _h_automod_rules(self, rec: Record, body: Any, files: list[RecordedFile]) -> list[JSON]:
        return list(self.automod_rules.values())

    def _h_automod_rule(self, rec: Record, body: Any, files: list[RecordedFile]) -> JSON:
        rule = self.automod_rules.get(int(rec.params["rule_id"]))
        if rule is None:
            raise make_http_error(404, 10066, "Unknown auto moderation rule")
        return rule

    def _h_create_automod_rule(self, rec: Record, body: Any, files: list[RecordedFile]) -> JSON:
        """A new AutoMod rule, as Discord echoes it (limits are the bot's to respect: see the test)."""
        rule = {
            "id": str(next_snowflake()),
            "guild_id": rec.params["guild_id"],
            "creator_id": str(self.bot_user.get("id", 0)),
            "enabled": True,
            "exempt_roles": [],
            "exempt_channels": [],
            **body,
        }
        rule["trigger_metadata"] = {"keyword_filter": [], "regex_patterns": [], "allow_list": []} | dict(
            body.get("trigger_metadata") or {}
        )
        self.automod_rules[int(rule["id"])] = rule
        return rule

    def _h_me(self, rec: Record, body: Any, files: list[RecordedFile]) -> JSON:
        """What ``Client.login`` asks first: the bot's own user."""
        return self.bot_user

    def _h_app_info(self, rec: Record, body: Any, files: list[RecordedFile]) -> JSON:
        owner = self.users.get(self.owner_id or 0) or self.bot_user
        return {
            "id": str(self.application_id),
            "name": self.bot_user.get("username", "HarnessBot"),
            "icon": None,
            "description": "",
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": owner,
            "summary": "",
            "verify_key": "0" * 64,
            "flags": 0,
            "bot": self.bot_user,
        }


_HTTP_ROUTES: dict[tuple[str, str], tuple[str, Callable[..., Any]]] = {
    ("POST", "/channels/{channel_id}/messages"): ("send_message", Recorder._h_send_message),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): ("edit_message", Recorder._h_edit_message),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): ("delete_message", Recorder._h_delete_message),
    ("GET", "/channels/{channel_id}/messages/{message_id}"): ("fetch_message", Recorder._h_fetch_message),
    ("GET", "/channels/{channel_id}/messages"): ("history", Recorder._h_history),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads"): ("start_thread", Recorder._h_start_thread),
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"): (
        "add_reaction",
        Recorder._h_add_reaction,
    ),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"): (
        "remove_reaction",
        Recorder._h_noop,
    ),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{member_id}"): (
        "remove_reaction",
        Recorder._h_noop,
    ),
    ("PUT", "/applications/{application_id}/commands"): ("sync_commands", Recorder._h_sync),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"): ("sync_commands", Recorder._h_sync),
    ("GET", "/guilds/{guild_id}/members/{user_id}"): ("fetch_member", Recorder._h_fetch_member),
    ("GET", "/guilds/{guild_id}/members/{member_id}"): ("fetch_member", Recorder._h_fetch_member),
    ("PATCH", "/guilds/{guild_id}/members/{user_id}"): ("edit_member", Recorder._h_edit_member),
    ("GET", "/oauth2/applications/@me"): ("application_info", Recorder._h_app_info),
    ("GET", "/guilds/{guild_id}/auto-moderation/rules"): ("automod_rules", Recorder._h_automod_rules),
    ("POST", "/guilds/{guild_id}/auto-moderation/rules"): ("create_automod_rule", Recorder._h_create_automod_rule),
    ("GET", "/guilds/{guild_id}/auto-moderation/rules/{rule_id}"): ("automod_rule", Recorder._h_automod_rule),
    ("GET", "/users/@me"): ("login", Recorder._h_me),
}


class _RecordingWebhookAdapter(AsyncWebhookAdapter):
    """Webhook adapter whose single network method hands the request to the recorder."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def request(  # type: ignore[override]
        self,
        route: Route,
        session: Any = None,
        *,
        payload: JSON | None = None,
        multipart: list[JSON] | None = None,
        proxy: str | None = None,
        proxy_auth: Any = None,
        files: Sequence[discord.File] | None = None,
        reason: str | None = None,
        auth_token: str | None = None,
        params: JSON | None = None,
    ) -> Any:
        return await self.recorder.handle_webhook(
            route, payload=payload, multipart=multipart, files=files, reason=reason, params=params
        )


class _NoNetworkSession:
    """Stands in for the aiohttp session: any real network use fails loudly."""

    closed = False

    def __bool__(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"discord_harness: network access attempted (session.{name}); Discord is offline in tests")

    async def close(self) -> None:
        self.closed = True


class _ErrorLogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# --------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------

OptionsArg = Mapping[str, Any] | None


def blank_content(message: JSON) -> JSON:
    """A message as a client without the message_content intent receives it."""
    return dict(message, content="", embeds=[], attachments=[], components=[])


def thread_payload(thread_id: int, name: str, *, guild_id: int, parent_id: int, owner_id: int) -> JSON:
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(owner_id),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": _iso_now(),
            "locked": False,
        },
    }


class FakeDiscord:
    """Offline Discord around an unconnected ``discord.Client`` / ``commands.Bot``.

    Create with ``await FakeDiscord.create(bot)``; close with ``await harness.close()``
    (or ``async with await FakeDiscord.create(bot) as harness``).
    """

    def __init__(self, client: discord.Client, *, timeout: float = 10.0) -> None:
        self.client = client
        self.recorder = Recorder()
        self.timeout = timeout
        self.app_command_errors: list[app_commands.AppCommandError] = []
        self.task_errors: list[BaseException] = []
        self._log_capture = _ErrorLogCapture()
        self._adapter = _RecordingWebhookAdapter(self.recorder)
        self._interactions: dict[int, discord.Interaction] = {}
        self._messages_seen: dict[int, discord.Message] = {}
        self._created_tasks: list[asyncio.Task[Any]] = []
        self._command_ids: dict[tuple[str, int, int | None], int] = {}
        self._restore: list[Callable[[], None]] = []
        self._ctx_token: Any = None
        self._closed = False
        self.guild_id: int = 0
        self.channel_id: int = 0
        self.user_id: int = 0
        self.owner_id: int = 0
        self.bot_id: int = 0

    # ------------------------------------------------------------------ setup
    @classmethod
    async def create(
        cls,
        client: discord.Client,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        user_id: int | None = None,
        timeout: float = 10.0,
    ) -> FakeDiscord:
        """Install the recorder on ``client``, populate a fake guild and await ``setup_hook``.

        Creates: the bot user (id == application id), a guild with @everyone, an owner
        member, a default member ``tester`` (``harness.user_id``) and a text channel
        ``#general`` (``harness.channel_id``).  ``setup_hook`` runs with the recorder
        installed, so ``tree.sync()`` inside it is recorded as ``sync_commands``.
        """
        self = cls(client, timeout=timeout)
        await self._install(guild_id, channel_id, user_id)
        if client._ready is not discord.utils.MISSING:
            client._ready.set()
        await client.setup_hook()
        await self.settle()
        return self

    async def __aenter__(self) -> FakeDiscord:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def state(self) -> Any:
        """The client's ``ConnectionState``."""
        return self.client._connection

    @property
    def tree(self) -> app_commands.CommandTree:
        tree = self.state._command_tree
        if tree is None:
            raise RuntimeError("client has no app_commands.CommandTree")
        return tree

    @property
    def guild(self) -> discord.Guild:
        guild = self.client.get_guild(self.guild_id)
        assert guild is not None
        return guild

    @property
    def channel(self) -> discord.TextChannel:
        channel = self.guild.get_channel(self.channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel

    async def _install(self, guild_id: int | None, channel_id: int | None, user_id: int | None) -> None:
        client, state, rec = self.client, self.client._connection, self.recorder
        if client.loop is discord.client._loop:  # type: ignore[attr-defined]  # not logged in yet
            await client._async_setup_hook()

        # -- HTTP exits ------------------------------------------------------------
        http = client.http
        session_attr = "_HTTPClient__session"
        old_session = getattr(http, session_attr, discord.utils.MISSING)
        setattr(http, session_attr, _NoNetworkSession())
        http.request = rec.handle_http  # type: ignore[method-assign]
        rec.on_thread_created = self._add_thread

        def restore_http() -> None:
            http.__dict__.pop("request", None)
            setattr(http, session_attr, old_session)

        self._restore.append(restore_http)
        self._ctx_token = async_context.set(self._adapter)

        # -- event capture -----------------------------------------------------------
        original_dispatch = client.dispatch

        def dispatch(event: str, /, *args: Any, **kwargs: Any) -> None:
            if event == "interaction" and args:
                self._interactions[args[0].id] = args[0]
            elif event == "message" and args:
                self._messages_seen[args[0].id] = args[0]
            original_dispatch(event, *args, **kwargs)

        client.dispatch = dispatch  # type: ignore[method-assign]
        old_state_dispatch = state.dispatch
        state.dispatch = dispatch

        def restore_dispatch() -> None:
            client.__dict__.pop("dispatch", None)
            state.dispatch = old_state_dispatch

        self._restore.append(restore_dispatch)

        # -- task tracking (to know when dispatched work has finished) -----------------
        loop = asyncio.get_running_loop()
        previous_factory = loop.get_task_factory()

        def factory(loop_: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            if previous_factory is not None:
                task = previous_factory(loop_, coro, **kwargs)
            else:
                task = asyncio.Task(coro, loop=loop_, **kwargs)
            self._created_tasks.append(task)
            return task

        loop.set_task_factory(factory)
        self._restore.append(lambda: loop.set_task_factory(previous_factory))

        logger = logging.getLogger("discord")
        logger.addHandler(self._log_capture)
        self._restore.append(lambda: logger.removeHandler(self._log_capture))

        # -- identities ----------------------------------------------------------------
        app_id = client.application_id or next_snowflake()
        self.bot_id = app_id
        self.guild_id = guild_id or next_snowflake()
        self.channel_id = channel_id or next_snowflake()
        self.owner_id = next_snowflake()
        self.user_id = user_id or next_snowflake()
        rec.application_id = app_id
        rec.guild_id = self.guild_id
        rec.owner_id = self.owner_id
        rec.bot_user = {
            "id": str(app_id),
            "username": "HarnessBot",
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
        }
        rec.users[app_id] = rec.bot_user
        state.application_id = app_id
        state.user = user = discord.ClientUser(state=state, data=rec.bot_user)
        state._users[user.id] = user

        everyone: JSON = {
            "id": str(self.guild_id),
            "name": "@everyone",
            "permissions": str(DEFAULT_EVERYONE_PERMISSIONS.value),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        rec.roles[self.guild_id] = everyone
        rec.channels[self.channel_id] = self._text_channel_payload(self.channel_id, "general", 0)
        self._register_member(app_id, rec.bot_user)
        self._register_member(self.owner_id, self._user_payload(self.owner_id, "owner"))
        self._register_member(self.user_id, self._user_payload(self.user_id, "tester"))

        guild_payload: JSON = {
            "id": str(self.guild_id),
            "name": "Harness Guild",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": list(rec.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "member_count": len(rec.members),
            "large": False,
            "unavailable": False,
            "joined_at": _iso_now(),
            "members": [dict(m, user=rec.users[uid]) for uid, m in rec.members.items()],
            "channels": list(rec.channels.values()),
            "threads": [],
            "voice_states": [],
            "presences": [],
        }
        state._add_guild_from_data(guild_payload)

    async def close(self) -> None:
        """Stop views, undo all patches and close the client."""
        if self._closed:
            return
        self._closed = True
        try:
            for mapping in list(self.state._view_store._views.values()):
                for item in list(mapping.values()):
                    if item.view is not None:
                        item.view.stop()
        except Exception:  # pragma: no cover - best effort
            pass
        try:
            await self.client.close()
        finally:
            for undo in reversed(self._restore):
                undo()
            self._restore.clear()
            if self._ctx_token is not None:
                try:
                    async_context.reset(self._ctx_token)
                except ValueError:  # created in another context (e.g. a fixture)
                    pass

    # ------------------------------------------------------------------ fake guild data
    @staticmethod
    def _user_payload(user_id: int, name: str, *, bot: bool = False) -> JSON:
        return {
            "id": str(user_id),
            "username": name,
            "discriminator": "0",
            "global_name": name,
            "avatar": None,
            "bot": bot,
        }

    def _text_channel_payload(self, channel_id: int, name: str, position: int) -> JSON:
        return {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": name,
            "position": position,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }

    def _register_member(self, user_id: int, user: JSON, roles: Sequence[int] = (), nick: str | None = None) -> JSON:
        self.recorder.users[user_id] = user
        member = {
            "roles": [str(r) for r in roles],
            "nick": nick,
            "avatar": None,
            "joined_at": _iso_now(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        self.recorder.members[user_id] = member
        return member

    def add_member(
        self,
        user_id: int | None = None,
        name: str | None = None,
        *,
        roles: Sequence[int | discord.abc.Snowflake] = (),
        bot: bool = False,
        nick: str | None = None,
    ) -> int:
        """Add a guild member (cached only if the client's member cache flags allow it)."""
        uid = user_id or next_snowflake()
        role_ids = [_snowflake_of(r) for r in roles]
        member = self._register_member(uid, self._user_payload(uid, name or f"user{uid}", bot=bot), role_ids, nick)
        guild = self.client.get_guild(self.guild_id)
        if guild is not None and (self.state.member_cache_flags.joined or uid == self.bot_id):
            guild._add_member(
                discord.Member(data=dict(member, user=self.recorder.users[uid]), guild=guild, state=self.state)
            )  # type: ignore[arg-type]
        return uid

    def add_role(
        self,
        name: str,
        *,
        permissions: int | discord.Permissions = 0,
        role_id: int | None = None,
        position: int = 1,
    ) -> int:
        """Create a guild role; returns its id."""
        rid = role_id or next_snowflake()
        perms = permissions.value if isinstance(permissions, discord.Permissions) else int(permissions)
        payload = {
            "id": str(rid),
            "name": name,
            "permissions": str(perms),
            "position": position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": True,
            "flags": 0,
        }
        self.recorder.roles[rid] = payload
        self.guild._add_role(discord.Role(guild=self.guild, state=self.state, data=payload))  # type: ignore[arg-type]
        return rid

    def add_channel(self, name: str, *, channel_id: int | None = None) -> int:
        """Create another text channel in the fake guild; returns its id."""
        cid = channel_id or next_snowflake()
        payload = self._text_channel_payload(cid, name, len(self.recorder.channels))
        self.recorder.channels[cid] = payload
        self.guild._add_channel(discord.TextChannel(state=self.state, guild=self.guild, data=payload))  # type: ignore[arg-type]
        return cid

    def add_thread(self, name: str, *, parent_id: int | None = None, thread_id: int | None = None) -> int:
        """Create a public thread under a text channel (default: ``#general``); returns its id."""
        tid = thread_id or next_snowflake()
        payload = thread_payload(
            tid, name, guild_id=self.guild_id, parent_id=parent_id or self.channel_id, owner_id=self.owner_id
        )
        self.recorder.channels[tid] = payload
        self._add_thread(payload)
        return tid

    def _add_thread(self, payload: JSON) -> None:
        self.guild._add_thread(discord.Thread(guild=self.guild, state=self.state, data=payload))  # type: ignore[arg-type]

    def bot_permissions(self, channel_id: int) -> discord.Permissions:
        """The bot's permissions in a channel or thread, as Discord computes an interaction's ``app_permissions``:
        from its roles and the channel's overwrites (all channel permissions where the channel is not cached)."""
        channel = self.guild.get_channel_or_thread(channel_id)
        if channel is None or self.guild.me is None:
            return discord.Permissions.all_channel()
        return channel.permissions_for(self.guild.me)

    def set_overwrite(
        self,
        channel_id: int,
        target_id: int,
        *,
        allow: discord.Permissions | None = None,
        deny: discord.Permissions | None = None,
    ) -> None:
        """Allow or deny permissions to a role or member in a text channel (its threads inherit them), as a
        channel's settings do; replaces that target's overwrite."""
        payload = self.recorder.channels[channel_id]
        overwrites = [o for o in payload["permission_overwrites"] if int(o["id"]) != target_id]
        overwrites.append(
            {
                "id": str(target_id),
                "type": 0 if target_id in self.recorder.roles else 1,
                "allow": str((allow or discord.Permissions.none()).value),
                "deny": str((deny or discord.Permissions.none()).value),
            }
        )
        payload["permission_overwrites"] = overwrites
        self.guild._add_channel(discord.TextChannel(state=self.state, guild=self.guild, data=payload))  # type: ignore[arg-type]

    def member_permissions(self, user_id: int) -> discord.Permissions:
        """Guild-level permissions of a member computed from its roles (owner/admin -> all)."""
        if user_id == self.owner_id:
            return discord.Permissions.all()
        value = int(self.recorder.roles[self.guild_id]["permissions"])
        for rid in (self.recorder.members.get(user_id) or {}).get("roles", []):
            value |= int(self.recorder.roles.get(int(rid), {}).get("permissions", 0))
        perms = discord.Permissions(value)
        return discord.Permissions.all() if perms.administrator else perms

    # ------------------------------------------------------------------ waiting
    @staticmethod
    def _is_work(task: asyncio.Task[Any]) -> bool:
        return task.get_name().startswith(_WORK_TASK_PREFIXES)

    def take_work(self) -> list[asyncio.Task[Any]]:
        """The work tasks started since the last call (or settle): right after a ``wait=False``
        dispatch, that dispatch's own, so a caller can wait for many requests one by one."""
        fresh, self._created_tasks = self._created_tasks, []
        return [t for t in fresh if self._is_work(t)]

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until every work task created since the last settle has finished.

        Work tasks are the tree invoker, view/dynamic-item dispatches and
        ``client.dispatch`` event handlers, including tasks they spawn.  Raises
        :class:`HarnessTimeout` listing what is still running, and re-raises an
        exception that escaped a work task.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        current = asyncio.current_task()
        watched: list[asyncio.Task[Any]] = []
        while True:
            await asyncio.sleep(0)
            watched.extend(t for t in self.take_work() if t is not current)
            pending = [t for t in watched if not t.done()]
            if not pending:
                await asyncio.sleep(0)
                if not self._created_tasks:
                    break
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                names = ", ".join(f"{t.get_name()} ({t.get_coro()!r})" for t in pending)
                raise HarnessTimeout(f"dispatched work still running after timeout: {names}")
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        errors = [t.exception() for t in watched if not t.cancelled() and t.exception() is not None]
        self.task_errors.extend(e for e in errors if e is not None)
        if errors and errors[0] is not None:
            raise errors[0]

    # ------------------------------------------------------------------ errors
    def _ensure_error_hook(self) -> None:
        tree = self.state._command_tree
        if tree is None:
            return
        current = tree.on_error
        if getattr(current, "__harness__", None) is self:
            return

        async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError, /) -> None:
            self.app_command_errors.append(error)
            await current(interaction, error)

        on_error.__harness__ = self  # type: ignore[attr-defined]
        had_instance_attr = "on_error" in tree.__dict__
        tree.on_error = on_error  # type: ignore[method-assign]

        def restore() -> None:
            if tree.__dict__.get("on_error") is on_error:
                if had_instance_attr:
                    tree.on_error = current  # type: ignore[method-assign]
                else:
                    del tree.on_error

        self._restore.append(restore)

    @property
    def errors(self) -> list[BaseException]:
        """App command errors seen by the tree's on_error, logged exceptions, task errors."""
        out: list[BaseException] = list(self.app_command_errors)
        for r in self._log_capture.records:
            if r.exc_info and r.exc_info[1] is not None and r.exc_info[1] not in out:
                out.append(r.exc_info[1])
        out.extend(e for e in self.task_errors if e not in out)
        return out

    def assert_no_errors(self) -> None:
        """Fail if any command/view/event error happened or was logged."""
        problems = [repr(e) for e in self.errors]
        problems += [r.getMessage() for r in self._log_capture.records if not r.exc_info]
        assert not problems, "errors during dispatch:\n" + "\n".join(problems)

    # ------------------------------------------------------------------ dispatch core
    def _feed(self, parse: Callable[[JSON], None], payload: JSON) -> None:
        """Run a gateway parser with the recording adapter in context, so tasks it creates keep it."""
        token = async_context.set(self._adapter)
        try:
            parse(payload)
        finally:
            async_context.reset(token)

    async def dispatch_interaction(
        self, payload: JSON, *, wait: bool = True, timeout: float | None = None
    ) -> discord.Interaction:
        """Feed a raw INTERACTION_CREATE payload through ``parse_interaction_create``."""
        self._ensure_error_hook()
        self.recorder.register_interaction(payload)
        self._feed(self.state.parse_interaction_create, payload)
        interaction = self._interactions.pop(int(payload["id"]))
        if wait:
            await self.settle(timeout)
        return interaction

    def _interaction_payload(
        self,
        itype: int,
        data: JSON | None,
        *,
        user_id: int | None,
        permissions: int | discord.Permissions | None,
        channel_id: int | None,
        message: JSON | None = None,
        age: float = 0.0,
    ) -> JSON:
        """A guild interaction from ``user_id`` (default: ``tester``) in ``channel_id`` (default: ``#general``),
        made ``age`` seconds ago."""
        uid = user_id or self.user_id
        if uid not in self.recorder.users:
            self.add_member(uid)
        user = self.recorder.users[uid]
        if uid not in self.recorder.members:
            self._register_member(uid, user)
        asked = datetime.now(timezone.utc) - timedelta(seconds=age)
        iid = discord.utils.time_snowflake(asked) if age else next_snowflake()
        perms = permissions if permissions is not None else self.member_permissions(uid)
        perm_value = perms.value if isinstance(perms, discord.Permissions) else int(perms)
        cid = channel_id or self.channel_id
        channel = dict(self.recorder.channels.get(cid) or self._text_channel_payload(cid, f"channel-{cid}", 0))
        channel["permissions"] = str(perm_value)
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.bot_id),
            "type": itype,
            "token": f"harness-{iid}-{secrets.token_hex(8)}",
            "version": 1,
            "locale": "en-US",
            "app_permissions": str(self.bot_permissions(cid).value),
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "guild_id": str(self.guild_id),
            "guild_locale": "en-US",
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "member": dict(self.recorder.members[uid], user=user, permissions=str(perm_value)),
            "context": 0,
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "channel_id": str(cid),
            "channel": channel,
        }
        if data is not None:
            payload["data"] = data
        if message is not None:
            payload["message"] = message
        return payload

    # ------------------------------------------------------------------ app commands
    def _command_id(self, name: str, ctype: int, guild_id: int | None) -> int:
        for cmd in self.recorder.synced_commands.get(guild_id, []):
            if cmd.get("name") == name and int(cmd.get("type", 1)) == ctype:
                return int(cmd["id"])
        return self._command_ids.setdefault((name, ctype, guild_id), next_snowflake())

    def _lookup(self, name: str, ctype: discord.AppCommandType) -> tuple[Any, int | None]:
        tree = self.tree
        cmd = tree.get_command(name, guild=discord.Object(self.guild_id), type=ctype)
        if cmd is not None:
            return cmd, self.guild_id
        return tree.get_command(name, type=ctype), None

    @staticmethod
    def _check_invocable(root: Any, *, permissions: discord.Permissions) -> None:
        default = getattr(root, "default_permissions", None)
        if default is not None and not permissions.administrator and not default.is_subset(permissions):
            raise DiscordValidationError(
                f"/{root.name} has default_permissions={default.value}; a member with permissions "
                f"{permissions.value} cannot invoke it (pass validate=False to bypass)"
            )

    def _resolve_channel(
        self, value: Any, resolved: JSON, *, validate: bool, channel_types: Sequence[discord.ChannelType]
    ) -> str:
        """A CHANNEL option's value, with the ``resolved`` data Discord sends along."""
        cid = _snowflake_of(value)
        ch = self.recorder.channels.get(cid)
        if ch is None:
            raise LookupError(f"unknown channel {cid}; create it with harness.add_channel()")
        if validate and channel_types and discord.ChannelType(ch["type"]) not in channel_types:
            raise DiscordValidationError(f"channel type {ch['type']} not allowed (allowed: {channel_types})")
        resolved.setdefault("channels", {})[str(cid)] = {
            "id": ch["id"],
            "name": ch["name"],
            "type": ch["type"],
            "permissions": str(discord.Permissions.all_channel().value),
            "parent_id": ch.get("parent_id"),
            "flags": 0,
        }
        return str(cid)

    def _build_options(
        self,
        command: app_commands.Command[Any, ..., Any],
        values: OptionsArg,
        resolved: JSON,
        *,
        validate: bool,
        focused: str | None = None,
    ) -> list[JSON]:
        items = list((values or {}).items())
        params = {p.display_name: p for p in command.parameters}
        by_py_name = {p.name: p for p in command.parameters}
        out: list[JSON] = []
        given: set[str] = set()
        for key, raw in items:
            param = params.get(key) or by_py_name.get(key)
            if param is None:
                if validate:
                    raise DiscordValidationError(
                        f"/{command.qualified_name} has no option {key!r}; options: {sorted(params)}"
                    )
                out.append({"name": key, "type": 3, "value": raw})
                continue
            given.add(param.display_name)
            ptype = param.type.value
            value = raw.value if isinstance(raw, (app_commands.Choice, enum.Enum)) else raw
            option: JSON = {"name": param.display_name, "type": ptype}
            if focused is not None and param.display_name in (
                focused,
                getattr(by_py_name.get(focused), "display_name", None),
            ):
                option["value"] = str(value)
                option["focused"] = True
                out.append(option)
                continue
            if ptype == 3:
                value = str(value)
                if validate:
                    if param.min_value is not None and len(value) < param.min_value:
                        raise DiscordValidationError(f"{key}: length {len(value)} < min_length {param.min_value}")
                    if param.max_value is not None and len(value) > param.max_value:
                        raise DiscordValidationError(f"{key}: length {len(value)} > max_length {param.max_value}")
            elif ptype in (4, 10):
                try:
                    value = int(value) if ptype == 4 else float(value)
                except (TypeError, ValueError):
                    if validate:
                        raise DiscordValidationError(f"{key}: {raw!r} is not a valid {param.type.name}") from None
                if validate:
                    if ptype == 4 and not -(2**53) <= value <= 2**53:
                        raise DiscordValidationError(f"{key}: integer out of Discord's range")
                    if param.min_value is not None and value < param.min_value:
                        raise DiscordValidationError(f"{key}: {value} < min_value {param.min_value}")
                    if param.max_value is not None and value > param.max_value:
                        raise DiscordValidationError(f"{key}: {value} > max_value {param.max_value}")
            elif ptype == 5:
                value = bool(value)
            elif ptype == 7:
                value = self._resolve_channel(value, resolved, validate=validate, channel_types=param.channel_types)
            else:
                raise ValueError(f"the harness has no option type {ptype} (the bot's commands use none)")
            if validate and param.choices and not param.autocomplete and value not in [c.value for c in param.choices]:
                raise DiscordValidationError(
                    f"{key}: {value!r} is not one of the choices {[c.value for c in param.choices]}"
                )
            option["value"] = value
            out.append(option)
        if validate and focused is None:
            missing = [p.display_name for p in command.parameters if p.required and p.display_name not in given]
            if missing:
                raise DiscordValidationError(f"/{command.qualified_name}: missing required options {missing}")
        return out

    def _slash_data(
        self,
        name: str,
        options: OptionsArg,
        *,
        validate: bool,
        permissions: discord.Permissions,
        focused: str | None = None,
    ) -> JSON:
        path = name.strip().lstrip("/").split()
        root, guild_id = self._lookup(path[0], discord.AppCommandType.chat_input)
        if root is None:
            names = sorted(c.name for c in self.tree.get_commands(guild=discord.Object(self.guild_id)))
            names += sorted(c.name for c in self.tree.get_commands())
            raise DiscordValidationError(f"unknown slash command {name!r}; registered: {names}")
        if validate:
            self._check_invocable(root, permissions=permissions)
        chain = [root]
        for part in path[1:]:
            nxt = chain[-1].get_command(part) if isinstance(chain[-1], app_commands.Group) else None
            if nxt is None:
                raise DiscordValidationError(f"{' '.join(c.name for c in chain)!r} has no subcommand {part!r}")
            chain.append(nxt)
        leaf = chain[-1]
        if isinstance(leaf, app_commands.Group):
            raise DiscordValidationError(
                f"{name!r} is a group; name a subcommand, e.g. '{name} {leaf.commands[0].name}'"
            )
        resolved: JSON = {}
        opts = self._build_options(leaf, options, resolved, validate=validate, focused=focused)
        for node in reversed(chain[1:]):
            opts = [{"name": node.name, "type": 2 if isinstance(node, app_commands.Group) else 1, "options": opts}]
        data: JSON = {
            "id": str(self._command_id(root.name, 1, guild_id)),
            "name": root.name,
            "type": 1,
            "options": opts,
        }
        if resolved:
            data["resolved"] = resolved
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data

    def _effective_permissions(
        self, user_id: int | None, permissions: int | discord.Permissions | None
    ) -> discord.Permissions:
        if permissions is None:
            return self.member_permissions(user_id or self.user_id)
        return permissions if isinstance(permissions, discord.Permissions) else discord.Permissions(int(permissions))

    async def invoke_slash(
        self,
        name: str,
        options: OptionsArg = None,
        *,
        user_id: int | None = None,
        permissions: int | discord.Permissions | None = None,
        channel_id: int | None = None,
        validate: bool = True,
        wait: bool = True,
        timeout: float | None = None,
        age: float = 0.0,
    ) -> discord.Interaction:
        """Invoke a slash command (``"cmd"``, ``"group sub"``, ``"group subgroup sub"``).

        ``options`` maps option names (display or Python name) to plain values; their
        Discord types come from the registered command (a CHANNEL option takes an id and
        gets ``resolved`` data).  ``permissions`` is the invoking member's permission
        integer (default: computed from roles).  With ``validate=True`` the checks Discord
        does *before* sending an interaction (min/max, lengths, choices, required options,
        default_permissions) raise :class:`DiscordValidationError`; discord.py does not
        repeat them locally.  Returns the real ``discord.Interaction`` after all work
        finished (``wait=True``).  ``age``: seconds since the member asked (past 15 minutes
        the token is expired).
        """
        perms = self._effective_permissions(user_id, permissions)
        data = self._slash_data(name, options, validate=validate, permissions=perms)
        payload = self._interaction_payload(
            2, data, user_id=user_id, permissions=permissions, channel_id=channel_id, age=age
        )
        return await self.dispatch_interaction(payload, wait=wait, timeout=timeout)

    async def invoke_autocomplete(
        self,
        name: str,
        options: OptionsArg,
        focused: str,
        *,
        user_id: int | None = None,
        permissions: int | discord.Permissions | None = None,
        timeout: float | None = None,
    ) -> list[JSON]:
        """Send an APPLICATION_COMMAND_AUTOCOMPLETE interaction; returns the choices sent back."""
        perms = self._effective_permissions(user_id, permissions)
        data = self._slash_data(name, options, validate=False, permissions=perms, focused=focused)
        payload = self._interaction_payload(4, data, user_id=user_id, permissions=permissions, channel_id=None)
        await self.dispatch_interaction(payload, timeout=timeout)
        rec = self.recorder.last("response")
        if rec is None or rec.interaction_id != int(payload["id"]):
            return []
        return list(rec.payload.get("choices") or [])

    async def invoke_message_menu(
        self,
        name: str,
        message: discord.Message,
        *,
        user_id: int | None = None,
        permissions: int | discord.Permissions | None = None,
        validate: bool = True,
        wait: bool = True,
        timeout: float | None = None,
    ) -> discord.Interaction:
        """Invoke a message context menu on ``message`` (a Message from :meth:`make_message`)."""
        stored = self.recorder.messages.get(message.id)
        if stored is None:
            raise LookupError(f"message {message.id} unknown to the harness; build it with make_message()")
        cmd, guild_id = self._lookup(name, discord.AppCommandType.message)
        if validate:
            if cmd is None:
                raise DiscordValidationError(f"no message context menu named {name!r}")
            self._check_invocable(cmd, permissions=self._effective_permissions(user_id, permissions))
        data: JSON = {
            "id": str(self._command_id(name, discord.AppCommandType.message.value, guild_id)),
            "name": name,
            "type": discord.AppCommandType.message.value,
            "target_id": str(message.id),
            "resolved": {
                "messages": {str(message.id): {k: v for k, v in stored.items() if k not in ("member", "guild_id")}}
            },
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        payload = self._interaction_payload(
            2, data, user_id=user_id, permissions=permissions, channel_id=int(stored["channel_id"])
        )
        return await self.dispatch_interaction(payload, wait=wait, timeout=timeout)

    async def submit_modal(
        self,
        values: Mapping[str, str],
        *,
        user_id: int | None = None,
        permissions: int | discord.Permissions | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> discord.Interaction:
        """Submit the last modal the bot opened, each text input filled from ``values`` by its label."""
        shown = self.recorder.modal
        if shown is None:
            raise LookupError("the bot has not opened a modal")
        self.recorder.modal = None  # submitted once
        inputs = [c for c in _walk_components(shown.get("components") or []) if c.get("type") == 4]
        unknown = set(values) - {c["label"] for c in inputs}
        if unknown:
            raise DiscordValidationError(f"the modal has no inputs labelled {sorted(unknown)}")
        missing = [c["label"] for c in inputs if c.get("required", True) and not values.get(c["label"])]
        if missing:
            raise DiscordValidationError(f"the modal's required inputs {missing} are empty")
        rows = [
            {"type": 1, "components": [{"type": 4, "custom_id": c["custom_id"], "value": values.get(c["label"], "")}]}
            for c in inputs
        ]
        data: JSON = {"custom_id": shown["custom_id"], "components": rows}
        payload = self._interaction_payload(
            5, data, user_id=user_id, permissions=permissions, channel_id=shown["channel_id"]
        )
        return await self.dispatch_interaction(payload, wait=wait, timeout=timeout)

    # ------------------------------------------------------------------ components
    async def invoke_component(
        self,
        custom_id: str,
        values: Sequence[Any] | None = None,
        *,
        message_id: int | None = None,
        user_id: int | None = None,
        permissions: int | discord.Permissions | None = None,
        validate: bool = True,
        wait: bool = True,
        timeout: float | None = None,
    ) -> discord.Interaction:
        """Click a button / choose string select ``values`` on a message the bot sent.

        The message is found by ``custom_id`` among stored messages (newest first) unless
        ``message_id`` is given; its stored JSON becomes ``interaction.message`` so the
        view store routes the interaction to the view registered for that message id.
        """
        mid, comp = self.recorder.find_component(custom_id, message_id)
        if comp is None and validate:
            raise LookupError(f"no component with custom_id {custom_id!r} in stored messages")
        if mid is None or mid not in self.recorder.messages:
            raise LookupError(f"message {mid} is not stored; cannot build interaction.message")
        ctype = int((comp or {}).get("type", 2 if values is None else 3))
        if validate and comp is not None and comp.get("disabled"):
            raise DiscordValidationError(f"component {custom_id!r} is disabled")
        data: JSON = {"custom_id": custom_id, "component_type": ctype}
        if ctype == 3:
            vals = [str(v) for v in values or []]
            if validate and comp is not None:
                lo, hi = int(comp.get("min_values", 1)), int(comp.get("max_values", 1))
                if not lo <= len(vals) <= hi:
                    raise DiscordValidationError(f"select {custom_id!r} needs {lo}..{hi} values, got {len(vals)}")
                allowed = [o["value"] for o in comp.get("options", [])]
                bad = [v for v in vals if v not in allowed]
                if bad:
                    raise DiscordValidationError(f"select {custom_id!r}: {bad} not in options {allowed}")
            data["values"] = vals
        elif values:
            raise ValueError("values are only valid for select menus")
        message = copy.deepcopy(self.recorder.messages[mid])
        payload = self._interaction_payload(
            3, data, user_id=user_id, permissions=permissions, channel_id=int(message["channel_id"]), message=message
        )
        return await self.dispatch_interaction(payload, wait=wait, timeout=timeout)

    # ------------------------------------------------------------------ messages
    def message_payload(
        self,
        content: str = "",
        *,
        author_id: int | None = None,
        bot: bool = False,
        webhook_id: int | None = None,
        channel_id: int | None = None,
        attachments: Sequence[tuple[str, bytes]] = (),
        reference: discord.Message | int | None = None,
    ) -> JSON:
        """Build (and store) a gateway MESSAGE_CREATE payload of a guild message from a member/bot/webhook.

        The returned gateway payload is blanked like Discord does when the client lacks the
        message_content intent (not mentioning the bot); the stored server copy keeps the
        real content, which is what message context menus receive."""
        rec = self.recorder
        if webhook_id is not None:
            author = {
                "id": str(webhook_id),
                "username": "Webhook",
                "discriminator": "0000",
                "avatar": None,
                "bot": True,
            }
            uid = webhook_id
        else:
            uid = author_id or self.owner_id
            if uid not in rec.users:
                self.add_member(uid, bot=bot)
            author = dict(rec.users[uid])
            if bot:
                author["bot"] = True
        mid = next_snowflake()
        cid = channel_id or self.channel_id
        mentions, mention_roles, everyone = rec._mentions(content)
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(cid),
            "guild_id": str(self.guild_id),
            "type": 0,
            "content": content,
            "author": author,
            "embeds": [],
            "components": [],
            "attachments": [rec._attachment(cid, n, d) for n, d in attachments],
            "mentions": [
                dict(m, member=rec.members[int(m["id"])]) if int(m["id"]) in rec.members else m for m in mentions
            ],
            "mention_roles": mention_roles,
            "mention_everyone": everyone,
            "pinned": False,
            "tts": False,
            "timestamp": _iso_now(),
            "edited_timestamp": None,
            "flags": 0,
            "nonce": str(mid),
        }
        if webhook_id is not None:
            msg["webhook_id"] = str(webhook_id)
        elif uid in rec.members:
            msg["member"] = dict(rec.members[uid])
        if reference is not None:
            ref_id = _snowflake_of(reference)
            msg["type"] = 19
            msg["message_reference"] = {
                "message_id": str(ref_id),
                "channel_id": str(cid),
                "guild_id": str(self.guild_id),
                "type": 0,
            }
            if ref_id in rec.messages:
                msg["referenced_message"] = {k: v for k, v in rec.messages[ref_id].items() if k != "referenced_message"}
        rec.messages[mid] = msg  # the "server" keeps the full message (context menus see it)
        # Without the privileged message_content intent Discord blanks these fields for
        # guild messages that don't mention the bot and aren't the bot's own.
        if (
            not self.client.intents.message_content
            and uid != self.bot_id
            and str(self.bot_id) not in {m["id"] for m in mentions}
        ):
            rec.unreadable.add(mid)
            return blank_content(msg)
        return msg

    def add_automod_rule(self, name: str, keywords: Sequence[str] = ()) -> int:
        """An AutoMod keyword rule the server already has (made in Discord's settings); returns its id."""
        rule_id = next_snowflake()
        self.recorder.automod_rules[rule_id] = {
            "id": str(rule_id),
            "guild_id": str(self.guild_id),
            "name": name,
            "creator_id": str(self.owner_id),
            "event_type": 1,
            "trigger_type": 1,
            "trigger_metadata": {"keyword_filter": list(keywords), "regex_patterns": [], "allow_list": []},
            "actions": [{"type": 1, "metadata": {}}],
            "enabled": True,
            "exempt_roles": [],
            "exempt_channels": [],
        }
        return rule_id

    async def dispatch_automod_action(
        self,
        content: str,
        *,
        user_id: int,
        rule_id: int,
        keyword: str | None,
        action_type: int = 1,
        channel_id: int | None = None,
        message_id: int | None = None,
        wait: bool = True,
    ) -> None:
        """Send an AUTO_MODERATION_ACTION_EXECUTION (AutoMod acted on a member's message; `action_type` 1 blocks
        it, 2 sends an alert to the harness's channel, 3 times out) through
        ``parse_auto_moderation_action_execution``. A blocked message was never posted: it has no message id.
        Without the message_content intent, content is empty."""
        metadata = {2: {"channel_id": str(self.channel_id)}, 3: {"duration_seconds": 60}}.get(action_type, {})
        payload: JSON = {
            "guild_id": str(self.guild_id),
            "action": {"type": action_type, "metadata": metadata},
            "rule_id": str(rule_id),
            "rule_trigger_type": 1,  # keyword
            "user_id": str(user_id),
            "channel_id": str(channel_id or self.channel_id),
            "content": content if self.client.intents.message_content else "",
            "matched_keyword": keyword,
            "matched_content": keyword if self.client.intents.message_content else "",
        }
        if message_id is not None:
            payload["message_id"] = str(message_id)
        self._feed(self.state.parse_auto_moderation_action_execution, payload)
        if wait:
            await self.settle()

    def make_message(self, content: str = "", **options: Any) -> discord.Message:
        """Build a real ``discord.Message`` from a gateway MESSAGE_CREATE payload, exactly
        as ``parse_message_create`` does, without dispatching ``on_message``.  The message
        is put in the client's message cache and the harness message store (so it can be
        the target of :meth:`invoke_message_menu`, replies, reactions, fetches).
        Keyword arguments as :meth:`message_payload`."""
        payload = self.message_payload(content, **options)
        channel, _ = self.state._get_guild_channel(payload)
        message = discord.Message(state=self.state, channel=channel, data=payload)
        if self.state._messages is not None:
            self.state._messages.append(message)
        return message

    async def dispatch_message(
        self, content: str = "", *, wait: bool = True, timeout: float | None = None, **kwargs: Any
    ) -> discord.Message:
        """Send a MESSAGE_CREATE through ``parse_message_create`` (runs on_message, prefix
        commands, listeners) and wait for the handlers; returns the created Message.
        Keyword arguments as :meth:`message_payload`."""
        payload = self.message_payload(content, **kwargs)
        self._feed(self.state.parse_message_create, payload)
        message = self._messages_seen.pop(int(payload["id"]))
        if wait:
            await self.settle(timeout)
        return message
