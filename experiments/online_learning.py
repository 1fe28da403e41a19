"""Frozen vs online-updated SASRec in the ML-100K simulator, with and without drift.

    python experiments/online_learning.py --quick
    python experiments/online_learning.py --model-dir runs/train

The policy is epsilon-greedy over the model's scores (rec_jax.online.large_model,
"epsilon_greedy"), one shared model for all simulated users. Every
``--update-every`` steps the model takes Optax steps on the replay window of the
last ``update_every`` x S logged events (rec_jax.online.model_learning), all of it
one jit per (scenario, variant), vmapped over seeds:

* ``frozen``: the offline model, never updated;
* ``online_full_ctr`` / ``online_adapter_ctr``: click (BCE) objective, all weights /
  only a residual adapter and the scoring head;
* ``online_full_reinforce``: REINFORCE with the capped importance weight and the
  top-K correction (Chen et al. 2019), logged propensities as beta.

Scenarios: ``stationary``; ``abrupt_drift``: at step T/2 every user's taste vector
is negated (u -> -u, ``shift_mode="negate"``): what they liked they now avoid, a
world change the offline model cannot know about.

The script also measures the bias/variance trade-off of the REINFORCE estimator
(uncapped K = 1 is unbiased; the cap and the top-K factor are biased on purpose)
on a small softmax problem with a known gradient: keys ``reinforce_tradeoff/...``.

Writes ``--out`` (default ``runs/online_learning``): ``metrics.json`` with
``cumulative_reward/<scenario>/<variant>`` (+ ``_ci95``, 95% t over seeds) and
``reward_after_drift/<scenario>/<variant>`` (steps >= T/2), ``config.json``,
``curves.npz``, ``reward_<scenario>.png``; TensorBoard events in ``tb/``:
``<scenario>/<variant>/cum_reward``, ``.../reward`` (per slate) and ``.../loss``
(the window loss; not for ``frozen``), means over seeds against t.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from rec_jax.eval.confidence import t_ci95
from rec_jax.runs import staged_run_dir
from rec_jax.tensorboard import EventLog, curve_to_events
import rec_jax.cli

SCENARIOS = ("stationary", "abrupt_drift")
# variant -> (objective, trainable)
VARIANTS = {
    "frozen": ("none", "full"),
    "online_full_ctr": ("ctr", "full"),
    "online_adapter_ctr": ("ctr", "adapter"),
    "online_full_reinforce": ("reinforce", "full"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Frozen vs online-updated Transformer under drift."""

    out: Path = Path("runs/online_learning")  # run folder (replaced atomically at the end)
    model_dir: Path | None = None  # a train_sequential.py run folder; default: train one first
    data: str = "ml-100k"  # the log the simulator is fitted to and the model trained on: a dataset name or a file
    train_epochs: int | None = None  # epochs for the model trained without --model-dir (default 30, quick 4)
    seeds: int = 5  # seeds (95% CI over them), vmapped in one jit
    quick: bool = False  # small size
    steps: int | None = None  # horizon T (default 1000, quick 300); drift at T/2
    streams: int | None = None  # S simulated users per seed (default 64, quick 32)
    update_every: int | None = None  # M steps per replay window / update (default 50, quick 25)
    grad_steps: int = 1  # Optax steps per window
    learning_rate: float = 1e-3  # Adam step size of the online updates
    head_scale: float = 0.1  # initial head w = head_scale * 1 (same ranking as the model; calibrated logits)
    head_bias: float = -2.0  # initial head bias, about logit of a top slot's CTR
    epsilon: float = 0.05  # exploration of the acting policy (gives REINFORCE its off-policy data)
    slate_size: int = 5  # K items per slate
    cap: float = 10.0  # REINFORCE importance-weight cap
    variants: str = ",".join(VARIANTS)  # comma-separated variants to run ("frozen", the baseline, always runs)
    seed: int = 0  # root seed


def resolve(cfg: Config) -> dict:
    if cfg.seeds < 2:
        raise ValueError(f"--seeds: expected >= 2 (a CI needs two), got {cfg.seeds}")
    steps = cfg.steps if cfg.steps is not None else (300 if cfg.quick else 1000)
    streams = cfg.streams if cfg.streams is not None else (32 if cfg.quick else 64)
    every = cfg.update_every if cfg.update_every is not None else (25 if cfg.quick else 50)
    epochs = cfg.train_epochs if cfg.train_epochs is not None else (4 if cfg.quick else 30)
    if min(steps, streams, every, epochs, cfg.grad_steps) < 1:
        raise ValueError("--steps/--streams/--update-every/--train-epochs/--grad-steps: expected >= 1")
    if steps % every or steps // every < 2:
        raise ValueError(f"--steps={steps}: expected a multiple of --update-every={every}, at least twice it")
    variants = [v.strip() for v in cfg.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            raise ValueError(f"--variants: unknown variant {v!r}; expected some of {', '.join(VARIANTS)}")
    variants = [v for v in VARIANTS if v == "frozen" or v in variants]  # the baseline first, always
    return dict(dataclasses.asdict(cfg), out=str(cfg.out), model_dir=cfg.model_dir and str(cfg.model_dir),
                steps=steps, streams=streams, update_every=every, train_epochs=epochs, variants=variants)


def run_variant(variant, scenario, model, encoder_params, sim, env_params, settings):
    """Per-seed reward curves f32[seeds, T] (streams averaged) and losses f32[seeds, T]."""
    import jax
    import jax.numpy as jnp

    from rec_jax.online import EngineConfig, make_run
    from rec_jax.online.large_model import model_policy
    from rec_jax.online.model_learning import OnlineLearningConfig, make_online_learning

    k, steps = settings["slate_size"], settings["steps"]
    policy, params, spec, _ = model_policy("epsilon_greedy", model, encoder_params, sim.num_items, k,
                                           jax.random.key(1), {"epsilon": settings["epsilon"]},
                                           head_scale=settings["head_scale"], head_bias=settings["head_bias"])
    engine = make_run(EngineConfig(num_streams=settings["streams"], slate_size=k, mode="shared", log_tuples=True,
                                   log_context="history", log_marginal=False), policy, sim, spec=spec)
    if scenario == "abrupt_drift":
        env_params = env_params.replace(shift_steps=jnp.array([steps // 2], jnp.int32))
    engine.validate(params, env_params)
    objective, trainable = VARIANTS[variant]
    ol = OnlineLearningConfig(objective=objective, trainable=trainable, update_every=settings["update_every"],
                              grad_steps=settings["grad_steps"], learning_rate=settings["learning_rate"],
                              cap=settings["cap"])
    init, run_online = make_online_learning(engine, model, ol)
    chunks = steps // settings["update_every"]

    def run_seed(key):
        rs = engine.init_run(key, params, env_params)
        _, _, m = run_online(rs, init(rs), chunks)
        return m["reward"].mean(axis=1), m["loss"]

    root = jax.random.key(settings["seed"])
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(np.arange(settings["seeds"]))
    reward, loss = jax.device_get(jax.jit(jax.vmap(run_seed))(keys))
    return reward, loss


def reinforce_tradeoff(num_items: int = 8, num_logs: int = 2000, batch: int = 64, seed: int = 0) -> dict:
    """Bias and spread of the REINFORCE gradient estimate (one batch of ``batch`` logged
    events from a uniform logger) against the exact grad E_pi[r] of a softmax policy,
    for: uncapped K = 1, capped (cap 2), uncapped with top-K = 3 factor."""
    import jax
    import jax.numpy as jnp

    from rec_jax.online.objectives import reinforce_loss

    rng = np.random.default_rng(seed)
    theta = jnp.asarray(rng.normal(size=num_items) * 1.5, jnp.float32)
    r_mean = jnp.asarray(rng.uniform(0.05, 0.6, num_items), jnp.float32)
    exact = jax.grad(lambda th: jnp.sum(jax.nn.softmax(th) * r_mean))(theta)
    beta = jnp.full((batch,), 1.0 / num_items)

    def estimate(key, cap, k):
        ka, kr = jax.random.split(key)
        a = jax.random.randint(ka, (batch,), 0, num_items)
        r = (jax.random.uniform(kr, (batch,)) < r_mean[a]).astype(jnp.float32)
        return jax.grad(lambda th: -reinforce_loss(jnp.broadcast_to(th, (batch, num_items)), a, r, beta,
                                                   cap=cap, slate_size=k))(theta)

    keys = jax.random.split(jax.random.key(seed), num_logs)
    out = {}
    for name, cap, k in (("uncapped_k1", jnp.inf, 1), ("cap2_k1", 2.0, 1), ("uncapped_topk3", jnp.inf, 3)):
        g = np.asarray(jax.jit(jax.vmap(lambda kk: estimate(kk, cap, k)))(keys), np.float64)
        bias = np.linalg.norm(g.mean(0) - np.asarray(exact))
        out[f"reinforce_tradeoff/{name}/bias_norm"] = float(bias)
        out[f"reinforce_tradeoff/{name}/std_norm"] = float(np.sqrt(np.sum(g.var(0))))
    out["reinforce_tradeoff/exact_grad_norm"] = float(np.linalg.norm(np.asarray(exact)))
    return out


def plot(curves: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import plot_mean_ci, save_figure

    t = np.arange(1, settings["steps"] + 1)
    w = settings["update_every"]
    for scenario in SCENARIOS:
        fig, ax = plt.subplots(figsize=(6, 4))
        for v in settings["variants"]:
            y = curves[f"{scenario}/{v}/reward"].astype(np.float64)
            y = np.stack([np.convolve(row, np.ones(w) / w, mode="same") for row in y])  # moving average
            plot_mean_ci(ax, t, y, label=v)
        if scenario == "abrupt_drift":
            ax.axvline(settings["steps"] // 2, color="k", ls=":", lw=1)
        ax.set_xlabel("t (slates per user)")
        ax.set_ylabel(f"reward per slate (moving average of {w})")
        ax.set_title(f"{scenario}: frozen vs online SASRec ({settings['seeds']} seeds, 95% CI)", fontsize=9)
        ax.legend(fontsize=7)
        save_figure(fig, out / f"reward_{scenario}.png")


def main(cfg: Config) -> dict:
    settings = resolve(cfg)
    out = Path(cfg.out)
    from rec_jax.online.large_model import ml100k_setup
    from rec_jax.runs import provenance, write_json

    model, encoder_params, train_config, sim, env_params = ml100k_setup(
        cfg.model_dir, out.parent, settings["train_epochs"], settings["slate_size"], shift_mode="negate", data=cfg.data)
    curves, metrics = {}, {}
    half = settings["steps"] // 2
    for scenario in SCENARIOS:
        for v in settings["variants"]:
            t0 = time.perf_counter()
            reward, loss = run_variant(v, scenario, model, encoder_params, sim, env_params, settings)
            total = reward.astype(np.float64).sum(1)
            after = reward[:, half:].astype(np.float64).sum(1)
            for name, per_seed in (("cumulative_reward", total), ("reward_after_drift", after)):
                metrics[f"{name}/{scenario}/{v}"] = float(per_seed.mean())
                metrics[f"{name}/{scenario}/{v}_ci95"] = float(t_ci95(per_seed))
            curves[f"{scenario}/{v}/reward"] = reward
            curves[f"{scenario}/{v}/loss"] = loss
            print(f"{scenario:>14s} {v:>24s} reward {total.mean():8.2f} ± {t_ci95(total):5.2f}"
                  f"  after T/2 {after.mean():8.2f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
        frozen = curves[f"{scenario}/frozen/reward"][:, half:].astype(np.float64).sum(1)
        for v in settings["variants"]:
            if v != "frozen":
                diff = curves[f"{scenario}/{v}/reward"][:, half:].astype(np.float64).sum(1) - frozen
                metrics[f"after_drift_vs_frozen/{scenario}/{v}"] = float(diff.mean())
                metrics[f"after_drift_vs_frozen/{scenario}/{v}_ci95"] = float(t_ci95(diff))
    metrics.update(reinforce_tradeoff())

    with staged_run_dir(out) as tmp:
        write_json(tmp / "config.json", {"config": settings, "model": train_config, "provenance": provenance()})
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "curves.npz", **curves)
        plot(curves, settings, tmp)
        with EventLog(tmp) as events:
            for scenario in SCENARIOS:
                for v in settings["variants"]:
                    reward = curves[f"{scenario}/{v}/reward"].astype(np.float64)
                    prefix = f"{scenario}/{v}"
                    curve_to_events(events, prefix, {"cum_reward": np.cumsum(reward, axis=1).mean(axis=0)})
                    per_step = {"reward": reward.mean(axis=0)}
                    if v != "frozen":
                        per_step["loss"] = curves[f"{prefix}/loss"].mean(axis=0)
                    curve_to_events(events, prefix, per_step, reduce="mean")  # noisy: bin means
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
