"""Off-policy evaluation on the small Open Bandit Dataset (Saito et al. 2021's standard experiment).

    python experiments/ope_obd.py --quick        # about a minute on 2 cores (5 resamples)
    python experiments/ope_obd.py                # 30 bootstrap resamples, as published

Two directions per campaign (all, men, women):

* ``bts_from_random``: estimate the Bernoulli-TS policy's CTR from the uniform-random
  log. The evaluation policy's P(item, position) is the Monte Carlo ranking
  distribution of Beta-TS under the published priors (``prior_bts.yaml``, no
  posterior updates, as the dataset's authors did); the ground truth is the mean
  click of the Bernoulli-TS log (on-policy).
* ``random_from_bts``: estimate the random policy's CTR (P(item, position) = 1/A)
  from the Bernoulli-TS log, whose logged propensities are the behaviour's; the
  ground truth is the mean click of the random log.

Each of ``--resamples`` bootstrap logs (rows drawn with replacement, vmapped in one
jit) refits the reward model -- an L2 logistic regression on [item features, user
context one-hot, position one-hot] -- with K-fold cross-fitting (folds fixed per
original row, so a duplicated row never predicts itself), then runs DM, IPW, SNIPW,
DR, SNDR, Switch-DR and DR-os; Switch-DR's tau and DR-os's lambda are chosen by
SLOPE over a geometric grid (``rec_jax.ope.tuning``), never by hand.

Writes ``--out`` (default runs/ope_obd) via a temp folder: ``config.json``,
``metrics.json`` with ``estimate/<direction>/<campaign>/<estimator>`` (full log;
``_ci95``: half-width of the 95% percentile bootstrap interval),
``rel_error/<direction>/<campaign>/<estimator>`` (|estimate - truth| / truth, mean
over resamples; ``_std`` the std as published, ``_ci95`` Student-t),
``ground_truth/<direction>/<campaign>`` and the SLOPE choices under ``tuning/``;
``rel_error.png`` (against the published numbers).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import rec_jax.cli
from rec_jax.eval.confidence import t_ci95
from rec_jax.runs import staged_run_dir

DIRECTIONS = {"bts_from_random": ("random", "bts"), "random_from_bts": ("bts", "random")}
CAMPAIGNS = ("all", "men", "women")
ESTIMATORS = ("dm", "ipw", "snipw", "dr", "sndr", "switch_dr", "dr_os")
# Saito et al. (2021), small OBD, all campaign, Bernoulli TS from random logs: mean, std over 30 resamples.
PUBLISHED = {"dm": (0.157, 0.110), "ipw": (0.311, 0.311), "snipw": (0.312, 0.335), "dr": (0.292, 0.315),
             "sndr": (0.302, 0.328), "switch_dr": (0.258, 0.161), "dr_os": (0.160, 0.110)}


@dataclasses.dataclass(frozen=True)
class Config:
    """OPE on the small Open Bandit Dataset."""

    out: str = "runs/ope_obd"  # run folder (replaced atomically at the end)
    quick: bool = False  # small size: 5 resamples, 10k Monte Carlo rankings
    resamples: int = 30  # bootstrap resamples (the published experiment: 30)
    directions: str = "bts_from_random,random_from_bts"  # comma-separated directions
    campaigns: str = "all,men,women"  # comma-separated campaigns
    folds: int = 3  # cross-fitting folds of the reward model
    l2: float = 1.0  # L2 penalty of the logistic reward model (scikit-learn's C = 1)
    newton_steps: int = 10  # Newton steps of each logistic fit
    mc_samples: int = 100_000  # simulated Beta-TS rankings behind the evaluation policy's probabilities
    data: str = ""  # OBD folder (default: the fetched copy, rec_jax.data.fetch("obd"))
    seed: int = 0  # root seed (bootstrap, folds, Monte Carlo)


def resolve(cfg: Config) -> dict:
    directions = [d.strip() for d in cfg.directions.split(",") if d.strip()]
    campaigns = [c.strip() for c in cfg.campaigns.split(",") if c.strip()]
    for d in directions:
        if d not in DIRECTIONS:
            raise ValueError(f"--directions: unknown {d!r}; expected some of {', '.join(DIRECTIONS)}")
    for c in campaigns:
        if c not in CAMPAIGNS:
            raise ValueError(f"--campaigns: unknown {c!r}; expected some of {', '.join(CAMPAIGNS)}")
    if not directions or not campaigns:
        raise ValueError("--directions/--campaigns: expected at least one each")
    resamples = min(cfg.resamples, 5) if cfg.quick else cfg.resamples
    mc = min(cfg.mc_samples, 10_000) if cfg.quick else cfg.mc_samples
    if resamples < 2:
        raise ValueError(f"--resamples: expected >= 2, got {resamples}")
    if cfg.folds < 2:
        raise ValueError(f"--folds: expected >= 2, got {cfg.folds}")
    if mc < 1000:
        raise ValueError(f"--mc-samples: expected >= 1000, got {mc}")
    return dict(dataclasses.asdict(cfg), directions=directions, campaigns=campaigns, resamples=resamples,
                mc_samples=mc)


def make_estimate(item_x, dist, num_folds: int, l2: float, newton_steps: int):
    """``one(rows) -> {estimator: f32[]}`` for one (resampled) log; rows is a dict of per-round arrays."""
    import jax.numpy as jnp

    from rec_jax import ope

    item_x = jnp.asarray(item_x)
    dist_t = jnp.asarray(dist).T  # [K, A]: pi_e at each position

    def one(rows):
        x = jnp.concatenate([item_x[rows["action"]], rows["row_x"]], axis=1)
        coef = ope.cross_fit_logistic(x, rows["reward"], rows["fold"], num_folds, l2, newton_steps)
        q_hat = ope.predict_cross_fit_additive(coef, item_x, rows["row_x"], rows["fold"])
        d = ope.OPEData(reward=rows["reward"], action=rows["action"], pscore=rows["pscore"],
                        pi_e=dist_t[rows["position"]], q_hat=q_hat)
        return ope.estimate_all(d)

    return one


def load_pair(direction: str, campaign: str, settings: dict, key):
    """(rows dict, item features, pi_e dist f32[A, K], ground truth) of one direction and campaign."""
    import jax

    from rec_jax import ope
    from rec_jax.data import load_bts_prior, load_obd

    folder = settings["data"] or None
    behavior, evaluation = DIRECTIONS[direction]
    log = load_obd(behavior, campaign, folder=folder)
    truth = float(load_obd(evaluation, campaign, folder=folder).reward.astype(np.float64).mean())
    if evaluation == "bts":
        alpha, beta = load_bts_prior(campaign, folder=folder)
        if alpha.shape[0] != log.num_actions:
            raise ValueError(f"prior_bts.yaml: {campaign} has {alpha.shape[0]} items, the log {log.num_actions}")
        dist = np.asarray(jax.jit(ope.bts_action_dist, static_argnums=(3, 4))(
            jax.random.fold_in(key, 1), alpha, beta, log.len_list, settings["mc_samples"]))
    else:
        dist = np.full((log.num_actions, log.len_list), 1.0 / log.num_actions, np.float32)
    pi_e = dist.T[log.position]
    try:  # a clear error on a bad log before anything is estimated
        ope.validate_log(log, pi_e=pi_e)
    except ValueError as err:
        raise ValueError(f"{log.source}: {err}") from None
    n = len(log)
    position_1h = np.eye(log.len_list, dtype=np.float32)[log.position]
    row_x = np.concatenate([log.context, position_1h, np.ones((n, 1), np.float32)], axis=1)
    fold = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), n)) % settings["folds"]
    rows = {"reward": log.reward, "action": log.action, "pscore": log.pscore, "position": log.position,
            "row_x": row_x, "fold": fold.astype(np.int32)}
    return rows, log.item_features, dist, truth


def pad_to(rows: dict, item_x: np.ndarray, dist: np.ndarray, num_actions: int, row_dim: int, item_dim: int):
    """Zero-pad actions and feature widths so every (direction, campaign) shares ONE compilation.

    Padded actions have pi_e = 0 and are never logged, so every estimate is unchanged; zero
    feature columns keep a zero coefficient under the L2 penalty, so the fit is unchanged.
    """
    a, k = dist.shape
    dist = np.concatenate([dist, np.zeros((num_actions - a, k), dist.dtype)], axis=0)
    item_x = np.pad(item_x, ((0, num_actions - a), (0, item_dim - item_x.shape[1])))
    rx = rows["row_x"]
    # keep the intercept column last (fit_logistic leaves the last column unpenalised)
    rx = np.concatenate([rx[:, :-1], np.zeros((len(rx), row_dim - rx.shape[1]), rx.dtype), rx[:, -1:]], axis=1)
    return dict(rows, row_x=rx), item_x, dist


def run_pairs(pairs: list[tuple[str, str]], settings: dict, progress=None) -> dict:
    """{(direction, campaign): {truth, full (estimates on the full log), boot (f64[B] each)}}."""
    import jax
    import jax.numpy as jnp

    from rec_jax import ope

    root = jax.random.key(settings["seed"])
    keys = {p: jax.random.fold_in(jax.random.fold_in(root, list(DIRECTIONS).index(p[0])), CAMPAIGNS.index(p[1]))
            for p in pairs}
    loaded = {p: load_pair(*p, settings, keys[p]) for p in pairs}
    num_actions = max(v[2].shape[0] for v in loaded.values())
    row_dim = max(v[0]["row_x"].shape[1] for v in loaded.values())
    item_dim = max(v[1].shape[1] for v in loaded.values())
    b = settings["resamples"]

    @jax.jit
    def estimate(rows, item_x, dist, idx):
        one = make_estimate(item_x, dist, settings["folds"], settings["l2"], settings["newton_steps"])
        return ope.bootstrap(one, rows, idx)

    results = {}
    for p in pairs:
        t0 = time.perf_counter()
        rows, item_x, dist, truth = loaded[p]
        rows, item_x, dist = pad_to(rows, item_x, dist, num_actions, row_dim, item_dim)
        n = len(rows["reward"])
        # row 0: the full log itself; rows 1..B: bootstrap resamples (one vmapped call)
        idx = jnp.concatenate([jnp.arange(n)[None], ope.resample_indices(jax.random.fold_in(keys[p], 3), n, b)])
        out = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(estimate(rows, item_x, dist, idx)))
        results[p] = {"truth": truth, "full": {k: float(v[0]) for k, v in out.items()},
                      "boot": {k: v[1:] for k, v in out.items()}, "seconds": time.perf_counter() - t0}
        if progress is not None:
            progress.update(1)
    return results


def plot(metrics: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    pairs = [(d, c) for d in settings["directions"] for c in settings["campaigns"]]
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.4), squeeze=False, sharey=False)
    x = np.arange(len(ESTIMATORS))
    for ax, (d, c) in zip(axes[0], pairs):
        m = [metrics[f"rel_error/{d}/{c}/{e}"] for e in ESTIMATORS]
        s = [metrics[f"rel_error/{d}/{c}/{e}_std"] for e in ESTIMATORS]
        ax.bar(x - 0.2, m, 0.4, yerr=s, label="rec_jax", capsize=2)
        if d == "bts_from_random" and c == "all":
            ax.bar(x + 0.2, [PUBLISHED[e][0] for e in ESTIMATORS], 0.4, yerr=[PUBLISHED[e][1] for e in ESTIMATORS],
                   label="published", capsize=2)
            ax.legend(fontsize=7)
        ax.set_xticks(x, ESTIMATORS, rotation=60, fontsize=7)
        ax.set_title(f"{d}\n{c}", fontsize=8)
    axes[0][0].set_ylabel(f"relative error (mean ± std, {settings['resamples']} resamples)")
    save_figure(fig, out / "rel_error.png")


def main(cfg: Config) -> dict:
    """Run the study and write the run folder; returns the metrics dict."""
    from tqdm import tqdm

    from rec_jax.runs import write_config, write_json

    settings = resolve(cfg)
    out = Path(cfg.out)
    metrics: dict[str, float] = {}
    pairs = [(d, c) for d in settings["directions"] for c in settings["campaigns"]]
    with tqdm(total=len(pairs), desc="ope_obd", disable=None) as bar:
        results = run_pairs(pairs, settings, bar)
    for direction, campaign in pairs:
        r = results[(direction, campaign)]
        truth = r["truth"]
        metrics[f"ground_truth/{direction}/{campaign}"] = truth
        line = []
        for e in ESTIMATORS:
            b = r["boot"][e]
            lo, hi = np.percentile(b, [2.5, 97.5])
            rel = np.abs(b - truth) / truth
            k = f"{direction}/{campaign}/{e}"
            metrics[f"estimate/{k}"] = r["full"][e]
            metrics[f"estimate/{k}_ci95"] = float((hi - lo) / 2)
            metrics[f"rel_error/{k}"] = float(rel.mean())
            metrics[f"rel_error/{k}_std"] = float(rel.std(ddof=1))
            metrics[f"rel_error/{k}_ci95"] = float(t_ci95(rel))
            line.append(f"{e} {rel.mean():.3f}±{rel.std(ddof=1):.3f}")
        metrics[f"tuning/{direction}/{campaign}/switch_dr_tau"] = r["full"]["switch_dr_tau"]
        metrics[f"tuning/{direction}/{campaign}/dr_os_lambda"] = r["full"]["dr_os_lambda"]
        metrics[f"tuning/{direction}/{campaign}/switch_dr_tau_median"] = float(np.median(r["boot"]["switch_dr_tau"]))
        metrics[f"tuning/{direction}/{campaign}/dr_os_lambda_median"] = float(np.median(r["boot"]["dr_os_lambda"]))
        tqdm.write(f"{direction:>16s} {campaign:>5s} truth {truth:.5f} | " + "  ".join(line)
                   + f"  ({r['seconds']:.1f}s)")

    with staged_run_dir(out) as tmp:
        write_config(tmp, settings, published_bts_from_random_all=PUBLISHED)
        write_json(tmp / "metrics.json", metrics)
        plot(metrics, settings, tmp)
    return metrics


def cli(argv: list[str] | None = None) -> dict:
    """Run with the options in ``argv``; returns the metrics (errors raise: ``__main__`` makes them one line)."""
    return main(rec_jax.cli.parse(Config, argv, __doc__))


if __name__ == "__main__":
    sys.exit(rec_jax.cli.main(Config, main, doc=__doc__))
