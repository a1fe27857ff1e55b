"""Distributed training on PyTorch's own engine: ``torchrun`` starts the processes, ``torch.distributed``
connects them, :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients and
:class:`~torch.utils.data.DistributedSampler` shards the data.

``torchrun --nproc_per_node N -m seqtag train ...`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
:func:`session` reads them and joins the process group (``nccl`` on CUDA, ``gloo`` on the CPU). A run
of one process (no ``WORLD_SIZE``, or 1) takes none of these paths. In a distributed run:

- ``training.batch_size`` is the total batch of a step: every rank cuts the same length-bucketed
  batches (one seed) and trains on its share of each, so N processes take the steps one process would;
- rank 0 alone writes the model, checkpoints, logs and progress, and scores the dev split; the score
  and the early-stopping state are broadcast, so every rank takes the same decision;
- a stop (Ctrl-C, SIGTERM) on any rank stops every rank at the same step boundary;
- a rank that is lost (killed, out of memory) ends the others with one line instead of a hang.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, Sequence

import torch

from .devices import resolve_device
from .errors import DistributedError

__all__ = ["Dist", "SINGLE", "session", "world_from_env"]

# how long a rank waits for the others in a collective before it gives up (seconds); a dev evaluation
# on rank 0 is the longest wait of a healthy run
TIMEOUT_ENV = "SEQTAG_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 1800


@dataclass(frozen=True)
class Dist:
    """This process's place in a run: ``rank`` of ``world_size`` (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files, logs and scores."""
        return self.rank == 0

    def shard(self, items: Sequence[int]) -> list[int]:
        """This rank's share of one batch (``DistributedSampler``: rank r takes items r, r+N, ...; a batch
        shorter than a multiple of N is padded by repeating its first items, so every rank has the same
        number of sentences and the averaged gradient is the batch's)."""
        if not self.enabled:
            return list(items)
        from torch.utils.data import DistributedSampler

        sampler: Any = DistributedSampler(items, num_replicas=self.world_size, rank=self.rank,  # type: ignore[arg-type]
                                     shuffle=False)
        return [items[i] for i in sampler]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (JSON-like values)."""
        if not self.enabled:
            return obj
        box = [obj]
        self._collective(torch.distributed.broadcast_object_list, box, src=0)
        return box[0]

    def any(self, flag: int) -> int:
        """The largest ``flag`` over the ranks (a stop asked on one rank is asked on all)."""
        if not self.enabled:
            return flag
        t = torch.tensor([int(flag)], dtype=torch.long)
        self._collective(torch.distributed.all_reduce, t, op=torch.distributed.ReduceOp.MAX)
        return int(t.item())

    def barrier(self) -> None:
        if self.enabled:
            self._collective(torch.distributed.barrier)

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. writes a shared cache), then the others (which read it)."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def _collective(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ValueError) as exc:  # gloo/nccl: a peer closed its connection or timed out
            raise lost_rank(self, exc) from None


SINGLE = Dist()


def lost_rank(dist: Dist, exc: BaseException) -> DistributedError:
    """The one line a rank ends with when the others are gone."""
    detail = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(exc).split()))  # gloo's source location
    detail = detail.split(". ")[0][:160]
    return DistributedError(f"rank {dist.rank} of {dist.world_size}: another process of this distributed run "
                            f"stopped or cannot be reached ({detail}); the last checkpoint stays, continue with "
                            f"the same torchrun command and --resume")


def world_from_env() -> Dist:
    """The place ``torchrun`` (or another launcher setting its variables) gave this process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise DistributedError(f"WORLD_SIZE, RANK and LOCAL_RANK must be integers ({exc})") from None
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK {rank} is not within WORLD_SIZE {world}")
    return Dist(rank, world, local)


@contextlib.contextmanager
def session(device: str | None) -> Iterator[tuple[Dist, torch.device]]:
    """This process's :class:`Dist` and device, in the process group when ``torchrun`` started several.

    ``device`` is the run's device setting; in a distributed CUDA run rank r of a machine takes
    ``cuda:LOCAL_RANK`` (``auto`` or ``cuda``) and the backend is nccl, else gloo on the CPU. A group
    this function joined is left when the block ends.
    """
    dist = world_from_env()
    dev = resolve_device(device)
    if not dist.enabled:
        yield SINGLE, dev
        return
    if dev.type == "cuda":
        if dist.local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK {dist.local_rank} has no CUDA device of its own "
                                   f"({torch.cuda.device_count()} visible); start at most that many processes "
                                   f"per machine")
        dev = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise DistributedError(f"distributed training runs on CUDA (nccl) or the CPU (gloo), not {dev.type}")
    joined = not torch.distributed.is_initialized()
    if joined:
        timeout = timedelta(seconds=int(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT)))
        try:
            torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timeout)
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"rank {dist.rank} of {dist.world_size} could not join the process group "
                                   f"({' '.join(str(exc).split())[:160]})") from None
    try:
        yield dist, dev
    finally:
        if joined and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
