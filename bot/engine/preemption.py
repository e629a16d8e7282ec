"""Cutting a classification pass short, on the worker's side.

A forward pass cannot be paused, but it can be abandoned between two matrix products: the parent writes
the id of the unit to give up into a shared integer, and a hook before each product of every classifying
model's blocks checks it while that unit runs (decoders get none: generation is never given up). The
unit's requests then go back to the queue unrun (the scheduler decides when: see Scheduler._preempt_for).
Only the thread running the unit checks; decoding threads never do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Preempted(Exception):
    """The unit was given up for a newcomer's request; none of its jobs has a result."""


class PreemptSignal:
    def __init__(self, shared: Any) -> None:
        self.shared = shared  # a multiprocessing Value("q"): the unit id the parent wants given up, 0 for none
        self._local = threading.local()

    @contextmanager
    def running(self, unit_id: int) -> Iterator[None]:
        """While this thread runs `unit_id`, the layers' hooks may raise Preempted."""
        self._local.unit = unit_id
        try:
            yield
        finally:
            self._local.unit = None

    def check(self, *_: Any) -> None:
        unit = getattr(self._local, "unit", None)
        if unit is not None and self.shared.value == unit:
            raise Preempted

    def install(self, model: Any) -> None:
        """A check before every matrix product of every block in `model`'s stacks of layers (the transformer
        blocks): a pass is then given up within one product's time, whatever the architecture."""
        import torch

        for module in model.modules():
            if isinstance(module, torch.nn.ModuleList):
                for block in module:
                    for part in block.modules():
                        if isinstance(part, torch.nn.Linear):
                            part.register_forward_pre_hook(self.check)
