"""A small cloze set for /fill: sentences with one mask and the words that count as right
(measured in the README; the slow test in test_real_models.py runs it through the real worker)."""

from __future__ import annotations

CLOZE: list[tuple[str, set[str]]] = [
    ("The capital of France is <mask>.", {"Paris"}),
    ("The <mask> barked at the mailman.", {"dog"}),
    ("I went to the <mask> to buy some bread.", {"store", "shop", "bakery", "market", "supermarket"}),
    ("She drank a cup of hot <mask> this morning.", {"coffee", "tea", "chocolate"}),
    ("The sun rises in the <mask>.", {"east", "morning"}),
    ("Water freezes at zero degrees <mask>.", {"Celsius"}),
    ("He wrote the letter with a <mask>.", {"pen", "pencil"}),
    ("The cat chased the <mask> around the house.", {"mouse", "dog", "ball", "rat"}),
    ("My favourite season is <mask> because it snows.", {"winter"}),
    ("There are seven days in a <mask>.", {"week"}),
    ("The doctor works at the <mask>.", {"hospital", "clinic"}),
    ("Birds can <mask> because they have wings.", {"fly"}),
    ("I use <mask> to cut paper.", {"scissors"}),
    ("The opposite of hot is <mask>.", {"cold"}),
    ("Romeo and Juliet was written by William <mask>.", {"Shakespeare"}),
    ("An apple a day keeps the <mask> away.", {"doctor"}),
    ("The moon orbits the <mask>.", {"Earth", "earth", "planet"}),
    ("She opened the door with her <mask>.", {"key", "keys"}),
    ("We eat soup with a <mask>.", {"spoon"}),
    ("It was raining, so I took my <mask>.", {"umbrella", "coat", "raincoat"}),
]


def accuracy(ranked: list[list[str]], k: int) -> float:
    """Share of the set whose right word is among the first k candidates."""
    return sum(bool(set(words[:k]) & right) for words, (_, right) in zip(ranked, CLOZE)) / len(CLOZE)
