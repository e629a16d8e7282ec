"""The contract every registered task keeps, checked for each one the registry holds (bot/specs/):
its worker class exists and streams when its request does; each command's options refuse a bad value
with the declared message; its example runs in the console and through the engine, and renders within
Discord's limits; /compare takes each command that declares its text, with two models of its role."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
import pytest_asyncio

from bot.commands import build_request, render_result
from bot.compare import build_comparison
from bot.console import ConsoleApp, example_line
from bot.embeds import to_embed
from bot.engine import Engine, InvalidInput
from bot.engine.tasks import StreamingTask, Task, worker_class
from bot.settings import Settings
from bot.specs import commands, roles, spec, specs

from .conftest import tiny_engine_config
from .test_commands_discord import assert_within_limits

SPECS = {s.name: s for s in specs()}
COMMANDS = commands()
TIMEOUT = 120


@pytest.fixture(scope="module")
def settings(tiny_models, tmp_path_factory) -> Settings:
    """Every role on a tiny model; generation on the tiny Llama, which has a chat template."""
    paths = {
        "sentiment": "sentiment",
        "generation": "llama",
        "zero_shot": "nli",
        "fill_mask": "fill_mask",
        "ner": "ner",
        "question_answering": "qa",
        "translation": "marian",
        "summarization": "bart",
    }
    env = {roles()[role].setting: str(tiny_models[kind]) for role, kind in paths.items()}
    env.update(EMBEDDING_MODEL=str(tiny_models["embedding"]), MODEL_PROFILE="offline", DEVICE="cpu")
    env.update(DATABASE_PATH=str(tmp_path_factory.mktemp("contract") / "bot.sqlite3"))
    return Settings.from_env(env)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(tiny_models, settings):
    async with Engine(tiny_engine_config(tiny_models, generation="llama", models=settings.engine.models)) as engine:
        yield engine


@pytest.mark.parametrize("name", SPECS)
def test_its_worker_class_exists_and_streams_when_its_request_does(name):
    task = SPECS[name]
    request = task.request
    worker = worker_class(request.__new__(request))  # the class is all it reads
    assert issubclass(worker, StreamingTask if request.streams else Task), worker
    assert (task.streaming is not None) == request.streams
    assert task.render is not None or not task.commands  # a command's result is shown


def bad_values(option):
    """(a value the option must refuse, what the refusal says)."""
    if option.choices:
        yield "not-a-choice", "must be one of"
    elif option.kind is str and option.high is not None:
        yield "x" * (int(option.high) + 1), "too long"
    elif option.kind in (int, float):
        yield option.high + 1, option.name
        if option.kind is int:
            yield option.low + 0.5, option.name  # a count must be whole


@pytest.mark.parametrize("name", COMMANDS)
def test_its_options_refuse_bad_values_with_the_declared_message(name, settings):
    declared = COMMANDS[name]
    assert declared.example is not None, f"/{name} declares no example"
    for option in declared.options:
        if option.required:
            missing = {k: v for k, v in declared.example.items() if k != option.name}
            with pytest.raises(InvalidInput, match=f"missing {option.name}"):
                build_request(name, missing, settings)
        for value, message in bad_values(option):
            with pytest.raises(InvalidInput, match=message):
                build_request(name, {**declared.example, option.name: value}, settings)
    with pytest.raises(InvalidInput, match="unknown option"):
        build_request(name, {**declared.example, "no_such_option": 1}, settings)


@pytest.mark.parametrize("name", COMMANDS)
async def test_its_example_runs_and_renders_within_discords_limits(name, settings, engine):
    declared = COMMANDS[name]
    request = build_request(name, declared.example, settings)
    result = await engine.submit(request, user="contract", timeout=TIMEOUT)
    assert isinstance(result, spec(request.task).result)
    assert_within_limits(to_embed(render_result(result)).to_dict())
    if spec(request.task).streaming is not None:
        streaming = spec(request.task).streaming
        assert_within_limits(to_embed(streaming.partial(request, "so far", False)).to_dict())

    out = io.StringIO()
    outcome = await ConsoleApp(settings, engine, out=out, json_mode=True).run_line(
        example_line(name, declared.example), 1
    )
    assert outcome["ok"] and outcome["command"] == name, outcome
    json.dumps(outcome)  # the console's --json output


@pytest.mark.parametrize("name", [name for name, c in COMMANDS.items() if c.compare])
def test_compare_takes_it_with_two_models_of_its_role(name, settings):
    declared = COMMANDS[name]
    example = {**declared.example}
    role = declared.model_role(example, settings)
    two = dataclasses.replace(settings.engine, alternatives={role: ("first/model", "second/model")}, models={})
    text = example.pop(declared.compare)
    extra = {k: v for k, v in example.items() if k in {o.name for o in declared.options if o.required}}
    first, second = build_comparison(dataclasses.replace(settings, engine=two), task=name, text=text, **extra)
    assert (first.chosen_model(), second.chosen_model()) == ("first/model", "second/model")
    assert type(first) is type(second) is spec(first.task).request


@pytest.mark.parametrize("name", [s.name for s in specs() if s.roles])
def test_a_task_with_model_roles_can_be_compared(name):
    assert any(c.compare for c in SPECS[name].commands), f"/compare takes none of {name}'s commands"
