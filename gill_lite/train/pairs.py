"""Which rows make each training batch, and which of them are joined in pairs (caption concatenation).

Each epoch is one seeded ordering of the dataset; global batch ``step`` is the consecutive slice
``[step * B, (step + 1) * B)`` of those orderings, and slots ``(2j, 2j + 1)`` among the first
``round(concat_fraction * B)`` slots of a batch are joined into one sequence (`gill_lite.train.steps`), as the
published code joins consecutive examples of a shuffled batch.

``n_matchings`` says how partners are chosen:

- ``0``: every epoch a fresh random ordering, so an example meets a new partner each epoch (the published
  behaviour);
- ``K > 0``: epoch ``e`` orders the pairs of fixed matching ``e % K`` (a seeded perfect matching of the rows),
  so an example is only ever paired with one of ``K`` partners. Then the frozen LM's [IMG] states of each row
  alone and as the second of its pair in each matching can be computed once (`caches.img_states`) and read by
  the stages where nothing upstream of them learns, instead of an LM pass per step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

ALONE = -1  # role of a row whose [IMG] states are its own (alone, or first of a pair: causal attention)
RANDOM_PARTNER = -2  # role of a pair's second row when partners are new every epoch (nothing cached serves it)


def _generator(*seed: int) -> torch.Generator:
    value = 0
    for s in seed:
        value = value * 1_000_003 + int(s)
    return torch.Generator().manual_seed(value % (2**63))


def matching(n: int, k: int, seed: int) -> torch.Tensor:
    """Partner of each row in fixed matching ``k``: ``(n,)`` row indices, ``-1`` for the odd one out."""
    perm = torch.randperm(n, generator=_generator(seed, 7919, k))
    partner = torch.full((n,), -1, dtype=torch.long)
    m = n // 2 * 2
    partner[perm[0:m:2]], partner[perm[1:m:2]] = perm[1:m:2], perm[0:m:2]
    return partner


def epoch_order(n: int, epoch: int, seed: int, n_matchings: int = 0) -> torch.Tensor:
    """The order of the rows in ``epoch``: a permutation of ``range(n)`` (see module docstring)."""
    if n_matchings <= 0:
        return torch.randperm(n, generator=_generator(seed, epoch))
    partner = matching(n, epoch % n_matchings, seed)
    firsts = torch.nonzero((partner > torch.arange(n)), as_tuple=True)[0]  # one row per pair
    g = _generator(seed, epoch, 1)
    firsts = firsts[torch.randperm(len(firsts), generator=g)]
    pairs = torch.stack([firsts, partner[firsts]], 1)
    flip = torch.rand(len(pairs), generator=g) < 0.5
    pairs[flip] = pairs[flip].flip(1)
    return torch.cat([pairs.reshape(-1), torch.nonzero(partner < 0, as_tuple=True)[0]])


@dataclass
class BatchPlan:
    """One process's share of a global batch: dataset rows, their groups (positions in ``rows``: a pair or
    alone) and each row's role for cached [IMG] states (`ALONE`, or the matching it is the second of a pair in)."""

    rows: list[int]
    groups: list[tuple[int, ...]]
    roles: list[int]


def plan_batch(n: int, batch_size: int, step: int, seed: int, concat_fraction: float = 0.0,
               n_matchings: int = 0, rank: int = 0, world: int = 1) -> BatchPlan:
    """Rows, pairs and roles of global batch ``step`` for process ``rank`` of ``world``.

    Processes take consecutive slices of the global batch, so a pair is never split between two of them.
    """
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    epochs, offsets = positions // n, positions % n
    rows = torch.empty_like(positions)
    for e in epochs.unique().tolist():
        sel = epochs == e
        rows[sel] = epoch_order(n, e, seed, n_matchings)[offsets[sel]]
    n_pair_slots = int(round(concat_fraction * batch_size)) // 2 * 2
    paired_limit = n // 2 * 2  # the odd row out sits at the end of an epoch, alone
    groups, roles = [], [ALONE] * batch_size
    j = 0
    while j < batch_size:
        joined = (j + 1 < n_pair_slots and epochs[j] == epochs[j + 1] and offsets[j] % 2 == 0
                  and offsets[j + 1] < paired_limit)
        if joined:
            groups.append((j, j + 1))
            roles[j + 1] = int(epochs[j]) % n_matchings if n_matchings > 0 else RANDOM_PARTNER
            j += 2
        else:
            groups.append((j,))
            j += 1
    if world == 1:
        return BatchPlan(rows.tolist(), groups, roles)
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} does not split over {world} processes")
    share = batch_size // world
    lo, hi = rank * share, (rank + 1) * share
    if any(g[0] < hi <= g[-1] for g in groups) or any(g[0] < lo <= g[-1] for g in groups):
        raise ValueError(f"a pair straddles processes: use an even batch share per process (now {share})")
    local = [tuple(i - lo for i in g) for g in groups if lo <= g[0] < hi]
    return BatchPlan(rows[lo:hi].tolist(), local, roles[lo:hi])


def batch_indices(n: int, batch_size: int, step: int, seed: int, n_matchings: int = 0) -> torch.Tensor:
    """The rows of global batch ``step`` (every row once per epoch)."""
    return torch.tensor(plan_batch(n, batch_size, step, seed, 0.0, n_matchings).rows)
