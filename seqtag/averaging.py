"""Weight averaging: an exponential moving average (EMA) of the weights over the training steps.

Adam's weights wander from step to step, and so does the dev score (CoNLL-2003 dev F1 moves by a point
or more between epochs of the default NER model). The average of the recent weights sits nearer the
middle of where they wander. With ``training.average = d`` (0 turns it off), after each optimizer step

    avg <- avg + (1 - d_t) * (w - avg),   d_t = min(d, (1 + t) / (10 + t))

(the warm-up ``d_t`` lets the first steps count fully). Dev is scored, and the model saved, with the
averaged weights; training goes on from its own. The average is part of the checkpoint, so a resumed
run averages on exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The running average of ``model``'s trainable floating-point parameters.

    Args:
        model: The network being trained.
        decay: ``d`` in (0, 1): the weight of the old average at each step.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad and p.is_floating_point()]
        self._params = dict(model.named_parameters())
        self.average = [self._params[n].detach().clone() for n in self.names]
        self.steps = 0

    def _current(self) -> list[torch.Tensor]:
        return [self._params[n].detach() for n in self.names]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the weights after an optimizer step into the average."""
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self.average, self._current(), 1.0 - d)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own again after it (in place, so
        every reference to the parameters sees them, and their versions change: caches keyed on them
        empty themselves)."""
        own = [p.clone() for p in self._current()]
        with torch.no_grad():
            for n, a in zip(self.names, self.average):
                self._params[n].copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for n, w in zip(self.names, own):
                    self._params[n].copy_(w)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The average as named tensors (for the checkpoint), its step count included."""
        out = {f"average.{n}": a.detach().cpu().contiguous() for n, a in zip(self.names, self.average)}
        out["steps"] = torch.tensor([self.steps], dtype=torch.long)
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_tensors` gave.

        Raises:
            KeyError: A parameter's average is missing (the checkpoint was written without averaging).
        """
        with torch.no_grad():
            for n, a in zip(self.names, self.average):
                a.copy_(tensors[f"average.{n}"])
        self.steps = int(tensors["steps"][0])
