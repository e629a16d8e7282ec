"""Self-test of tests/discord_harness.py against a tiny bot defined here.

Runs under pytest-asyncio ``asyncio_mode = "auto"`` (plain ``async def test_...``):
    pytest -o asyncio_mode=auto tests/test_discord_harness.py
"""

from __future__ import annotations

import enum
from typing import Any, Literal

import discord
import pytest
from discord import app_commands
from discord.ext import commands

try:  # tests/ is a package (tests/__init__.py)
    from tests.discord_harness import EPHEMERAL, LOADING, DiscordValidationError, FakeDiscord
except ImportError:  # pragma: no cover - tests/ without __init__.py: pytest prepends tests/
    from discord_harness import EPHEMERAL, LOADING, DiscordValidationError, FakeDiscord


# --------------------------------------------------------------------------- test bot


class RecordingTree(app_commands.CommandTree):
    """Tree whose on_error keeps the errors (like discord.py's own MockTree)."""

    def __init__(self, client: discord.Client) -> None:
        super().__init__(client)
        self.errors: list[app_commands.AppCommandError] = []

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        self.errors.append(error)


class Shade(enum.Enum):
    light = "light"
    dark = "dark"


class PickView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.picked: list[str] | None = None

    @discord.ui.select(
        custom_id="pick-select",
        placeholder="Pick one",
        options=[discord.SelectOption(label="Alpha", value="a"), discord.SelectOption(label="Beta", value="b")],
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        self.picked = list(select.values)
        await interaction.response.edit_message(content=f"picked {select.values[0]}", view=None)
        self.stop()


def make_bot() -> commands.Bot:
    bot = commands.Bot(
        command_prefix="!",
        intents=discord.Intents.default(),  # no message_content intent
        allowed_mentions=discord.AllowedMentions.none(),
        tree_cls=RecordingTree,
    )
    bot.seen = {}  # type: ignore[attr-defined]
    tree = bot.tree

    @tree.command(name="rate", description="Rate a label")
    async def rate(interaction: discord.Interaction, count: app_commands.Range[int, 1, 5], label: str) -> None:
        bot.seen["rate"] = (count, label)  # type: ignore[attr-defined]
        embed = discord.Embed(title=f"Rated {label}", description="stars: " + "*" * count)
        embed.add_field(name="count", value=str(count))
        await interaction.response.send_message(content=f"<@{interaction.user.id}> rated", embed=embed)

    @tree.command(name="color", description="Pick a colour")
    async def color(interaction: discord.Interaction, value: Literal["red", "blue"]) -> None:
        bot.seen["color"] = value  # type: ignore[attr-defined]
        await interaction.response.send_message(value)

    @tree.command(name="shade", description="Pick a shade")
    async def shade(interaction: discord.Interaction, value: Shade) -> None:
        bot.seen["shade"] = value  # type: ignore[attr-defined]
        await interaction.response.send_message(value.value)

    @tree.command(name="slow", description="Deferred work")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True, ephemeral=True)
        await interaction.edit_original_response(content="step 1")
        await interaction.edit_original_response(content="step 2")
        await interaction.followup.send("done", ephemeral=True)

    @tree.command(name="boom", description="Raises")
    async def boom(interaction: discord.Interaction) -> None:
        raise RuntimeError("kaboom")

    @tree.command(name="early", description="Followup without responding first")
    async def early(interaction: discord.Interaction) -> None:
        await interaction.followup.send("too early")

    @tree.command(name="purge", description="Needs Manage Messages")
    @app_commands.default_permissions(manage_messages=True)
    async def purge(interaction: discord.Interaction) -> None:
        bot.seen["purge"] = interaction.permissions.manage_messages  # type: ignore[attr-defined]
        await interaction.response.send_message("purged", ephemeral=True)

    @tree.command(name="pick", description="Select menu")
    async def pick(interaction: discord.Interaction) -> None:
        view = PickView()
        bot.seen["view"] = view  # type: ignore[attr-defined]
        await interaction.response.send_message("choose", view=view)

    @tree.command(name="upload", description="Sends a file")
    async def upload(interaction: discord.Interaction) -> None:
        import io

        await interaction.response.send_message(
            "here", file=discord.File(io.BytesIO(b"a,b\n1,2\n"), filename="data.csv")
        )

    labelset = app_commands.Group(name="labelset", description="Label sets")

    @labelset.command(name="add", description="Add a label")
    @app_commands.rename(label_name="name")
    async def labelset_add(interaction: discord.Interaction, label_name: str, weight: float = 1.0) -> None:
        bot.seen["labelset add"] = (label_name, weight)  # type: ignore[attr-defined]
        await interaction.response.send_message(f"added {label_name}")

    async def fruit_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f, value=f) for f in ("apple", "banana", "cherry") if current in f]

    @labelset.command(name="fruit", description="Autocomplete")
    @app_commands.autocomplete(fruit=fruit_autocomplete)
    async def labelset_fruit(interaction: discord.Interaction, fruit: str) -> None:
        await interaction.response.send_message(fruit)

    tree.add_command(labelset)

    @tree.context_menu(name="Quote")
    async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
        bot.seen["quote"] = message  # type: ignore[attr-defined]
        await interaction.response.send_message(f"> {message.content}\n- {message.author.name}", ephemeral=True)

    @bot.listen("on_message")
    async def on_message(message: discord.Message) -> None:
        if message.author.bot or bot.user is None or bot.user not in message.mentions:
            return
        await message.add_reaction("\N{WHITE HEAVY CHECK MARK}")
        await message.channel.send(f"pong: {message.content}")

    return bot


@pytest.fixture
async def env() -> Any:
    bot = make_bot()
    harness = await FakeDiscord.create(bot)
    yield bot, harness
    await harness.close()


# --------------------------------------------------------------------------- tests


async def test_slash_options_typed_embed_and_allowed_mentions(env: Any) -> None:
    bot, h = env
    interaction = await h.invoke_slash("rate", {"count": 3, "label": "bug"})

    count, label = bot.seen["rate"]
    assert (count, label) == (3, "bug") and type(count) is int and type(label) is str
    assert isinstance(interaction, discord.Interaction)
    assert isinstance(interaction.user, discord.Member) and interaction.guild is h.guild
    assert interaction.channel is h.channel and not interaction.command_failed

    rec = h.recorder.last("response")
    assert rec.response_type == 4 and not rec.ephemeral
    assert rec.allowed_mentions == {"parse": []}  # client-level AllowedMentions.none() merged in
    assert rec.embeds[0]["title"] == "Rated bug"
    assert "stars: ***" in h.recorder.all_text() and "count: 3" in h.recorder.all_text()
    assert rec.content == f"<@{h.user_id}> rated"
    # the interaction's original response resolves against the stored message
    original = await interaction.original_response()
    assert original.id == rec.message_id and original.embeds[0].title == "Rated bug"
    h.assert_no_errors()


async def test_range_violation_is_not_enforced_locally(env: Any) -> None:
    bot, h = env
    # Discord enforces min/max before sending; the harness mimics that by default ...
    with pytest.raises(DiscordValidationError):
        await h.invoke_slash("rate", {"count": 9, "label": "x"})
    assert h.recorder.records == []
    # ... but discord.py does NOT re-check Range locally: RangeTransformer is an identity
    # transform, so a forged out-of-range value reaches the callback and no error occurs.
    await h.invoke_slash("rate", {"count": 9, "label": "x"}, validate=False)
    assert bot.seen["rate"] == (9, "x")
    assert bot.tree.errors == [] and h.app_command_errors == []


async def test_choice_violations_locally(env: Any) -> None:
    bot, h = env
    with pytest.raises(DiscordValidationError):  # Discord would refuse a non-choice value
        await h.invoke_slash("color", {"value": "green"})
    # Literal[...] is an identity transform too: a forged value reaches the callback.
    await h.invoke_slash("color", {"value": "green"}, validate=False)
    assert bot.seen["color"] == "green" and bot.tree.errors == []
    # Enum (and Choice[T] with @app_commands.choices) ARE converted locally, so a value
    # outside the choices becomes a TransformerError delivered to the tree's on_error.
    await h.invoke_slash("shade", {"value": Shade.dark})
    assert bot.seen["shade"] is Shade.dark
    interaction = await h.invoke_slash("shade", {"value": "grey"}, validate=False)
    assert interaction.command_failed
    assert isinstance(bot.tree.errors[-1], app_commands.TransformerError)
    assert h.app_command_errors == bot.tree.errors
    assert h.recorder.kinds() == ["response", "response"]  # no reply for the failed call


async def test_exception_in_callback_is_command_invoke_error(env: Any) -> None:
    bot, h = env
    await h.invoke_slash("boom")
    err = bot.tree.errors[-1]
    assert isinstance(err, app_commands.CommandInvokeError) and isinstance(err.original, RuntimeError)


async def test_followup_before_response_is_unknown_webhook(env: Any) -> None:
    bot, h = env
    await h.invoke_slash("early")
    err = bot.tree.errors[-1]
    assert isinstance(err, app_commands.CommandInvokeError)
    assert isinstance(err.original, discord.NotFound) and err.original.code == 10015


async def test_defer_thinking_ephemeral_edits_and_followup(env: Any) -> None:
    bot, h = env
    await h.invoke_slash("slow")
    r = h.recorder
    assert r.kinds() == ["response", "edit_original", "edit_original", "followup"]
    defer = r.of_kind("response")[0]
    assert defer.response_type == 5 and defer.payload == {"flags": EPHEMERAL}
    assert [e.content for e in r.of_kind("edit_original")] == ["step 1", "step 2"]
    followup = r.last("followup")
    assert followup.ephemeral and followup.content == "done"
    original = r.message(defer.message_id)
    assert original["content"] == "step 2" and original["flags"] & EPHEMERAL and not original["flags"] & LOADING
    h.assert_no_errors()


async def test_subcommand_with_renamed_and_optional_options(env: Any) -> None:
    bot, h = env
    await h.invoke_slash("labelset add", {"name": "bug", "weight": 2})
    assert bot.seen["labelset add"] == ("bug", 2.0) and type(bot.seen["labelset add"][1]) is float
    await h.invoke_slash("labelset add", {"label_name": "docs"})  # python name works too
    assert bot.seen["labelset add"] == ("docs", 1.0)
    with pytest.raises(DiscordValidationError):
        await h.invoke_slash("labelset add", {})  # required option missing


async def test_autocomplete(env: Any) -> None:
    bot, h = env
    choices = await h.invoke_autocomplete("labelset fruit", {"fruit": "an"}, focused="fruit")
    assert [c["value"] for c in choices] == ["banana"]


async def test_default_permissions_and_roles(env: Any) -> None:
    bot, h = env
    with pytest.raises(DiscordValidationError):  # Discord hides the command from a plain member
        await h.invoke_slash("purge")
    mods = h.add_role("mod", permissions=discord.Permissions(manage_messages=True))
    moderator = h.add_member(name="alice", roles=[mods])
    await h.invoke_slash("purge", user_id=moderator)  # the role's permissions reach interaction.permissions
    assert bot.seen["purge"] is True and h.recorder.last("response").content == "purged"


async def test_message_context_menu(env: Any) -> None:
    bot, h = env
    author = h.add_member(name="bob")
    msg = h.make_message("hello world", author_id=author)
    # no message_content intent: the gateway copy is blanked like Discord does ...
    assert msg.content == ""
    # ... but the context-menu target carries the real content
    await h.invoke_message_menu("Quote", msg)
    quoted = bot.seen["quote"]
    assert isinstance(quoted, discord.Message) and quoted.id == msg.id and quoted.content == "hello world"
    rec = h.recorder.last("response")
    assert rec.ephemeral and rec.content == "> hello world\n- bob"


async def test_select_view_callback_edits_message(env: Any) -> None:
    bot, h = env
    await h.invoke_slash("pick")
    sent = h.recorder.last("response")
    assert sent.components[0]["components"][0]["custom_id"] == "pick-select"

    with pytest.raises(DiscordValidationError):  # not one of the select's options
        await h.invoke_component("pick-select", ["zzz"])

    await h.invoke_component("pick-select", ["b"])
    view = bot.seen["view"]
    assert view.picked == ["b"] and view.is_finished()
    update = h.recorder.last("response")
    assert update.response_type == 7 and update.content == "picked b" and update.components == []
    assert update.message_id == sent.message_id
    assert h.recorder.message(sent.message_id)["content"] == "picked b"
    with pytest.raises(LookupError):  # the edit removed the select (view=None)
        await h.invoke_component("pick-select", ["a"])
    h.assert_no_errors()


async def test_file_upload_recorded(env: Any) -> None:
    bot, h = env
    interaction = await h.invoke_slash("upload")
    rec = h.recorder.last("response")
    assert rec.filenames == ["data.csv"] and rec.files[0].data == b"a,b\n1,2\n"
    original = await interaction.original_response()
    assert original.attachments[0].filename == "data.csv"


async def test_gateway_message_reaction_and_channel_send(env: Any) -> None:
    bot, h = env
    msg = await h.dispatch_message(f"<@{h.bot_id}> ping", author_id=h.user_id)
    assert msg.content == f"<@{h.bot_id}> ping"  # mentions the bot -> content delivered
    assert h.recorder.kinds() == ["add_reaction", "send_message"]
    reaction = h.recorder.last("add_reaction")
    assert reaction.params["emoji"] == "\N{WHITE HEAVY CHECK MARK}" and reaction.message_id == msg.id
    sent = h.recorder.last("send_message")
    assert sent.channel_id == h.channel_id and sent.content == f"pong: <@{h.bot_id}> ping"
    assert sent.allowed_mentions == {"parse": []}


async def test_tree_sync_is_recorded(env: Any) -> None:
    bot, h = env
    synced = await bot.tree.sync()
    assert {c.name for c in synced} >= {"rate", "labelset", "Quote"}
    assert h.recorder.last("sync_commands") is not None
