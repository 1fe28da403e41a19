"""A/B test of two bandit policies in the simulator, and an A/A check of peeking.

    python experiments/ab_test.py --quick                     # about 1 CPU-minute
    python experiments/ab_test.py --data synthetic --quick    # no MovieLens needed
    python -m experiments.ab_test --control random --treatment linucb --batches 30

Streams (simulated users) are the randomisation units. Each stream runs one
session of ``--session-steps`` single-item recommendations in the online engine
(``rec_jax.online``, per-stream policy state); its outcome is its session CTR.

* A/B: ``--units-per-batch`` streams per arm arrive in each of ``--batches``
  batches; control streams run ``--control``, treatment streams ``--treatment``.
  After every batch we compute the fixed-horizon z-test (CTR difference, 95% CI,
  p-value) and the mSPRT always-valid p-value (``rec_jax.eval.abtest``).
* A/A: the control policy runs on twice as many streams; each of
  ``--aa-replications`` replications randomly splits those same streams into two
  arms of ``--batches`` batches (a permutation: the null holds exactly) and peeks
  after every batch. A procedure's false-positive rate is the fraction of
  replications in which it ever rejects: the fixed-horizon test looks once at the
  end, naive peeking stops at the first z-test with p < alpha, the sequential test
  at the first always-valid p < alpha. The same is repeated on i.i.d. Bernoulli
  clicks at the control CTR (one impression per unit), the textbook setting.
* Power: impressions per arm that the two-proportion z-test needs to detect a
  relative CTR lift ``--mde`` over the control CTR with ``--power``, and the power
  a brute-force simulation of that many Bernoulli impressions achieves.

Writes into ``--out`` (default ``runs/ab_test``) via a temp folder:

* ``metrics.json`` ``alpha``; ``aa_false_positive_rate/{fixed_horizon,sequential,naive_peeking}``
  (with ``_ci95``: binomial 95% half-width over replications), the same under
  ``aa_bernoulli_false_positive_rate/``; ``ab/...`` (CTRs, difference, CI, p-values,
  stopping batch); ``power/...``.
* ``curves.npz`` A/B looks per batch and the A/A cumulative rejection rate per look.
* ``aa_peeking.png`` (rejection rate vs number of looks), ``ab_looks.png``.
* ``config.json`` resolved config + provenance.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
from rec_jax.runs import staged_run_dir
import rec_jax.cli

PROCEDURES = ("fixed_horizon", "sequential", "naive_peeking")


@dataclasses.dataclass(frozen=True)
class Config:
    """A/B and A/A tests on simulated user streams."""

    out: Path = Path("runs/ab_test")  # run folder (replaced atomically at the end)
    quick: bool = False  # small size: fewer streams per batch, shorter sessions, fewer A/A replications
    data: Literal["synthetic", "ml-100k"] = "ml-100k"  # recommender env: ml100k or synthetic_recsys
    control: str = "random"  # policy of the control arm (and of both A/A arms)
    treatment: str = "epsilon_greedy"  # policy of the treatment arm
    batches: int = 20  # looks: the test is computed after every batch
    units_per_batch: int | None = None  # streams per arm per batch (default 100, quick 50)
    session_steps: int | None = None  # steps per stream; its outcome is its CTR (default 20, quick 10)
    aa_replications: int | None = None  # random A/A splits (default 10000, quick 4000)
    alpha: float = 0.05  # significance level of every test
    tau: float = 0.02  # std of the mSPRT's normal mixture over the effect, in CTR units
    mde: float = 0.1  # relative CTR lift the power analysis is for
    power: float = 0.8  # target power of the sample-size calculation
    power_replications: int = 4000  # simulated experiments behind the brute-force power check
    seed: int = 0  # root seed


def resolve(cfg: Config) -> dict:
    """The concrete settings (defaults filled in); ValueError for people on bad input."""
    from rec_jax.policies import POLICY_NAMES

    for name in ("control", "treatment"):
        if getattr(cfg, name) not in POLICY_NAMES:
            raise ValueError(f"--{name}: unknown policy {getattr(cfg, name)!r}; expected one of {', '.join(POLICY_NAMES)}")
    units = cfg.units_per_batch if cfg.units_per_batch is not None else (50 if cfg.quick else 100)
    steps = cfg.session_steps if cfg.session_steps is not None else (10 if cfg.quick else 20)
    reps = cfg.aa_replications if cfg.aa_replications is not None else (4000 if cfg.quick else 10000)
    for name, value in (("batches", cfg.batches), ("units-per-batch", units), ("session-steps", steps),
                        ("aa-replications", reps), ("power-replications", cfg.power_replications)):
        if value < 1:
            raise ValueError(f"--{name}: expected >= 1, got {value}")
    if units < 2:
        raise ValueError(f"--units-per-batch: expected >= 2 (variances need two units), got {units}")
    if not 0.0 < cfg.alpha < 1.0 or not 0.0 < cfg.power < 1.0:
        raise ValueError(f"--alpha/--power: expected in (0, 1), got {cfg.alpha}, {cfg.power}")
    if cfg.tau <= 0 or cfg.mde <= 0:
        raise ValueError(f"--tau/--mde: expected > 0, got {cfg.tau}, {cfg.mde}")
    return dict(dataclasses.asdict(cfg), out=str(cfg.out), units_per_batch=units, session_steps=steps,
                aa_replications=reps)


def session_ctrs(policy_name: str, num_streams: int, steps: int, key, sim, env_params) -> np.ndarray:
    """Each stream's CTR over its session of ``steps`` steps: f64[num_streams]."""
    import jax

    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec

    spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=1)
    policy, policy_params = make_policy(policy_name, spec)
    if hasattr(policy_params, "num_mc_samples"):
        policy_params = policy_params.replace(num_mc_samples=1)  # only the acting draw matters here
    engine = make_run(EngineConfig(num_streams=num_streams), policy, sim, spec=spec)
    engine.validate(policy_params, env_params)
    run = jax.jit(lambda k: engine.run(k, policy_params, env_params, steps)[1]["click"].mean(axis=0))
    return np.asarray(jax.device_get(run(key)), np.float64)


def binomial_ci95(rate: float, n: int) -> float:
    return float(1.959964 * np.sqrt(max(rate * (1.0 - rate), 0.0) / n))


def aa_study(key, settings: dict, values: np.ndarray | None = None, ctr: float | None = None,
             per_batch: int = 0) -> tuple[dict, dict]:
    """FPRs of the three procedures over A/A replications, and per-look rejection curves.

    With ``values``: random splits of those unit outcomes; else i.i.d. Bernoulli(``ctr``)
    impressions, ``per_batch`` per arm per batch.
    """
    import jax
    import jax.numpy as jnp

    from rec_jax.eval import abtest

    reps, batches, alpha, tau2 = settings["aa_replications"], settings["batches"], settings["alpha"], settings["tau"] ** 2
    if values is not None:
        vals = jnp.asarray(values, jnp.float32)
        one = lambda k: abtest.aa_permutation_test(k, vals, batches, alpha, tau2)  # noqa: E731
    else:
        one = lambda k: abtest.aa_bernoulli_test(k, ctr, batches, per_batch, alpha, tau2)  # noqa: E731
    out = jax.device_get(jax.jit(jax.vmap(one))(jax.random.split(key, reps)))
    rates = {p: float(np.mean(out[p])) for p in PROCEDURES}
    # Cumulative rejection rate after each look (a procedure stopped at look m has rejected from m on).
    curves = {}
    for p in ("naive_peeking", "sequential"):
        first = np.asarray(out[f"first_look/{p}"])
        curves[p] = np.array([np.mean((first > 0) & (first <= m)) for m in range(1, batches + 1)])
    return rates, curves


def power_check(key, p_a: float, settings: dict) -> dict:
    """Closed-form impressions per arm for the lift ``mde``, and its power by brute force."""
    import jax

    from rec_jax.eval import abtest

    p_b = p_a * (1.0 + settings["mde"])
    n = int(np.ceil(float(abtest.sample_size_proportions(p_a, p_b, settings["alpha"], settings["power"]))))
    key_a, key_b = jax.random.split(key)
    reps = settings["power_replications"]
    clicks_a = jax.random.binomial(key_a, n, p_a, (reps,))
    clicks_b = jax.random.binomial(key_b, n, p_b, (reps,))
    p_values = np.asarray(abtest.z_test_proportions(clicks_a, n, clicks_b, n, settings["alpha"]).p_value)
    return {
        "power/control_ctr": p_a,
        "power/treatment_ctr": p_b,
        "power/mde_relative": settings["mde"],
        "power/target": settings["power"],
        "power/n_per_arm_closed_form": n,
        "power/closed_form_power": float(abtest.power_proportions(p_a, p_b, n, settings["alpha"])),
        "power/simulated_power": float(np.mean(p_values < settings["alpha"])),
        "power/simulated_power_ci95": binomial_ci95(float(np.mean(p_values < settings["alpha"])), reps),
    }


def plot(curves: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    looks = np.arange(1, settings["batches"] + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for prefix, style in (("aa", "-"), ("aa_bernoulli", "--")):
        for p in ("naive_peeking", "sequential"):
            ax.plot(looks, curves[f"{prefix}/{p}/cum_rejection"], style, label=f"{prefix}: {p}")
    ax.axhline(settings["alpha"], color="gray", ls=":", label="alpha")
    ax.set(xlabel="looks (batches)", ylabel="A/A false-positive rate so far",
           title=f"A/A, {settings['aa_replications']} random splits, peeking after every batch")
    ax.legend(fontsize=7)
    save_figure(fig, out / "aa_peeking.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    diff = curves["ab/diff"]
    ax.plot(looks, diff, color="k", label="CTR difference (treatment - control)")
    ax.fill_between(looks, curves["ab/ci_low"], curves["ab/ci_high"], alpha=0.3, label="fixed 95% CI (invalid if peeked)")
    half = curves["ab/ci_halfwidth_always_valid"]
    ax.fill_between(looks, diff - half, diff + half, alpha=0.15, label="always-valid 95% CI (mSPRT)")
    ax.axhline(0.0, color="gray", ls=":")
    ax.set(xlabel="batch", ylabel="CTR difference", title=f"{settings['treatment']} vs {settings['control']}")
    ax.legend(fontsize=7)
    save_figure(fig, out / "ab_looks.png")


def main(cfg: Config) -> dict:
    """Run the study and write the run folder; returns the metrics dict."""
    settings = resolve(cfg)
    import jax
    import jax.numpy as jnp

    from rec_jax import sim as sims
    from rec_jax.eval import abtest
    from rec_jax.runs import provenance, write_json

    out = Path(cfg.out)
    env_name = "ml100k" if cfg.data == "ml-100k" else "synthetic_recsys"
    sim, env_params = sims.make_env(env_name, slate_size=1)
    batches, units, steps = settings["batches"], settings["units_per_batch"], settings["session_steps"]
    root = jax.random.key(cfg.seed)
    control_key, treatment_key, aa_key, aa_bern_key, power_key = jax.random.split(root, 5)

    t0 = time.perf_counter()
    # Control runs 2 * batches * units streams: the first half are the A/B control arm,
    # all of them are the A/A population.
    control = session_ctrs(cfg.control, 2 * batches * units, steps, control_key, sim, env_params)
    treatment = session_ctrs(cfg.treatment, batches * units, steps, treatment_key, sim, env_params)
    print(f"simulated {3 * batches * units} sessions of {steps} steps ({time.perf_counter() - t0:.1f}s)", flush=True)

    # --- A/B: peek after every batch
    a = abtest.arm_stats(jnp.asarray(control[: batches * units].reshape(batches, units)))
    b = abtest.arm_stats(jnp.asarray(treatment.reshape(batches, units)))
    looks = abtest.sequential_looks(a, b, settings["tau"] ** 2, cfg.alpha)
    cum = lambda s: abtest.ArmStats(*(jnp.cumsum(x) for x in s))  # noqa: E731
    fixed_path = abtest.z_test_means(cum(a), cum(b), cfg.alpha)
    fixed = jax.tree.map(lambda x: float(x[-1]), fixed_path)
    stop = int(abtest.first_rejection(looks.p_always_valid, cfg.alpha))
    metrics = {
        "alpha": cfg.alpha,
        "ab/ctr/control": float(control[: batches * units].mean()),
        "ab/ctr/treatment": float(treatment.mean()),
        "ab/units_per_arm": batches * units,
        "ab/diff": fixed.diff,
        "ab/diff_ci95": fixed.ci_high - fixed.diff,
        "ab/ci_low": fixed.ci_low,
        "ab/ci_high": fixed.ci_high,
        "ab/p_value": fixed.p_value,
        "ab/sequential_p_value": float(looks.p_always_valid[-1]),
        "ab/sequential_stop_batch": stop,  # 0 = never rejected
        "ab/naive_peeking_first_batch": int(abtest.first_rejection(looks.p_fixed, cfg.alpha)),
    }
    print(f"A/B {cfg.treatment} - {cfg.control}: diff {fixed.diff:+.4f} [{fixed.ci_low:+.4f}, {fixed.ci_high:+.4f}]"
          f" p {fixed.p_value:.2g}; mSPRT stops at batch {stop} (0 = never)", flush=True)

    # --- A/A on the simulator's streams, and on i.i.d. Bernoulli clicks at the control CTR
    t0 = time.perf_counter()
    rates, aa_curves = aa_study(aa_key, settings, values=control)
    ctr = float(control.mean())
    bern_rates, bern_curves = aa_study(aa_bern_key, settings, ctr=ctr, per_batch=units * steps)
    reps = settings["aa_replications"]
    for prefix, r in (("aa_false_positive_rate", rates), ("aa_bernoulli_false_positive_rate", bern_rates)):
        for p in PROCEDURES:
            metrics[f"{prefix}/{p}"] = r[p]
            metrics[f"{prefix}/{p}_ci95"] = binomial_ci95(r[p], reps)
        print(f"{prefix}: " + ", ".join(f"{p} {r[p]:.4f}" for p in PROCEDURES), flush=True)
    print(f"A/A studies ({time.perf_counter() - t0:.1f}s)", flush=True)

    # --- power / sample size at the control's per-impression CTR
    metrics.update(power_check(power_key, ctr, settings))
    print(f"power: n/arm {metrics['power/n_per_arm_closed_form']} for +{cfg.mde:.0%} on CTR {ctr:.4f}; simulated "
          f"power {metrics['power/simulated_power']:.3f} (target {cfg.power})", flush=True)

    curves = {
        "ab/diff": np.asarray(looks.diff), "ab/p_fixed": np.asarray(looks.p_fixed),
        "ab/p_always_valid": np.asarray(looks.p_always_valid),
        "ab/ci_halfwidth_always_valid": np.asarray(looks.ci_halfwidth_always_valid),
        "ab/ci_low": np.asarray(fixed_path.ci_low), "ab/ci_high": np.asarray(fixed_path.ci_high),
    }
    for prefix, c in (("aa", aa_curves), ("aa_bernoulli", bern_curves)):
        for p, v in c.items():
            curves[f"{prefix}/{p}/cum_rejection"] = v

    with staged_run_dir(out) as tmp:
        write_json(tmp / "config.json", {"config": settings, "provenance": provenance()})
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "curves.npz", look=np.arange(1, batches + 1), **curves)
        plot(curves, settings, tmp)
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
