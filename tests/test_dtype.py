"""DTYPE=auto: the fastest correct dtype per device and role, and bf16 agreeing with float32.

Tolerances: bf16 keeps 8 bits of mantissa, so a score near 0.5 moves by up to ~1e-2;
embedding cosine between the two dtypes stays above 0.99 on the tiny model and 0.999 on MiniLM.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bot.engine import EngineConfig
from bot.engine.embeddings import Embedder
from bot.engine.registry import ModelRegistry, cpu_has_native_bf16, resolve_dtype
from bot.engine.tasks.sentiment import SentimentTask
from bot.specs.sentiment import SentimentRequest

from .conftest import offline_config, tiny_engine_config

SENTENCES = (
    "I loved this movie, it was wonderful.",
    "The food was cold and the staff were rude.",
    "The meeting is on Monday at ten.",
    "What a fantastic concert, best night ever!",
    "This update broke everything, I want a refund.",
)


def test_auto_picks_bf16_for_encoders_only_where_the_cpu_runs_it_natively():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu, decoder=False) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert resolve_dtype("auto", cpu, decoder=True) == torch.float32  # decoding got slower in bf16 (bench/)
    assert resolve_dtype("float32", cpu, decoder=False) == torch.float32  # an explicit DTYPE wins
    assert resolve_dtype("bfloat16", cpu, decoder=True) == torch.bfloat16


def embeddings(config: EngineConfig, role: str = "embedding") -> torch.Tensor:
    return Embedder(ModelRegistry(config), role=role).embed(SENTENCES)


def test_bf16_embeddings_agree_with_float32_on_the_tiny_model(tiny_models):
    fp32 = embeddings(tiny_engine_config(tiny_models, dtype="float32"))
    bf16 = embeddings(tiny_engine_config(tiny_models, dtype="bfloat16"))
    assert F.cosine_similarity(fp32, bf16).min() > 0.99


@pytest.mark.slow
def test_bf16_and_float32_agree_on_minilm_sentiment_labels_and_scores():
    def run(dtype: str) -> list:
        config = offline_config(dtype=dtype, device="cpu")
        return SentimentTask(ModelRegistry(config)).run([SentimentRequest(SENTENCES)], lambda *_: None)[0].sentences

    fp32, bf16 = run("float32"), run("bfloat16")
    for a, b in zip(fp32, bf16):
        assert a.label == b.label
        assert a.score == pytest.approx(b.score, abs=0.03)
    config = offline_config(device="cpu")
    fp32_vectors = embeddings(EngineConfig(**{**config.__dict__, "dtype": "float32"}))
    bf16_vectors = embeddings(EngineConfig(**{**config.__dict__, "dtype": "bfloat16"}))
    assert F.cosine_similarity(fp32_vectors, bf16_vectors).min() > 0.999
