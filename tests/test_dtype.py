"""DTYPE=auto: the fastest correct dtype per device and role, and bf16 agreeing with float32.

Tolerances: bf16 keeps 8 bits of mantissa, so a score near 0.5 moves by up to ~1e-2;
embedding cosine between the two dtypes stays above 0.99 on the tiny model and 0.999 on MiniLM.
"""

from __future__ import annotations

import platform

import pytest
import torch
import torch.nn.functional as F

from bot.engine import EngineConfig, registry
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


# The first processor's block of /proc/cpuinfo on real machines (flags shortened to the relevant ones).
CPUS = {
    "Xeon Sapphire Rapids (AMX, AVX-512 BF16)": (
        "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512cd avx512bw "
        "avx512vl avx512_vnni avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8\n\nprocessor\t: 1\n",
        True,
    ),
    "EPYC Zen 4 (AVX-512 BF16)": (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl "
        "avx512_bf16 avx512_vnni\n",
        True,
    ),
    # AVX-512 without BF16: oneDNN would emulate bf16 (torch's own mkldnn check says yes here), slower than float32.
    "Xeon Cascade Lake (AVX-512, no BF16)": (
        "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni\n",
        False,
    ),
    "EPYC Zen 3 (AVX2)": ("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c vaes vpclmulqdq\n", False),
    "Graviton 3 (Arm BF16)": (
        "processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd sve asimdfhm svebf16 i8mm bf16 rng\n",
        True,
    ),
    "Graviton 2 (no BF16)": ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull atomics asimddp ssbs\n", False),
}


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Point the detection at a /proc/cpuinfo-style file with the given text."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN, so it never runs bf16 natively")

    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(registry, "CPUINFO", path)

    return write


@pytest.mark.parametrize(("text", "native"), CPUS.values(), ids=CPUS)
def test_auto_picks_bf16_for_encoders_only_where_the_cpu_has_bf16_instructions(cpuinfo, text, native):
    cpuinfo(text)
    cpu = torch.device("cpu")
    assert cpu_has_native_bf16() is native
    assert resolve_dtype("auto", cpu, decoder=False) == (torch.bfloat16 if native else torch.float32)
    assert resolve_dtype("auto", cpu, decoder=True) == torch.float32  # decoding got slower in bf16 (bench/)
    assert resolve_dtype("float32", cpu, decoder=False) == torch.float32  # an explicit DTYPE wins
    assert resolve_dtype("bfloat16", cpu, decoder=True) == torch.bfloat16


def test_no_cpuinfo_file_means_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "CPUINFO", tmp_path / "absent")  # macOS, Windows
    assert not cpu_has_native_bf16()
    assert resolve_dtype("auto", torch.device("cpu"), decoder=False) == torch.float32


@pytest.mark.skipif(platform.machine() != "x86_64" or not registry.CPUINFO.exists(), reason="x86 Linux only")
def test_this_machines_cpuinfo_agrees_with_cpuid():
    """Against torch's own CPUID reading (the cpuinfo library), a source independent of /proc/cpuinfo."""
    cpuid = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cpu_has_native_bf16() is (cpuid and torch.backends.mkldnn.is_available())


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
