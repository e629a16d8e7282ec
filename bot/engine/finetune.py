"""Contrastive fine-tuning of the sentence encoder (SetFit's method) as a low-rank adapter.

Pairs of a server's examples, same label or not, pull their embeddings' cosine towards 1 or 0
(sentence-transformers' CosineSimilarityLoss); a linear head is then fitted on the fine-tuned embeddings.
The shared base model is never changed: the adapter is a low-rank delta B @ A on the attention's
query and value weights (LoRA), applied for one call with `torch.func.functional_call`, so interactive
requests on the same model in between training steps see the base weights. The adapter (a few
tens of thousands of float32) is what a server keeps. Written here rather than with `peft` (not a
dependency), whose adapters are injected into the model in place, which the shared model must not be.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .embeddings import MAX_LENGTH
from .registry import LoadedModel

TARGETS = ("query.weight", "value.weight")  # BERT-family attention projections
RANK = 4
SCALE = 2.0  # LoRA's alpha / rank
LEARNING_RATE = 3e-4  # 2e-3 fell 6 points below the frozen encoder on bench.finetune; 3e-4 did not
BETAS = (0.9, 0.999)
EPSILON = 1e-8
PAIRS_PER_STEP = 16  # each one positive and one negative pair for 8 anchors


def target_names(model: torch.nn.Module) -> list[str]:
    """The weights an adapter changes, in a fixed order."""
    return [name for name, _ in model.named_parameters() if name.endswith(TARGETS)]


def new_adapter(model: torch.nn.Module, seed: int) -> list[torch.Tensor]:
    """[A, B] per target: A small random, B zero, so a new adapter changes nothing (LoRA's start)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = dict(model.named_parameters())
    tensors = []
    for name in target_names(model):
        out_features, in_features = shapes[name].shape
        tensors.append(torch.randn(RANK, in_features, generator=generator) / math.sqrt(in_features))
        tensors.append(torch.zeros(out_features, RANK))
    return tensors


def adapted(model: torch.nn.Module, adapter: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights to call the model with (functional_call): W + SCALE * B @ A for the targets. Under autograd
    also copies of inference tensors (a model first loaded by an inference request holds them, and autograd
    cannot save them for backward)."""
    params = dict(model.named_parameters())
    out = {}
    if torch.is_grad_enabled():
        tensors = {**params, **dict(model.named_buffers())}
        out = {name: tensor.clone() for name, tensor in tensors.items() if tensor.is_inference()}
    for k, name in enumerate(target_names(model)):
        a, b = adapter[2 * k], adapter[2 * k + 1]
        out[name] = out.get(name, params[name]) + SCALE * (b @ a).to(params[name].dtype)
    return out


def embed(loaded: LoadedModel, texts: Sequence[str], adapter: Sequence[torch.Tensor] | None) -> torch.Tensor:
    """Mean-pooled, L2-normalised embeddings through the adapter (the base model without one); differentiable
    when grad is on. One padded batch: training batches and the texts a unit embeds are small."""
    batch = loaded.tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    batch = {name: tensor.to(loaded.device) for name, tensor in batch.items()}
    weights = adapted(loaded.model, adapter) if adapter is not None else {}
    hidden = torch.func.functional_call(loaded.model, weights, args=(), kwargs=batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float()
    return F.normalize(mean, dim=-1).cpu()


def embed_all(
    loaded: LoadedModel, texts: Sequence[str], adapter: Sequence[torch.Tensor] | None, rows: int = 32
) -> torch.Tensor:
    """`embed` in chunks of `rows`, without autograd."""
    with torch.inference_mode():
        parts = [embed(loaded, texts[i : i + rows], adapter) for i in range(0, len(texts), rows)]
    return torch.cat(parts) if parts else torch.empty(0, loaded.config.hidden_size)


def pairs(labels: Sequence[str], count: int, rng: random.Random) -> list[tuple[int, int, float]]:
    """(i, j, target cosine): half same-label pairs (1), half different-label ones (0), like SetFit's sampler.
    A label with one example gives no positive pair of its own."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    anchors = [i for i in range(len(labels)) if len(by_label[labels[i]]) > 1]
    out: list[tuple[int, int, float]] = []
    while len(out) < count and anchors and len(by_label) > 1:
        i = rng.choice(anchors)
        same = rng.choice([j for j in by_label[labels[i]] if j != i])
        other = rng.choice([j for j in range(len(labels)) if labels[j] != labels[i]])
        out += [(i, same, 1.0), (i, other, 0.0)]
    return out


class Trainer:
    """Adam on the adapter, resumable: its whole state is a list of tensors plus a step count, so a unit
    of a few steps can run, hand its state back, and the next unit go on from there."""

    def __init__(self, loaded: LoadedModel, state: list[torch.Tensor], step: int) -> None:
        self.loaded = loaded
        count = len(state) // 3
        self.adapter = [t.clone().requires_grad_(True) for t in state[:count]]
        self.moments = [t.clone() for t in state[count : 2 * count]]
        self.squares = [t.clone() for t in state[2 * count :]]
        self.step = step

    @staticmethod
    def initial(loaded: LoadedModel, seed: int) -> list[torch.Tensor]:
        adapter = new_adapter(loaded.model, seed)
        return adapter + [torch.zeros_like(t) for t in adapter] * 2

    def state(self) -> list[torch.Tensor]:
        return [t.detach() for t in self.adapter] + self.moments + self.squares

    def train_step(self, texts: Sequence[str], labels: Sequence[str], seed: int) -> float:
        """One optimizer step on PAIRS_PER_STEP pairs drawn for this step; returns the loss."""
        chosen = pairs(labels, PAIRS_PER_STEP, random.Random(f"{seed}:{self.step}"))
        if not chosen:
            raise ValueError("fine-tuning needs two labels with examples, one of them with two")
        rows = sorted({i for i, j, _ in chosen} | {j for i, j, _ in chosen})
        where = {row: k for k, row in enumerate(rows)}
        with torch.enable_grad():
            vectors = embed(self.loaded, [texts[row] for row in rows], self.adapter)
            left = vectors[[where[i] for i, _, _ in chosen]]
            right = vectors[[where[j] for _, j, _ in chosen]]
            target = torch.tensor([t for _, _, t in chosen])
            loss = F.mse_loss((left * right).sum(-1), target)
            grads = torch.autograd.grad(loss, self.adapter)
        self.step += 1
        with torch.no_grad():
            for param, grad, m, v in zip(self.adapter, grads, self.moments, self.squares):
                m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
                v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
                m_hat = m / (1 - BETAS[0] ** self.step)
                v_hat = v / (1 - BETAS[1] ** self.step)
                param.sub_(LEARNING_RATE * m_hat / (v_hat.sqrt() + EPSILON))
        return float(loss.detach())


def adapter_bytes(adapter: Sequence[torch.Tensor]) -> bytes:
    return b"".join(t.detach().to(torch.float32).contiguous().numpy().tobytes() for t in adapter)


def adapter_from_bytes(data: bytes, model: torch.nn.Module) -> list[torch.Tensor]:
    """The inverse of adapter_bytes for this model's targets; ValueError when the sizes do not match."""
    shapes: list[tuple[int, ...]] = []
    params = dict(model.named_parameters())
    for name in target_names(model):
        out_features, in_features = params[name].shape
        shapes += [(RANK, in_features), (out_features, RANK)]
    if sum(math.prod(s) for s in shapes) * 4 != len(data):
        raise ValueError("the adapter does not fit this model")
    flat = torch.frombuffer(bytearray(data), dtype=torch.float32)
    out, offset = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(flat[offset : offset + size].view(shape))
        offset += size
    return out


def state_from_bytes(data: bytes, model: torch.nn.Module) -> list[torch.Tensor]:
    """A trainer's state (adapter, first and second moments; `adapter_bytes` of Trainer.state()) from bytes."""
    third = len(data) // 3
    return [t for part in range(3) for t in adapter_from_bytes(data[part * third : (part + 1) * third], model)]
