"""The pieces the large-model E&E studies share: a trained SASRec and the simulator fitted to
the same data (ML-100K by default, or any dataset / log file: ``data``) whose users start from
their real histories, on the same item ids.

    model, encoder_params = trained_model(model_dir, work_dir, epochs)
    sim, env_params = model_env(seqs, gt, max_len=model config's L, slate_size=K)
    policy, params, spec = model_policy("neural_linear_ts", model, encoder_params, sim, K, key)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import jax

from rec_jax.policies import make_policy
from rec_jax.policies.model_backed import ModelBackedParams, init_view, make_model_backed, model_spec

# Named exploration variants on top of the model: (registry policy, param overrides, engine mode).
# "exploit" shows the model's own top-K: the offline model, purely exploited.
# The linear heads use a prior worth ~100 observations around the model's ranking
# (reg = 100) and small posterior noise: with reg = 1 / scale = 0.5 the initial
# exploration noise (~0.5 |x|) swamps the model's score gaps and the head starts
# out near-random (measured: below exploit; see the README's large-model section).
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "exploit": ("score_epsilon_greedy", {"epsilon": 0.0}, "shared"),
    "epsilon_greedy": ("score_epsilon_greedy", {"epsilon": 0.05}, "shared"),
    "softmax": ("score_softmax", {"temperature": 0.5, "num_mc_samples": 1}, "shared"),
    "neural_linear_ts": ("neural_linear_ts", {"num_mc_samples": 1, "reg": 100.0, "scale": 0.1}, "shared"),
    "neural_linear_ucb": ("neural_linear_ucb", {"reg": 100.0, "alpha": 0.1}, "shared"),
    "neural_linear_ts_per_user": ("neural_linear_ts", {"num_mc_samples": 1, "reg": 100.0, "scale": 0.1}, "per_stream"),
    "bootstrapped_heads": ("bootstrapped_heads", {"reg": 100.0}, "shared"),
}


def trained_model(model_dir: str | Path | None, work_dir: Path, num_items: int, epochs: int,
                  log: Callable[[str], None] = print, data: str = "ml-100k") -> tuple[Any, Any, dict]:
    """(SequentialModel, best params, TrainConfig as dict): loaded from ``model_dir``
    (a ``train_sequential.py`` run) or, without one, trained now with the
    ``ml100k-sasrec`` preset on ``data`` for at most ``epochs`` epochs into ``work_dir``
    (resumed if a previous attempt was killed; reused if complete)."""
    from rec_jax.train.config import get_preset
    from rec_jax.train.load import load_trained
    from rec_jax.train.run import train_and_evaluate

    if model_dir is None:
        model_dir = Path(work_dir)
        if not (model_dir / "metrics.json").exists():
            config = dataclasses.replace(get_preset("ml100k-sasrec"), epochs=epochs, data=data)
            log(f"no --model-dir: training {config.model} on {config.data} for up to {epochs} epochs into {model_dir}")
            train_and_evaluate(config, model_dir, resume=True, log=log)
    model, params, config = load_trained(model_dir, num_items)
    return model, params, dataclasses.asdict(config)


def model_env(seqs, ground_truth, max_len: int, slate_size: int, **env_kwargs):
    """The recommender env on ``ground_truth`` with each user's last ``max_len`` real
    items as their starting history, exposed to the policy (``Observation.history``)."""
    from rec_jax.sim.recsys import make_recsys_env

    return make_recsys_env(ground_truth, slate_size=slate_size, history_len=max_len,
                           initial_history=seqs.last_items(max_len), observe_history=True, **env_kwargs)


def ml100k_setup(model_dir: str | Path | None, runs_dir: Path, train_epochs: int, slate_size: int,
                 data: str = "ml-100k", **env_kwargs):
    """What both large-model studies start from: (model, encoder params, TrainConfig dict,
    sim, env params). The model comes from ``model_dir`` or is trained on ``data`` into
    ``runs_dir/sasrec_ml100k_e<epochs>`` (another ``data``: ``sasrec_<fingerprint>_e<epochs>``;
    shared by the studies); the simulator is the ground truth fitted to ``data`` with each
    user's real history (:func:`model_env`). Both see ``rec_jax.data.load(data)``'s item ids."""
    from rec_jax.sim.recsys import ml100k_ground_truth
    from rec_jax.sim.recsys_fit import data_fingerprint

    gt, seqs = ml100k_ground_truth(data=data)
    tag = "ml100k" if data == "ml-100k" else data_fingerprint(data)
    model, encoder_params, train_config = trained_model(
        model_dir, Path(runs_dir) / f"sasrec_{tag}_e{train_epochs}", seqs.num_items, train_epochs, data=data)
    sim, env_params = model_env(seqs, gt, train_config["max_len"], slate_size, **env_kwargs)
    return model, encoder_params, train_config, sim, env_params


def model_policy(variant: str, model, encoder_params, num_items: int, slate_size: int, key: jax.Array,
                 overrides: dict | None = None, **view_kwargs):
    """(Policy, ModelBackedParams, PolicySpec, engine mode) of a named variant;
    ``view_kwargs`` go to :func:`rec_jax.policies.model_backed.init_view`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown model-backed policy {variant!r}; expected one of {', '.join(VARIANTS)}")
    name, defaults, mode = VARIANTS[variant]
    spec = model_spec(model, encoder_params, num_items, slate_size)
    base, base_params = make_policy(name, spec)
    base_params = base_params.replace(**{**defaults, **(overrides or {})})
    params = ModelBackedParams(view=init_view(model, encoder_params, key, slate_size, **view_kwargs), base=base_params)
    params.validate(spec)
    # the recsys env appends at most the slate's K clicks a step to a history
    return make_model_backed(base, model, max_appends=slate_size), params, spec, mode
