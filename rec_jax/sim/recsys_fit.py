"""The recommender environment's ground truth fitted to ANY log, and the check that it matches it.

:func:`fitted_ground_truth` loads ``data`` (a dataset name such as "ml-100k" / "ml-1m", or a
path in any format ``rec_jax.data`` reads), filters it (``kcore`` or ``sasrec``) and fits the
logistic matrix factorisation of :mod:`rec_jax.sim.ground_truth`, cached under
``<data_home>/sim/`` by a fingerprint of the data (the name, or the file's SHA-256).

:func:`fit_check` says how close the simulator is to the data it was fitted on:

* ``random_ctr`` / ``best_ctr``: the calibrated CTRs (a random item, each user's best item) the
  environment will show, beside the targets :func:`~rec_jax.sim.recsys_calibration.calibrate` aimed at;
* ``popularity_spearman``: Spearman rank correlation, over items, between the item's count in
  the data and its click probability averaged over the simulated users;
* ``top_decile_share_data`` / ``_sim``: the share of interactions (data) and of expected clicks
  under uniform exposure (simulator) that fall on the data's most popular 10% of items.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from rec_jax.sim.ground_truth import GroundTruth


def data_fingerprint(data: str) -> str:
    """A short cache tag for ``data``: the dataset name, or a path's name + SHA-256 prefix."""
    from rec_jax.data.fetch import DATASETS

    path = Path(data)
    if data in DATASETS or data == "synthetic" or not path.is_file():
        return data.replace("/", "_")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{path.name}-{h.hexdigest()[:16]}"


def fitted_ground_truth(data: str = "ml-100k", dim: int = 16, epochs: int = 20, seed: int = 0,
                        cache: bool = True, filter: str = "kcore"):
    """(GroundTruth, SequenceData): the factorisation fitted to ``data`` and the sequences it saw.

    Loads ``rec_jax.data.load(data, filter=filter)`` (5-user/5-item thresholds) and fits
    :func:`~rec_jax.sim.ground_truth.fit_ground_truth` with ``jax.random.key(seed)``; cached to
    ``<data_home>/sim/<fingerprint>_gt_[sasrec_]d{dim}_e{epochs}_s{seed}_u{U}_i{N}_m{M}.npz``.
    User u / item row i are data user u / item id i + 1.
    """
    import jax

    from rec_jax import data as rdata
    from rec_jax.sim.ground_truth import fit_ground_truth, load_ground_truth, save_ground_truth

    seqs = rdata.load(data) if filter == "kcore" else rdata.load(data, filter=filter)
    # no filter word for kcore: the cache names of earlier runs stay valid
    tag = ("" if filter == "kcore" else f"{filter}_") + \
        f"d{dim}_e{epochs}_s{seed}_u{seqs.num_users}_i{seqs.num_items}_m{len(seqs.items)}"
    path = rdata.data_home() / "sim" / f"{data_fingerprint(data)}_gt_{tag}.npz"
    if cache and path.exists():
        gt = load_ground_truth(path)
    else:
        gt = fit_ground_truth(seqs, dim=dim, epochs=epochs, key=jax.random.key(seed))
        if cache:
            save_ground_truth(gt, path)
    return gt, seqs


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), 0-based."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x))
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit_check(gt: GroundTruth, seqs, offset: float, scale: float, max_users: int = 2000) -> dict:
    """How the calibrated simulator compares with the data it was fitted on (see the module doc).

    ``offset``/``scale``: the environment's calibration (``RecsysParams.offset/scale``).
    Users: up to ``max_users`` spread evenly over all of them. Returns plain floats.
    """
    u, v, b = (np.asarray(x, np.float64) for x in (gt.user_factors, gt.item_factors, gt.item_bias))
    rows = np.unique(np.linspace(0, len(u) - 1, min(len(u), max_users)).round().astype(int))
    p = _sigmoid(scale * (u[rows] @ v.T + b) + offset)  # [users, N] click probability of each item
    sim_pop = p.mean(0)
    counts = np.bincount(np.asarray(seqs.items, np.int64), minlength=int(seqs.num_items) + 1)[1:].astype(np.float64)
    rc, rs = _ranks(counts), _ranks(sim_pop)
    spearman = float(np.corrcoef(rc, rs)[0, 1]) if np.ptp(rc) > 0 and np.ptp(rs) > 0 else 0.0
    top = np.argsort(-counts, kind="stable")[: max(1, len(counts) // 10)]
    return {
        "random_ctr": float(p.mean()),
        "best_ctr": float(p.max(1).mean()),
        "popularity_spearman": spearman,
        "top_decile_share_data": float(counts[top].sum() / counts.sum()),
        "top_decile_share_sim": float(sim_pop[top].sum() / sim_pop.sum()),
        "num_users": int(seqs.num_users),
        "num_items": int(seqs.num_items),
        "num_interactions": int(len(seqs.items)),
    }
