"""Metrics of the VIST protocols: CLIP similarity, recall@k, bootstrap intervals, probe accuracy, LPIPS.

Every function takes plain arrays/tensors so it can be checked on hand-made numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def clip_similarity(eval_clip, generated, reference, batch_size: int = 256) -> np.ndarray:
    """Cosine similarity of evaluation-CLIP image features, one per (generated[i], reference[i]) pair.

    ``eval_clip.embed_images`` returns L2-normalised features; we normalise again so that any encoder works
    (the published script divides by the norms too).
    """
    if len(generated) != len(reference):
        raise ValueError(f"{len(generated)} generated images but {len(reference)} references")
    if len(generated) == 0:
        return np.zeros(0, dtype=np.float64)
    scores = []
    for i in range(0, len(generated), batch_size):
        a = _as_numpy(eval_clip.embed_images(generated[i : i + batch_size]))
        b = _as_numpy(eval_clip.embed_images(reference[i : i + batch_size]))
        scores.append(cosine_rows(a, b))
    return np.concatenate(scores)


def cosine_rows(a, b) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a, b = np.asarray(_as_numpy(a), np.float64), np.asarray(_as_numpy(b), np.float64)
    a = a / np.clip(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12, None)
    return (a * b).sum(-1)


def recall_at_k(scores, targets, ks=(1, 5, 10), exclude=None) -> dict[int, float]:
    """Share of queries whose target index ranks in the top k.

    scores: (Q, N) query-by-candidate similarities; targets: (Q,) candidate index of each query's answer;
    exclude: optional list (one per query) of candidate indices removed from the ranking (the published
    VIST evaluation removes the story's own earlier images). Ties count against the target (pessimistic),
    so a constant scorer gets recall 0, not 1.
    """
    ranks = target_ranks(scores, targets, exclude)
    return {int(k): float(np.mean(ranks < k)) if len(ranks) else float("nan") for k in ks}


def target_ranks(scores, targets, exclude=None, equivalent=None) -> np.ndarray:
    """0-based rank of each query's target among the candidates not excluded (ties ranked ahead of it).

    equivalent: optional list (one per query) of other candidate indices that count as the answer too (an
    image identical to the target); the rank is then that of the best-scoring correct candidate among the
    wrong ones.
    """
    scores = np.array(_as_numpy(scores), dtype=np.float64)  # copy: we write -inf into it
    targets = np.asarray(targets, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(targets):
        raise ValueError(f"scores must be (Q, N) with Q = len(targets); got {scores.shape} and {len(targets)} targets")
    if exclude is not None:
        for q, idx in enumerate(exclude):
            idx = [i for i in idx if i != targets[q]]  # never exclude the answer itself
            scores[q, idx] = -np.inf
    if equivalent is None:
        target_scores = scores[np.arange(len(targets)), targets]
        return (scores >= target_scores[:, None]).sum(1) - 1
    ranks = np.zeros(len(targets), dtype=np.int64)
    for q, t in enumerate(targets):
        correct = np.zeros(scores.shape[1], dtype=bool)
        correct[[t, *equivalent[q]]] = True
        correct &= np.isfinite(scores[q]) | (np.arange(scores.shape[1]) == t)
        best = scores[q, correct].max()
        ranks[q] = int(((scores[q] >= best) & ~correct).sum())
    return ranks


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_ci(values, n: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (``n`` resamples, seeded)."""
    values = np.asarray(_as_numpy(values), dtype=np.float64).ravel()
    if len(values) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(values.mean()), float(low), float(high), len(values))


def paired_bootstrap_ci(a, b, n: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Bootstrap interval of mean(a - b) over paired samples (same stories, same seeds)."""
    a, b = np.asarray(_as_numpy(a), np.float64), np.asarray(_as_numpy(b), np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same shape; got {a.shape} and {b.shape}")
    return bootstrap_ci(a - b, n, seed, level)


def ordering_holds(a: Interval, b: Interval) -> bool:
    """True when ``a`` is above ``b`` with separated 95% intervals: only then do we claim a > b."""
    return a.low > b.high


def attribute_scores(images, shapes) -> dict[str, np.ndarray]:
    """Per-image exact-attribute hits of the world's probe: dict attribute -> (N,) 0/1, plus ``all``.

    An image the probe cannot read (None) scores 0 on every attribute.
    """
    from gill_lite.world.attributes import ATTRIBUTES
    from gill_lite.world.probe import probe_image

    hits = {a: np.zeros(len(shapes)) for a in (*ATTRIBUTES, "all")}
    for i, (image, shape) in enumerate(zip(images, shapes)):
        found = probe_image(np.asarray(image))
        if found is None:
            continue
        ok = [getattr(found, a) == getattr(shape, a) for a in ATTRIBUTES]
        for a, o in zip(ATTRIBUTES, ok):
            hits[a][i] = float(o)
        hits["all"][i] = float(all(ok))
    return hits


def lpips_distance(generated, reference, size: int = 256, net: str = "alex") -> np.ndarray:
    """LPIPS (AlexNet, 256x256 as the paper) per pair. ``paper`` only: the lpips package fetches its weights."""
    try:
        import lpips
    except ImportError as e:  # the optional [paper] extra
        raise ImportError("LPIPS needs the `lpips` package: pip install 'gill-lite[paper]'") from e
    import torch
    import torch.nn.functional as F

    metric = lpips.LPIPS(net=net, verbose=False).eval()

    def prep(images):
        x = torch.as_tensor(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).float() / 127.5 - 1
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    with torch.no_grad():
        return metric(prep(generated), prep(reference)).flatten().numpy().astype(np.float64)


def _as_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)
