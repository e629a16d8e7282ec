"""Every bad input is refused at once with a typed InvalidInput a chat user understands.

Validation is synchronous (in `submit_job`, before the queue), so no worker is needed:
the engine here has an executor that must never be called.
"""

from __future__ import annotations

import math

import pytest
import pytest_asyncio

from bot.engine import Engine, EngineConfig, InvalidInput
from bot.engine.scheduler import ExecutorInfo
from bot.specs.fill_mask import FillMaskRequest
from bot.specs.generation import GenerationRequest
from bot.specs.sentiment import SentimentRequest
from bot.specs.tokenize import TokenizeRequest
from bot.specs.zero_shot import ZeroShotRequest


class NeverExecutor:
    info = ExecutorInfo()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def run(self, task, jobs, events):  # pragma: no cover - failing is the point
        raise AssertionError("an invalid request reached the executor")


@pytest_asyncio.fixture
async def engine():
    engine = Engine(EngineConfig(), executor=NeverExecutor())  # not started: valid jobs just queue
    yield engine
    await engine.close()


LABELS_26 = tuple(f"label {i}" for i in range(26))

CASES = {
    # text
    "empty text": (SentimentRequest(("",)), ["empty"]),
    "whitespace text": (ZeroShotRequest(" \n\t ", ("a", "b")), ["empty"]),
    "no sentences": (SentimentRequest(()), ["empty", "at least one sentence"]),
    "too many sentences": (SentimentRequest(tuple(f"s{i}" for i in range(11))), ["11 sentences", "at most 10"]),
    "one sentence of many empty": (SentimentRequest(("fine", "  ")), ["empty"]),
    "over-long text": (FillMaskRequest("x" * 2001 + " [MASK]"), ["too long", "2008 characters", "limit is 2000"]),
    "over-long prompt": (GenerationRequest("p" * 2001), ["prompt", "too long", "2000"]),
    "empty prompt": (GenerationRequest("   "), ["prompt", "empty"]),
    "empty tokenize text": (TokenizeRequest(""), ["empty"]),
    # labels
    "zero labels": (ZeroShotRequest("text", ()), ["at least one label"]),
    "too many labels": (ZeroShotRequest("text", LABELS_26), ["26 labels", "limit is 25"]),
    "duplicate labels": (ZeroShotRequest("text", ("Sports", "politics", "sports")), ["'sports'", "twice"]),
    "empty label": (ZeroShotRequest("text", ("a", " ")), ["empty", "doubled commas"]),
    "long label": (ZeroShotRequest("text", ("a", "b" * 101)), ["too long", "100 characters"]),
    "template without slot": (ZeroShotRequest("text", ("a",), hypothesis_template="About this."), ["{}"]),
    # masks
    "no mask": (FillMaskRequest("Paris is the capital of France"), ["exactly one mask", "[MASK]", "<mask>", "___"]),
    "two masks": (FillMaskRequest("[MASK] is the ___ of France"), ["2 masks", "exactly one"]),
    # numbers out of range
    "max_new_tokens 0": (GenerationRequest("hi", max_new_tokens=0), ["max_new_tokens", "between 1 and 256", "got 0"]),
    "max_new_tokens 1000": (
        GenerationRequest("hi", max_new_tokens=1000),
        ["max_new_tokens", "between 1 and 256", "1000"],
    ),
    "temperature -1": (GenerationRequest("hi", temperature=-1), ["temperature", "between 0 and 2", "got -1"]),
    "temperature 2.5": (GenerationRequest("hi", temperature=2.5), ["temperature", "between 0 and 2"]),
    "top_p 0": (GenerationRequest("hi", top_p=0), ["top_p", "between 0.01 and 1", "got 0"]),
    "top_k 11": (FillMaskRequest("a [MASK]", top_k=11), ["top_k", "between 1 and 10", "got 11"]),
    "top_k 0": (FillMaskRequest("a [MASK]", top_k=0), ["top_k", "between 1 and 10"]),
    "num_return_sequences 5": (
        GenerationRequest("hi", num_return_sequences=5),
        ["num_return_sequences", "between 1 and 4"],
    ),
    "negative seed": (GenerationRequest("hi", seed=-1), ["seed", "between 0 and"]),
    # not real numbers
    "nan temperature": (GenerationRequest("hi", temperature=math.nan), ["temperature", "real number", "nan"]),
    "inf temperature": (GenerationRequest("hi", temperature=math.inf), ["temperature", "real number", "inf"]),
    "-inf top_p": (GenerationRequest("hi", top_p=-math.inf), ["top_p", "real number"]),
    # not integers / not numbers
    "fractional max_new_tokens": (GenerationRequest("hi", max_new_tokens=2.5), ["max_new_tokens", "whole number"]),
    "fractional top_k": (FillMaskRequest("a [MASK]", top_k=2.5), ["top_k", "whole number"]),
    "float seed": (GenerationRequest("hi", seed=1.5), ["seed", "whole number"]),
    "string max_new_tokens": (GenerationRequest("hi", max_new_tokens="10"), ["max_new_tokens", "must be a number"]),
    "bool top_k": (FillMaskRequest("a [MASK]", top_k=True), ["top_k", "must be a number"]),
    "string temperature": (GenerationRequest("hi", temperature="hot"), ["temperature", "must be a number"]),
    # choices
    "bad mode": (GenerationRequest("hi", mode="poem"), ["mode", "one of", "complete", "chat"]),
    "bad method": (ZeroShotRequest("text", ("a", "b"), method="magic"), ["method", "one of", "nli", "embedding"]),
    "bad tokenizer model": (TokenizeRequest("text", role="gpt-9"), ["model", "one of", "sentiment", "generation"]),
}


@pytest.mark.parametrize("request_, keywords", CASES.values(), ids=CASES.keys())
async def test_bad_input_is_refused_with_a_clear_message(engine, request_, keywords):
    with pytest.raises(InvalidInput) as refused:
        engine.submit_job(request_, user="alice")
    message = str(refused.value)
    for keyword in keywords:
        assert keyword.lower() in message.lower(), f"{keyword!r} not in {message!r}"
    assert "Traceback" not in message and "Error" not in message
    # Refused before the queue: no slot taken, nothing waiting.
    assert engine.scheduler.queue_depth() == 0 and engine.scheduler.in_flight == {}
    # The same check is available without an engine.
    with pytest.raises(InvalidInput) as again:
        request_.validate()
    assert str(again.value) == message


INTEGRAL_FLOATS = {
    "num_return_sequences 2.0": GenerationRequest("hi", num_return_sequences=2.0),
    "max_new_tokens 64.0": GenerationRequest("hi", max_new_tokens=64.0),
    "seed 7.0": GenerationRequest("hi", temperature=1.0, seed=7.0),
    "top_k 3.0": FillMaskRequest("a [MASK]", top_k=3.0),
}


@pytest.mark.parametrize("request_", INTEGRAL_FLOATS.values(), ids=INTEGRAL_FLOATS.keys())
async def test_a_float_is_refused_where_a_count_is_needed(engine, request_):
    # 2.0 used to pass validation and then crash the whole batch in the worker
    # (range(2.0), topk(k=3.0)), failing every other user's request in that batch too.
    with pytest.raises(InvalidInput, match="must be a whole number"):
        engine.submit_job(request_, user="alice")


VALID = [
    SentimentRequest(("I love it", "I hate it")),
    SentimentRequest(tuple("s" for _ in range(10))),
    ZeroShotRequest("text", tuple(f"label {i}" for i in range(25)), multi_label=True),
    ZeroShotRequest("text", ("Sports", "sport"), method="embedding", hypothesis_template="This is about {}."),
    FillMaskRequest("Paris is the <mask> of France", top_k=10),
    FillMaskRequest("Paris is the ___ of France", top_k=1),
    FillMaskRequest("x" * 1993 + " [mask]"),  # exactly 2000 characters
    GenerationRequest("hi", max_new_tokens=256, num_return_sequences=4, temperature=2.0, top_p=1, seed=2**32 - 1),
    GenerationRequest("hi", max_new_tokens=1, temperature=0, top_p=0.01, seed=0, mode="chat"),
    TokenizeRequest("text", role="embedding"),
]


async def test_boundary_values_are_accepted(engine):
    jobs = [engine.submit_job(request, user=f"user{i}") for i, request in enumerate(VALID)]
    assert engine.scheduler.queue_depth() == len(VALID)
    assert all(job.position() is not None for job in jobs)
