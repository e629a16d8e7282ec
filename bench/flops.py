"""Distance to the hardware's limit: the machine's measured GEMM peak per dtype, and a model's FLOPs per request.

- Peak: the best of a few large square matrix products at the dtype, on the bench's thread count
  (what the engine's matrix products could reach at most on these cores).
- Model FLOPs of one sequence of L real tokens (no padding: what the request needs, not what a pass
  wasted): the matrix products torch's FlopCounterMode counts in a forward of the sequence alone
  (every linear layer: ~2 x parameters x L, and a head at every token where the model has one,
  e.g. a masked LM's vocabulary projection), which grow linearly with L, fitted from the request set's
  shortest and longest sequence; plus attention's two L x L products (4 x L^2 x width a layer), which
  the counter misses inside CPU sdpa kernels, from the config.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

GEMM_SIZE = 2048
GEMM_REPEATS = 5


def gemm_peak(dtype: torch.dtype, device: str = "cpu", size: int = GEMM_SIZE, repeats: int = GEMM_REPEATS) -> float:
    """FLOP/s of the best of `repeats` size x size matrix products at `dtype` on `device` (on a CPU: the
    current thread count; a GPU gets 4x the size, to fill it)."""
    from .baselines import synchronize

    size = size * 4 if device != "cpu" else size
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: kernel selection, page faults
    best = float("inf")
    for _ in range(repeats):
        synchronize(a.device)
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize(a.device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def attention_layers(config: Any) -> int:
    """L x L attention products a forward runs: each encoder layer's self-attention; a decoder layer (BART,
    run over the same sequence) has self- and cross-attention."""
    if getattr(config, "is_encoder_decoder", False):
        return config.encoder_layers + 2 * config.decoder_layers
    return config.num_hidden_layers


def hidden_width(config: Any) -> int:
    return getattr(config, "d_model", None) or config.hidden_size


class FlopModel:
    """FLOPs of one sequence of L real tokens: linear + per_token x L + attention x L^2."""

    def __init__(self, model: Any, sequences: Sequence[dict[str, list[int]]]) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        by_length = sorted(sequences, key=lambda s: len(s["input_ids"]))
        short, long = by_length[0], by_length[-1]
        counted = []
        for features in (short, long):
            inputs = {name: torch.tensor([ids], device=model.device) for name, ids in features.items()}
            with torch.inference_mode(), FlopCounterMode(display=False) as counter:
                model(**inputs)
            counted.append((len(features["input_ids"]), counter.get_total_flops()))
        (l1, f1), (l2, f2) = counted
        self.per_token = (f2 - f1) / (l2 - l1) if l2 != l1 else f1 / l1
        self.fixed = f1 - self.per_token * l1
        self.attention = 4 * attention_layers(model.config) * hidden_width(model.config)

    def __call__(self, length: int) -> float:
        return self.fixed + self.per_token * length + self.attention * length**2
