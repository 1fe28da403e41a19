"""Off-policy estimators on simulator logs, where the true value is known exactly.

    python experiments/ope_sim.py --quick        # about a minute on 2 cores
    python experiments/ope_sim.py                # more log sizes and replicates

The simulator is rec_jax's logistic contextual bandit (``rec_jax.sim`` "linear",
``link="logistic"``, per-round item features): each round shows ``num_items`` items
with features x_{i,a}, and a click has probability mu_i(a) = sigmoid(<x_{i,a}, theta> + bias),
known exactly. The behaviour policy is a softmax over a noisy copy of theta; the
candidate evaluation policies are softmaxes over other noisy copies (policy 0 is the
one whose value the bias/variance study estimates). All propensities are exact.

For each log size n, ``--replicates`` independent logs (vmapped, one jit per size)
are evaluated with DM, IPW, SNIPW, DR, SNDR, Switch-DR and DR-os (``rec_jax.ope``;
reward model: cross-fitted logistic regression on x_{i,a}; Switch-DR / DR-os tuned by
SLOPE). The error of an estimate is measured against the log's exact value
V(x_1..n) = mean_i sum_a pi_e(a | x_i) mu_i(a), the target an unbiased estimator hits
in expectation given the contexts; policy selection is judged against the exact
population value (the same average over ``--pop-rounds`` fresh contexts).

Writes ``--out`` (default runs/ope_sim) via a temp folder: ``config.json``,
``metrics.json`` with ``bias/n<n>/<est>`` (+``_ci95``, Student-t over replicates),
``variance/n<n>/<est>``, ``rmse/n<n>/<est>``, ``pick_best/n<n>/<est>`` (fraction of
logs where the estimator's argmax is the truly best candidate, +``_ci95``),
``pick_regret/n<n>/<est>`` and ``true_value/policy<j>``; ``ope_sim.png``.
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

ESTIMATORS = ("dm", "ipw", "snipw", "dr", "sndr", "switch_dr", "dr_os")


@dataclasses.dataclass(frozen=True)
class Config:
    """OPE on simulator logs with exact true values."""

    out: str = "runs/ope_sim"  # run folder (replaced atomically at the end)
    quick: bool = False  # small size: sizes 250,1000,4000 and 100 replicates
    sizes: str = "250,1000,4000,16000"  # comma-separated log sizes n
    replicates: int = 200  # independent logs per size
    num_items: int = 10  # items shown per round (actions)
    dim: int = 5  # item feature width
    bias: float = -1.5  # logit intercept of the click model (base CTR about 0.2)
    feature_noise: float = 1.0  # per-round perturbation of item features (the context)
    behavior_temperature: float = 1.0  # softmax temperature of the logging policy
    behavior_noise: float = 1.0  # std of the noise on theta seen by the logging policy
    candidates: int = 5  # candidate evaluation policies (policy 0 is the bias/variance target)
    candidate_temperature: float = 0.3  # softmax temperature of the candidates
    candidate_noise: float = 0.7  # std of the noise on theta seen by each candidate
    folds: int = 3  # cross-fitting folds of the reward model
    pop_rounds: int = 65_536  # fresh contexts behind each candidate's exact population value
    seed: int = 0  # root seed


def resolve(cfg: Config) -> dict:
    sizes = [int(s) for s in cfg.sizes.split(",") if s.strip()]
    if cfg.quick:
        sizes, replicates = [250, 1000, 4000], min(cfg.replicates, 100)
    else:
        replicates = cfg.replicates
    if not sizes or min(sizes) < 2 * cfg.folds:
        raise ValueError(f"--sizes: expected log sizes >= {2 * cfg.folds}, got {cfg.sizes!r}")
    if replicates < 2:
        raise ValueError(f"--replicates: expected >= 2, got {replicates}")
    if cfg.candidates < 2:
        raise ValueError(f"--candidates: expected >= 2, got {cfg.candidates}")
    for name in ("behavior_temperature", "candidate_temperature"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')}: expected > 0, got {getattr(cfg, name)}")
    return dict(dataclasses.asdict(cfg), sizes=sizes, replicates=replicates)


def make_world(settings: dict):
    """(simulator, env params, theta f32[D], behaviour theta f32[D], candidate thetas f32[M, D])."""
    import jax
    import jax.numpy as jnp

    from rec_jax import sim

    env, params = sim.make_env("linear", num_items=settings["num_items"], dim=settings["dim"], link="logistic",
                               seed=settings["seed"], perturb_features=True)
    k_theta, k_b, k_c = jax.random.split(jax.random.key(settings["seed"] + 1), 3)
    d = settings["dim"]
    theta = 2.0 * jax.random.normal(k_theta, (d,))  # <x, theta> ~ N(0, 4) for unit-norm x: CTRs from ~0 to ~0.9
    params = params.replace(theta_mean=theta, theta_std=jnp.float32(0.0), bias=jnp.float32(settings["bias"]),
                            feature_noise=jnp.float32(settings["feature_noise"]))
    sim.validate_params(params)
    theta_b = theta + settings["behavior_noise"] * jax.random.normal(k_b, (d,))
    theta_c = theta[None] + settings["candidate_noise"] * jax.random.normal(k_c, (settings["candidates"], d))
    return env, params, theta, theta_b, theta_c


def simulate_logs(env, params, theta, theta_b, key, settings: dict, n: int, r: int) -> dict:
    """``r`` logs of ``n`` rounds from the simulator: x f32[r, n, A, D], mu, pi_b f32[r, n, A], action, reward.

    Runs op by op (no jit): the simulator's vmapped reset/step take longer to compile
    than to run at these sizes.
    """
    import jax
    import jax.numpy as jnp

    from rec_jax.sim.linear import expected_rewards

    k_ctx, k_act, k_rew = jax.random.split(key, 3)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_ctx, r * n), params)
    x = obs.features  # [r n, A, D]
    mu = jax.vmap(lambda f: expected_rewards(f, theta, params.bias, "logistic"))(x)  # exact click probabilities
    pi_b = jax.nn.softmax(x @ theta_b / settings["behavior_temperature"], axis=-1)
    action = jax.random.categorical(k_act, jnp.log(pi_b))
    _, _, out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(k_rew, r * n), state, action, params)
    logs = {"x": x, "mu": mu, "pi_b": pi_b, "action": action.astype(jnp.int32), "reward": out.reward}
    return {k: v.reshape((r, n) + v.shape[1:]) for k, v in logs.items()}


def make_evaluate(theta_c, settings: dict):
    """``evaluate(key, log) -> dict`` for one log: estimates f32[M, E] of every candidate, exact values f32[M]."""
    import jax
    import jax.numpy as jnp

    from rec_jax import ope

    def evaluate(key, log):
        x, action, reward, pi_b = log["x"], log["action"], log["reward"], log["pi_b"]
        n = reward.shape[0]
        pscore = jnp.take_along_axis(pi_b, action[:, None], 1)[:, 0]
        x1 = ope.with_intercept(x)  # [n, A, D + 1]
        fold = jax.random.permutation(key, n) % settings["folds"]
        x_logged = jnp.take_along_axis(x1, action[:, None, None], 1)[:, 0]
        coef = ope.cross_fit_logistic(x_logged, reward, fold, settings["folds"], 1.0, 10)
        q_hat = ope.predict_cross_fit(coef, x1, fold)
        pi_e = jax.nn.softmax(jnp.einsum("nad,md->mna", x, theta_c) / settings["candidate_temperature"], axis=-1)

        def estimate(p):
            est = ope.estimate_all(ope.OPEData(reward=reward, action=action, pscore=pscore, pi_e=p, q_hat=q_hat))
            return jnp.stack([est[e] for e in ESTIMATORS])

        return {"est": jax.vmap(estimate)(pi_e), "value": jnp.mean(jnp.sum(pi_e * log["mu"][None], -1), -1),
                "behavior_value": jnp.mean(jnp.sum(pi_b * log["mu"], -1))}

    return evaluate


def population_values(env, params, theta, theta_c, settings: dict, key) -> np.ndarray:
    """f64[M] exact expected reward of each candidate, averaged over ``pop_rounds`` fresh contexts."""
    import jax
    import jax.numpy as jnp

    from rec_jax.sim.linear import expected_rewards

    def chunk(k):
        obs, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k, 4096), params)
        mu = jax.vmap(lambda f: expected_rewards(f, theta, params.bias, "logistic"))(obs.features)
        pi_e = jax.nn.softmax(jnp.einsum("nad,md->mna", obs.features, theta_c) / settings["candidate_temperature"], -1)
        return jnp.mean(jnp.sum(pi_e * mu[None], -1), -1)

    num = max(1, settings["pop_rounds"] // 4096)
    # op by op, like simulate_logs: compiling the simulator costs more than running it
    vals = [np.asarray(chunk(k), np.float64) for k in jax.random.split(key, num)]
    return np.mean(vals, axis=0)


def plot(metrics: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    sizes = settings["sizes"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for e in ESTIMATORS:
        for ax, what in zip(axes[:3], ("bias", "variance", "rmse")):
            y = [metrics[f"{what}/n{n}/{e}"] for n in sizes]
            if what == "bias":
                ax.errorbar(sizes, y, yerr=[metrics[f"bias/n{n}/{e}_ci95"] for n in sizes], label=e, capsize=2)
            else:
                ax.plot(sizes, y, marker="o", label=e)
        axes[3].plot(sizes, [metrics[f"pick_best/n{n}/{e}"] for n in sizes], marker="o", label=e)
    for ax, title in zip(axes, ("bias (95% CI)", "variance", "RMSE", "P(picks the best candidate)")):
        ax.set_xscale("log")
        ax.set_xlabel("log size n")
        ax.set_title(title)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    axes[0].axhline(0.0, color="k", lw=0.5)
    axes[3].legend(fontsize=7)
    save_figure(fig, out / "ope_sim.png")


def main(cfg: Config) -> dict:
    """Run the study and write the run folder; returns the metrics dict."""
    import jax
    from tqdm import tqdm

    from rec_jax.runs import write_config, write_json

    settings = resolve(cfg)
    out = Path(cfg.out)
    env, params, theta, theta_b, theta_c = make_world(settings)
    root = jax.random.key(settings["seed"])
    v_pop = population_values(env, params, theta, theta_c, settings, jax.random.fold_in(root, 10**6))
    best = int(np.argmax(v_pop))
    metrics: dict[str, float] = {f"true_value/policy{j}": float(v) for j, v in enumerate(v_pop)}
    r = settings["replicates"]
    evaluate = jax.jit(jax.vmap(make_evaluate(theta_c, settings)))  # one trace per (chunk, n) shape
    for n in tqdm(settings["sizes"], desc="ope_sim", disable=None):
        t0 = time.perf_counter()
        key = jax.random.fold_in(root, n)
        parts = []
        # chunks bound the memory; a divisor of r keeps one shape, hence one compilation, per n
        limit = max(1, 2_000_000 // (n * settings["num_items"] * settings["dim"]))
        chunk = max(c for c in range(1, r + 1) if r % c == 0 and c <= limit)
        for start in range(0, r, chunk):
            m = min(chunk, r - start)
            logs = simulate_logs(env, params, theta, theta_b, jax.random.fold_in(key, start), settings, n, m)
            fold_keys = jax.random.split(jax.random.fold_in(key, 10**6 + start), m)
            parts.append(jax.device_get(evaluate(fold_keys, logs)))
        res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        est = np.asarray(res["est"], np.float64)  # [R, M, E]
        value = np.asarray(res["value"], np.float64)  # [R, M]
        err = est[:, 0, :] - value[:, :1]  # policy 0 against its exact value on each log
        picks = np.argmax(est, axis=1)  # [R, E]
        metrics[f"behavior_value/n{n}"] = float(np.mean(res["behavior_value"]))
        line = []
        for j, e in enumerate(ESTIMATORS):
            k = f"n{n}/{e}"
            metrics[f"bias/{k}"] = float(err[:, j].mean())
            metrics[f"bias/{k}_ci95"] = float(t_ci95(err[:, j]))
            metrics[f"variance/{k}"] = float(err[:, j].var(ddof=1))
            metrics[f"rmse/{k}"] = float(np.sqrt(np.mean(err[:, j] ** 2)))
            hit = (picks[:, j] == best).astype(np.float64)
            metrics[f"pick_best/{k}"] = float(hit.mean())
            metrics[f"pick_best/{k}_ci95"] = float(t_ci95(hit))
            metrics[f"pick_regret/{k}"] = float(np.mean(v_pop[best] - v_pop[picks[:, j]]))
            line.append(f"{e} b{err[:, j].mean():+.4f} sd{err[:, j].std():.4f} pick{hit.mean():.2f}")
        tqdm.write(f"n={n:6d} " + "  ".join(line) + f"  ({time.perf_counter() - t0:.1f}s)")

    with staged_run_dir(out) as tmp:
        write_config(tmp, settings, best_policy=best)
        write_json(tmp / "metrics.json", metrics)
        plot(metrics, settings, tmp)
    return metrics


def cli(argv: list[str] | None = None) -> dict:
    """Run with the options in ``argv``; returns the metrics (errors raise: ``__main__`` makes them one line)."""
    return main(rec_jax.cli.parse(Config, argv, __doc__))


if __name__ == "__main__":
    sys.exit(rec_jax.cli.main(Config, main, doc=__doc__))
