"""The local console through its real entry point (`python -m bot ...` in a subprocess),
plus its command-line parser, which reads option names, types and choices from the cogs.

The subprocesses run in `child_env` (conftest): a known base with every setting explicit, so an
operator's environment or `.env` cannot change what is tested.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import pty
import random
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.commands import render_result
from bot.console import CommandLine, ConsoleApp
from bot.engine import InvalidInput
from bot.settings import Settings
from bot.specs import roles
from bot.specs.generation import GenerationResult, Sampling
from bot.specs.learned_labels import LabelMessageRequest
from bot.storage import Embedding, Policy, Storage, Tag

from .conftest import bot_settings, child_env
from .test_commands_discord import bot_env

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 240  # seconds: a hung subprocess fails the test instead of the session


def console_env(tiny_models: dict, data_dir: Path, **overrides: str) -> dict[str, str]:
    """Every role on a tiny model, the offline profile, this run's own cache and database."""
    return child_env(
        **{
            "SENTIMENT_MODEL": str(tiny_models["sentiment"]),
            "GENERATION_MODEL": str(tiny_models["gpt2"]),
            "ZERO_SHOT_MODEL": str(tiny_models["nli"]),
            "FILL_MASK_MODEL": str(tiny_models["fill_mask"]),
            "EMBEDDING_MODEL": str(tiny_models["embedding"]),
            "NER_MODEL": str(tiny_models["ner"]),
            "MODEL_PROFILE": "offline",
            "MODEL_CACHE_DIR": str(data_dir / "models"),
            "DATABASE_PATH": str(data_dir / "bot.sqlite3"),
            "DEVICE": "cpu",
            "TORCH_THREADS": "1",  # several of these run at once on few cores
            **overrides,
        }
    )


def test_the_subprocesses_environment_is_built_from_a_known_base(monkeypatch):
    """What an operator's shell may hold reaches no child process; every setting is there (and so no .env
    value can fill one in)."""
    leaks = {
        "ENGINE_BACKEND": "ray",
        "GENERATION_BACKEND": "openai",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_MODEL": "elsewhere",
        "STALL_TIMEOUT": "1",
        "PYTHONPATH": "/somewhere/else",
    }
    for name, value in leaks.items():
        monkeypatch.setenv(name, value)
    env = child_env(MAX_QUEUE="5")
    assert set(bot_settings()) <= set(env) and "PYTHONPATH" not in env
    assert Settings.from_env(env) == Settings.from_env({"MAX_QUEUE": "5"})


# --------------------------------------------------------------------------------------------- --json

# (input line, expected command, expected ok, expected error kind, text the message must contain).
# A line that names a known command but can't be parsed may report that command or null.
SCRIPT = [
    ("# a comment: skipped", None, None, None, None),
    ("/label text: What a great goal! labels: sports, politics method: nli", "label", True, None, None),
    ("", None, None, None, None),
    ("/tokens text: Hello world model: generation", "tokens", True, None, None),
    ("this is not a command", None, False, "invalid_input", "Unknown command"),
    ("/frobnicate x: 1", None, False, "invalid_input", "Unknown command"),
    ("/sync", None, False, "invalid_input", "Unknown command"),  # Discord-only
    (
        "/fill Paris is the [MASK] of France",
        (None, "fill"),
        False,
        "invalid_input",
        "Write options as name: value. Usage: /fill text: [top_k:]",
    ),
    (
        "/fill text: Paris is the [MASK] top_k: many",
        (None, "fill"),
        False,
        "invalid_input",
        "top_k must be a whole number, not 'many'",
    ),
    ("/fill text: there is no mask here", "fill", False, "invalid_input", "Put exactly one mask"),
    (
        "/generate prompt: hi max_new_tokens: 1000",
        "generate",
        False,
        "invalid_input",
        "max_new_tokens must be between 1 and 256",
    ),
    ("/label text: goal labels: sports, Sports", "label", False, "invalid_input", "given twice"),
    (
        "/label text: goal labels: sports method: svm",
        (None, "label"),
        False,
        "invalid_input",
        "method must be one of: nli, embedding",
    ),
    ("/label text: goal", "label", False, "invalid_input", "missing labels"),
    ("/generate prompt: Once upon a time max_new_tokens: 4 temperature: 0", "generate", True, None, None),
    ("/status", "status", True, None, None),
    ("/compare task: sentiment text: What a great goal!", "compare", True, None, None),
    (
        "/compare task: fill text: a <mask> day",
        "compare",
        False,
        "invalid_input",
        "Comparing needs two fill-mask models",
    ),
    ("/compare text: a <mask> day", (None, "compare"), False, "invalid_input", "/compare: missing task"),
]


class Runs:
    """The entry-point runs this module checks, all started at once: they are independent, and
    most of each is importing torch, which overlaps well on two cores. `get(name)` waits for one."""

    def __init__(self) -> None:
        self.started: dict[str, subprocess.Popen] = {}
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def start(self, name: str, args: list[str], env: dict[str, str], stdin: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stdin.txt").write_text(stdin, encoding="utf-8")
        with open(folder / "stdin.txt", encoding="utf-8") as lines:  # a file, not a terminal
            self.started[name] = subprocess.Popen(
                [sys.executable, "-m", "bot", *args],
                stdin=lines,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=REPO_ROOT,
                text=True,
            )

    def get(self, name: str) -> subprocess.CompletedProcess:
        if name not in self.done:
            process = self.started[name]
            out, err = process.communicate(timeout=TIMEOUT)
            self.done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        return self.done[name]

    def stop(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory):
    runs = Runs()
    data = tmp_path_factory.mktemp("console-runs")
    runs.start(
        "json",
        ["console", "--json"],
        console_env(
            tiny_models, data / "json", SENTIMENT_MODELS=f"{tiny_models['sentiment']},{tiny_models['embedding']}"
        ),
        "".join(line + "\n" for line, *_ in SCRIPT),
        data / "json",
    )
    # MODEL_PROFILE unset (so "online"): the fallback itself must switch to the offline profile.
    runs.start(
        "fallback",
        [],
        console_env(tiny_models, data / "fallback", MODEL_PROFILE=""),
        "/status\n/tokens text: Hello world model: sentiment\n",
        data / "fallback",
    )
    runs.start(
        "conversation",
        ["console", "--json"],
        console_env(
            tiny_models,
            data / "chat",
            GENERATION_MODEL=str(tiny_models["llama"]),
            SYSTEM_PROMPT="Be brief.",
            CHAT_MAX_NEW_TOKENS="16",
        ),  # short answers: a few turns fit the tiny Llama's 512 positions
        "".join(line + "\n" for line in CONVERSATION),
        data / "chat",
    )
    moderation = data / "moderation"
    embedding = json.loads((tiny_models["embedding"] / "config.json").read_text())["hidden_size"]
    asyncio.run(fill_database(moderation / "bot.sqlite3", str(tiny_models["embedding"]), embedding, quiet=False))
    runs.start(
        "moderation",
        ["console", "--json"],
        console_env(tiny_models, moderation),
        "/policies\n/learning\n",
        moderation,
    )
    runs.start(
        "bad setting",
        ["console", "--json"],
        console_env(tiny_models, data / "bad", MAX_QUEUE="abc"),
        "/tokens text: hi\n",
        data / "bad",
    )
    yield runs
    runs.stop()


def test_console_json_one_object_per_command_line(runs, tiny_models):
    done = runs.get("json")
    assert done.returncode == 0, done.stderr[-3000:]

    out = done.stdout.splitlines()
    objects = [json.loads(line) for line in out]  # stdout carries nothing but JSON (logs go to stderr)
    expected = [
        (number, *rest) for number, (line, *rest) in enumerate(SCRIPT, 1) if line.strip() and not line.startswith("#")
    ]
    assert len(objects) == len(expected), done.stdout
    for obj, (number, command, ok, kind, text) in zip(objects, expected):
        assert obj["line"] == number, obj
        assert obj["command"] in (command if isinstance(command, tuple) else (command,)), obj
        assert obj["ok"] is ok, obj
        if ok:
            assert set(obj) == {"line", "command", "ok", "result"}, obj
            assert isinstance(obj["result"], dict)
        else:
            assert set(obj) == {"line", "command", "ok", "error"}, obj
            assert set(obj["error"]) == {"kind", "message"}
            assert obj["error"]["kind"] == kind
            assert text in obj["error"]["message"], obj
            assert "Traceback" not in obj["error"]["message"]

    results = {obj["line"]: obj["result"] for obj in objects if obj["ok"]}
    label = results[2]
    assert label["text"] == "What a great goal!" and sorted(label["labels"]) == ["politics", "sports"]
    assert label["method"] == "nli" and abs(sum(label["scores"]) - 1) < 1e-4
    assert label["model"] == str(tiny_models["nli"])
    tokens = results[4]
    assert tokens["text"] == "Hello world" and tokens["decoded"] == "Hello world"
    assert len(tokens["tokens"]) == len(tokens["ids"]) == len(tokens["special"]) and not any(tokens["special"])
    assert tokens["model"] == str(tiny_models["gpt2"])
    generation = results[15]
    assert generation["prompt"] == "Once upon a time" and len(generation["texts"]) == 1
    assert 0 < generation["new_tokens"][0] <= 4 and generation["mode"] == "complete"
    status = results[16]
    assert status["worker_state"] == "running" and status["queued"] == 0 and status["device"] == "cpu"
    assert {"model_id": str(tiny_models["nli"]), "roles": ["zero_shot"]}.items() <= next(
        m for m in status["models"] if m["model_id"] == str(tiny_models["nli"])
    ).items()
    compared = results[17]["answers"]  # the two sentiment models, each with its own result and time
    assert [side["model"] for side in compared] == [str(tiny_models["sentiment"]), str(tiny_models["embedding"])]
    assert [side["result"]["method"] for side in compared] == ["classifier", "embedding"]
    assert all(side["seconds"] > 0 for side in compared)


CONVERSATION = [
    "/continue",
    "/chat message: My name is Ada.",
    "/chat message: What is my name?",
    "/continue",
    "/new",
    "/chat message: Hello again",
]


def test_console_conversation_remembers_until_new(runs):
    done = runs.get("conversation")
    assert done.returncode == 0, done.stderr[-3000:]
    nothing, first, second, more, new, fresh = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["command"] for o in (nothing, first, second, more, new, fresh)] == [
        "continue",
        "chat",
        "chat",
        "continue",
        "new",
        "chat",
    ]
    assert all(o["ok"] for o in (first, second, more, new, fresh)), done.stdout
    assert not nothing["ok"] and "no answer to continue" in nothing["error"]["message"]
    # The second turn read the first exchange; after /new the model reads nothing earlier.
    assert (first["result"]["turns_seen"], second["result"]["turns_seen"], fresh["result"]["turns_seen"]) == (
        0,
        2,
        0,
    ), done.stdout
    assert second["result"]["prompt"] == "What is my name?" and second["result"]["mode"] == "chat"
    # /continue went on with the second answer and shows it as one answer.
    assert more["result"]["prompt"] == "What is my name?" and more["result"]["mode"] == "chat"
    assert more["result"]["texts"][0].startswith(second["result"]["texts"][0])


# --------------------------------------------------------------------------------------------- start-up


def test_without_a_token_python_m_bot_falls_back_to_the_console(runs):
    done = runs.get("fallback")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DISCORD_TOKEN is not set" in done.stderr and "console" in done.stderr
    # Not a terminal, not --json: the panels are printed one command after the other.
    assert "Status" in done.stdout and "profile offline" in done.stdout
    assert "Tokens (" in done.stdout and "[CLS]" in done.stdout
    assert not done.stdout.lstrip().startswith("{")


def test_a_bad_setting_stops_start_up_with_exit_code_2(runs):
    done = runs.get("bad setting")
    assert done.returncode == 2
    assert "Configuration error: MAX_QUEUE='abc' is not valid: expected a positive whole number" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing ran


# --------------------------------------------------------------------------------------------- parser


@pytest.fixture(scope="module")
def parser():
    """The console's parser over the commands' declarations (no engine, no bot)."""
    return CommandLine()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "/label text: great goal! labels: sports, politics",
            ("label", {"text": "great goal!", "labels": "sports, politics"}),
        ),
        # any order, any case of the command and option names; values may hold colons
        (
            "/LABEL labels: a, b multi_label: yes TEXT: kick-off at 10:30",
            ("label", {"labels": "a, b", "multi_label": True, "text": "kick-off at 10:30"}),
        ),
        (
            "generate prompt: hi max_new_tokens: 12 temperature: 0.5 seed: 3 mode: chat",
            ("generate", {"prompt": "hi", "max_new_tokens": 12, "temperature": 0.5, "seed": 3, "mode": "chat"}),
        ),
        ("/status", ("status", {})),
        ("  /tokens   text:   spaced out   ", ("tokens", {"text": "spaced out"})),
    ],
)
async def test_parser_reads_the_cogs_options(parser, line, expected):
    name, options = parser.parse(line)
    assert (name, options) == expected
    assert all(type(v) is type(expected[1][k]) for k, v in options.items())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/multi_label x: 1", "Unknown command"),
        ("/generate prompt: hi temperature: warm", "temperature must be a number, not 'warm'"),
        ("/label text: a labels: b multi_label: maybe", "multi_label must be true or false, not 'maybe'"),
        (
            "/tokens text: hi model: gpt5",
            "model must be one of: " + ", ".join(roles()),
        ),
        ("/status now please", "Write options as name: value. Usage: /status"),
    ],
)
async def test_parser_refusals_are_invalid_input(parser, line, message):
    with pytest.raises(InvalidInput) as refused:
        parser.parse(line)
    assert message in str(refused.value)


async def test_parser_accepts_private_as_discord_does_and_keeps_it_apart(parser):
    """`private:` is an option of every command on Discord; the console checks it, then drops it (its answers
    are private anyway), and it never ends up glued onto the value before it."""
    line = "/label text: great goal labels: sports, politics private: true"
    assert parser.parse(line) == ("label", {"text": "great goal", "labels": "sports, politics"})
    assert parser.parse("/status private: no") == ("status", {})
    with pytest.raises(InvalidInput, match="private must be true or false, not 'maybe'"):
        parser.parse("/label text: a labels: b private: maybe")


# --------------------------------------------------------------------------------------------- on a terminal


def visible(text: str) -> str:
    """What a terminal shows of a text: the tiny models write control characters too, which rich drops."""
    return "".join(ch for ch in text if ch.isprintable() or ch.isspace())


def squash(text: str) -> str:
    """Text without what wrapping and a panel's border add (spaces, new lines, box edges)."""
    return "".join(ch for ch in visible(text) if not ch.isspace() and ch not in "│╭╮╰╯─")


async def test_a_streamed_answer_is_shown_once_and_long_lines_wrap_whole(
    tiny_engine, tiny_models, tmp_path, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal: every answer line is longer than it
    out = io.StringIO()
    app = ConsoleApp(Settings.from_env(bot_env(tiny_models, str(tmp_path))), tiny_engine, out=out)
    sampled = "temperature: 1 top_p: 1 max_new_tokens: 40"  # seeded sampling: varied text that doesn't loop
    streamed = await app.run_line(f"/generate prompt: Once upon a time {sampled} seed: 5", 1)
    several = await app.run_line(f"/generate prompt: The weather {sampled} seed: 6 num_return_sequences: 2", 2)
    shown = visible(out.getvalue())
    assert app.rich.width == 60 and streamed["ok"] and several["ok"], shown

    text = visible(streamed["result"]["texts"][0])
    assert len(text) > 60 and shown.count(text) == 1, shown  # streamed as it came
    assert shown.count(text.strip()[:12]) == 1, shown  # and not repeated in a panel afterwards
    result = GenerationResult(**streamed["result"] | {"sampling": Sampling(**streamed["result"]["sampling"])})
    assert squash(render_result(result).footer) in squash(shown)  # the footer follows it, whole
    for each in several["result"]["texts"]:  # not streamed: in a panel, wrapped, nothing cropped
        assert len(each) > 60 and squash(each) in squash(shown), shown


def test_the_interactive_console_keeps_logs_out_of_the_conversation(tiny_models, tmp_path):
    """On a terminal (a pseudo-terminal here): no INFO lines from the bot or the worker, no progress bars."""
    main, child = pty.openpty()
    env = console_env(tiny_models, tmp_path, HOME=str(tmp_path), COLUMNS="80", LOG_LEVEL="info")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "console"], stdin=child, stdout=child, stderr=child, env=env, cwd=REPO_ROOT
    )
    os.close(child)
    os.write(main, b"/sentiment text: What a great goal!\n/exit\n")
    shown = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 1.0)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the console exited: its terminal is closed
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        assert process.wait(30) == 0, shown.decode(errors="replace")[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    screen = shown.decode(errors="replace")
    assert "Sentiment" in screen and "Hugging Face bot console" in screen, screen[-3000:]
    assert " INFO " not in screen and "INFO" not in screen.replace("info", ""), screen[-3000:]
    assert "it/s]" not in screen and "Loading weights" not in screen, screen[-3000:]


# --------------------------------------------------------------------------------------------- moderation view

GUILD, QUIET_GUILD = 1001, 1002
PER_LABEL = {"spam": 9, "question": 6, "off-topic": 3}  # curve points 2 (three labels), 4 and 6 (two)


async def fill_database(target: Path | str, model: str, dim: int, quiet: bool = True) -> None:
    """GUILD: three labels whose kept vectors are separable (each near its own axis), a "Help me learn" question
    answered, and a policy; QUIET_GUILD (unless not `quiet`): a label and nothing else. Written through the bot's
    storage API."""
    async with Storage(target) as storage:
        await fill_guilds(storage, model, dim, quiet)


async def fill_guilds(storage: Storage, model: str, dim: int, quiet: bool) -> None:
    store, rng = storage.moderation, random.Random(0)
    for label in [*PER_LABEL, "unused"]:
        await store.add_label(GUILD, label, None, None)
    if quiet:
        await store.add_label(QUIET_GUILD, "spam", None, None)
    message = itertools.count(1)
    for axis, (label, n) in enumerate(PER_LABEL.items()):
        for _ in range(n):
            vector = [rng.gauss(0, 0.05) for _ in range(dim)]
            vector[axis] += 1.0
            m = next(message)
            tag = Tag(GUILD, 10, m, 20 + m, label, None, "embedding", 5, False, time.time() + m, None)
            await store.add_tags([tag], Embedding(struct.pack(f"{dim}f", *vector), model))
    assert await store.claim_ask(GUILD, 1, 21, time.time(), 5)  # message 1 (spam) was asked about
    await storage.policies.set_policy(Policy(GUILD, "spam", 0, "delete", None, 0.9, 0.71, 0.95, 0.6, 5, time.time()))


async def test_the_moderation_view_shows_policies_and_the_learning_curve(tiny_engine, tiny_models, tmp_path, backend):
    """/policies and /learning on the database the bot writes (an SQLite file, and PostgreSQL), in --json and as
    text: the curve is measured on the server's own examples, and every refusal is one clear line."""
    probe = await tiny_engine.submit(LabelMessageRequest("hi", ("a", "b"), ("a", "b")), user="test")
    assert probe.model == str(tiny_models["embedding"])  # the model the entry-point run's vectors are kept for
    await fill_database(backend.target, probe.model, len(probe.vector) // 4)
    settings = Settings.from_env(bot_env(tiny_models, str(tmp_path), DATABASE_URL=backend.url))
    out = io.StringIO()
    app = ConsoleApp(settings, tiny_engine, out=out, json_mode=True)
    lines = [
        "/policies",
        f"/policies server: {GUILD}",
        f"/learning server: {GUILD}",
        "/learning server: 77",
        f"/learning server: {QUIET_GUILD}",
        f"/policies server: {QUIET_GUILD}",
        "/policies server: many",
    ]
    try:
        done = [await app.run_line(line, number) for number, line in enumerate(lines, 1)]
    finally:
        await app.moderation.close()
    both, policies, learning, unknown, quiet, no_policies, bad = done
    assert out.getvalue() == ""  # --json: the caller prints the objects

    assert [p["label"] for p in policies["result"]["policies"]] == ["spam"], policies
    assert policies["result"]["policies"][0]["threshold"] == 0.71 and policies["result"]["server"] == GUILD

    curve = learning["result"]["curve"]
    points = [(p["per_label"], p["labels"], p["evaluated"]) for p in curve["points"]]
    assert points == [(2, 3, 6), (4, 2, 8), (6, 2, 12)], curve
    assert curve["points"][-1]["accuracy"] == 1.0  # separable: every held-out example is right
    assert (curve["examples"], curve["from_questions"]) == (18, 1)
    report = learning["result"]["report"]
    assert report["counts"] == [9, 6, 3, 0] and report["evaluated"] == 18 and "held_out" not in report

    for outcome, message in [
        (both, f"The database has 2 servers: name one with server: ({GUILD}, {QUIET_GUILD})."),
        (unknown, f"The database has no server 77. Servers there: {GUILD}, {QUIET_GUILD}."),
        (quiet, "The report compares labels with each other: add at least two labels"),
        (no_policies, f"Server {QUIET_GUILD} has no policies"),
        (bad, "server must be a whole number, not 'many'."),
    ]:
        assert not outcome["ok"] and outcome["error"]["kind"] == "invalid_input", outcome
        assert outcome["error"]["message"].startswith(message) and "\n" not in outcome["error"]["message"]

    text = ConsoleApp(settings, tiny_engine, out=(shown := io.StringIO()))  # the panels, as on a terminal
    try:
        assert (await text.run_line(f"/learning server: {GUILD}", 1))["ok"]
        assert (await text.run_line(f"/policies server: {GUILD}", 2))["ok"]
    finally:
        await text.moderation.close()
    screen = squash(shown.getvalue())
    assert squash("Learned labels report, server 1001") in screen and squash("6 per label") in screen, screen
    assert squash("1 of 18 examples answer “Help me learn” questions") in screen
    assert squash("spam in every watched channel → delete the message from score 0.71") in screen


def test_the_console_picks_the_databases_only_server(runs):
    """Through the entry point: with one server in the database, /policies and /learning need no server: option."""
    done = runs.get("moderation")
    assert done.returncode == 0, done.stderr[-3000:]
    policies, learning = [json.loads(line) for line in done.stdout.splitlines()]
    assert policies["ok"] and learning["ok"], done.stdout
    assert policies["result"]["server"] == learning["result"]["server"] == GUILD
    assert [p["label"] for p in policies["result"]["policies"]] == ["spam"]
    points = learning["result"]["curve"]["points"]
    assert [p["per_label"] for p in points] == [2, 4, 6] and points[-1]["accuracy"] == 1.0


async def test_the_moderation_view_without_a_database_says_so(tiny_engine, tiny_models, tmp_path):
    settings = Settings.from_env(bot_env(tiny_models, str(tmp_path)))
    app = ConsoleApp(settings, tiny_engine, out=io.StringIO(), json_mode=True)
    outcome = await app.run_line("/policies", 1)
    assert outcome["error"] == {
        "kind": "invalid_input",
        "message": f"There is no database at {tmp_path}/bot.sqlite3: the bot has stored nothing yet (DATABASE_PATH).",
    }
    assert not (tmp_path / "bot.sqlite3").exists()  # looking did not create one
