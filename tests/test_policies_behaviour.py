"""Every policy against NumPy references and against its own sampling frequencies.

One jit per policy (see ``test_policies_utils.behaviour``) produces random
histories for K = 1 and K = 3 and ``act`` on a fixed observation over 4000 keys;
the tests compare that with NumPy and with the empirical action frequencies.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.policies import policy_info, policy_names
from rec_jax.policies.base import EXACT, MONTE_CARLO, MONTE_CARLO_FLOORED
from test_policies_utils import (
    ALL_NAMES,
    N,
    NUM_KEYS,
    UNAVAILABLE,
    behaviour,
    clips_rewards,
    is_mc,
    names_of_family,
    state_family,
    np_counts,
    np_ridge,
    np_slot_contexts,
    rel_frobenius,
    tie_uniform_onehot,
    update_key,
)

# One xdist worker runs every test that reads the shared per-policy jit (behaviour()).
pytestmark = pytest.mark.xdist_group("policy_behaviour")


def _binomial_tol(p, n, extra=2e-3):
    return 5.0 * np.sqrt(np.clip(p * (1 - p), 1e-12, None) / n) + extra


# ----------------------------------------------------------------------------- update vs NumPy


def _np_logistic(x, r, lr, l2):
    w = np.zeros(x.shape[1])
    bias = 0.0
    for xi, ri in zip(x, np.clip(r, 0.0, 1.0)):
        g = 1.0 / (1.0 + np.exp(-(xi @ w + bias))) - ri
        w, bias = w - lr * (g * xi + l2 * w), bias - lr * g
    return w, bias


@pytest.mark.parametrize("name", names_of_family("counts", "ridge", "ridge_prior", "disjoint", "logistic", "step_count", "heads"))
@pytest.mark.parametrize("k", [1, 3])
def test_update_matches_numpy(name, k):
    """Every policy whose state type has a NumPy reference (``state_family``)."""
    b = behaviour(name)[k]
    st, params = b["state"], b["params"]
    x, r, items = np_slot_contexts(b["features"], b["actions"], b["rewards"])
    num_steps = b["actions"].shape[0]
    assert x.shape[0] == num_steps * k
    family = state_family(name)
    if family == "counts":
        counts, sums = np_counts(b["actions"], b["rewards"], clip=clips_rewards(name))
        np.testing.assert_allclose(st.counts, counts)
        np.testing.assert_allclose(st.sums, sums, rtol=1e-5, atol=1e-5)
        assert int(st.t) == num_steps
    elif family == "ridge":
        gram, bvec, a_inv = np_ridge(x, r)
        np.testing.assert_allclose(st.gram, gram, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(st.b, bvec, rtol=1e-5, atol=1e-4)
        assert rel_frobenius(st.a_inv, a_inv) < 1e-4
        assert int(st.num_updates) == num_steps * k
    elif family == "disjoint":
        for n in range(N):
            sel = items == n
            gram, bvec, a_inv = np_ridge(x[sel], r[sel])
            np.testing.assert_allclose(st.gram[n], gram, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(st.b[n], bvec, rtol=1e-5, atol=1e-4)
            assert rel_frobenius(st.a_inv[n], a_inv) < 1e-4
            assert int(st.counts[n]) == sel.sum()
    elif family == "logistic":
        w, bias = _np_logistic(x, r, params.learning_rate, params.l2)
        np.testing.assert_allclose(st.w, w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(st.bias, bias, rtol=1e-4, atol=1e-5)
        assert int(st.t) == num_steps
    elif family == "step_count":
        assert int(st) == num_steps  # learns nothing but the step count
    elif family == "ridge_prior":
        # Bayesian linear regression with prior N(c 1, I/reg): raw sums in the state,
        # posterior mean A^-1 (reg c 1 + X^T r) formed when acting.
        gram, bvec, a_inv = np_ridge(x, r)
        np.testing.assert_allclose(st.gram, gram, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(st.b, bvec, rtol=1e-5, atol=1e-4)
        assert rel_frobenius(st.a_inv, a_inv) < 1e-4
        from rec_jax.policies.neural_linear import posterior_mean

        mu = a_inv @ (params.reg * params.prior_mean * np.ones(x.shape[1]) + bvec)
        np.testing.assert_allclose(posterior_mean(st, params.prior_mean), mu, rtol=1e-4, atol=1e-4)
    else:
        assert family == "heads", family
        for m, (gram, bvec, a_inv, _) in enumerate(_np_heads(b)):
            np.testing.assert_allclose(st.ridge.gram[m], gram, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(st.ridge.b[m], bvec, rtol=1e-5, atol=1e-4)
            assert rel_frobenius(st.ridge.a_inv[m], a_inv) < 1e-4


def _np_heads(b):
    """Per head m: weighted ridge (gram, raw b, A^-1, posterior mean) with the Poisson(1)
    bootstrap weights redrawn from the keys ``replay`` used, prior mean c 1 + sigma z_m."""
    params, st = b["params"], b["state"]
    x, r, _ = np_slot_contexts(b["features"], b["actions"], b["rewards"])
    z = np.asarray(st.z, np.float64)
    m, k = z.shape[0], b["spec"].slate_size
    num_steps = b["actions"].shape[0]
    w = np.concatenate(
        [np.asarray(jax.random.poisson(update_key(t), 1.0, (m, k)), np.float64) for t in range(num_steps)], axis=1
    )  # [M, T*K], slot order as np_slot_contexts
    heads = []
    for j in range(m):
        prior = params.prior_mean + params.prior_scale * z[j]
        gram = (x * w[j][:, None]).T @ x
        bvec = (x * w[j][:, None]).T @ r
        a_inv = np.linalg.inv(gram + np.eye(x.shape[1]))
        heads.append((gram, bvec, a_inv, a_inv @ (prior + bvec)))  # A^-1 (reg p + b), reg = 1
    return heads


# ----------------------------------------------------------------------------- K = 1 distribution vs NumPy


def _np_expected_distribution(name, b, rng):
    """The K = 1 action distribution that NumPy computes from the history alone."""
    params = b["params"]
    feats = np.asarray(b["obs"].features, np.float64)
    avail = np.asarray(b["obs"].available)
    m = avail.sum()
    x, r, items = np_slot_contexts(b["features"], b["actions"], b["rewards"])
    counts, sums = np_counts(b["actions"], b["rewards"], clip=clips_rewards(name))
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    uniform = avail / m
    if name == "random":
        return uniform
    if name == "greedy":
        return tie_uniform_onehot(means, avail)
    if name == "epsilon_greedy":
        return params.epsilon * uniform + (1 - params.epsilon) * tie_uniform_onehot(means, avail)
    if name == "softmax":
        z = np.where(avail, means / params.temperature, -np.inf)
        e = np.exp(z - z.max())
        return e / e.sum()
    if name == "ucb1":
        bonus = np.sqrt(2 * np.log(counts.sum()) / np.maximum(counts, 1))
        return tie_uniform_onehot(np.where(counts > 0, means + params.alpha * bonus, np.inf), avail)
    if name == "linucb":
        _, bvec, a_inv = np_ridge(x, r)
        s = feats @ a_inv @ bvec + params.alpha * np.sqrt(np.einsum("ni,ij,nj->n", feats, a_inv, feats))
        return tie_uniform_onehot(s, avail)
    if name == "linucb_disjoint":
        s = np.zeros(N)
        for n in range(N):
            _, bvec, a_inv = np_ridge(x[items == n], r[items == n])
            s[n] = feats[n] @ a_inv @ bvec + params.alpha * np.sqrt(feats[n] @ a_inv @ feats[n])
        return tie_uniform_onehot(s, avail)
    if name == "squarecb":
        _, bvec, a_inv = np_ridge(x, r)
        yhat = feats @ a_inv @ bvec
        best = np.argmax(np.where(avail, yhat, -np.inf))
        p = np.where(avail, 1.0 / (m + params.gamma * (yhat[best] - yhat)), 0.0)
        p[best] = 0.0
        p[best] = 1.0 - p.sum()
        return p
    if name == "logistic_epsilon_greedy":
        w, bias = _np_logistic(x, r, params.learning_rate, params.l2)
        return params.epsilon * uniform + (1 - params.epsilon) * tie_uniform_onehot(feats @ w + bias, avail)
    scores = np.asarray(b["obs"].scores, np.float64)
    if name == "score_epsilon_greedy":
        return params.epsilon * uniform + (1 - params.epsilon) * tie_uniform_onehot(scores, avail)
    if name == "score_softmax":
        z = np.where(avail, scores / params.temperature, -np.inf)
        e = np.exp(z - z.max())
        return e / e.sum()
    if name == "neural_linear_ucb":
        _, bvec, a_inv = np_ridge(x, r - params.prior_mean * x.sum(1))
        mu = params.prior_mean + a_inv @ bvec
        s = feats @ mu + params.alpha * np.sqrt(np.einsum("ni,ij,nj->n", feats, a_inv, feats))
        return tie_uniform_onehot(s, avail)
    if name == "bootstrapped_heads":
        heads = _np_heads(b)
        dist = np.zeros(N)
        for _, _, _, mu in heads:
            dist += tie_uniform_onehot(feats @ mu, avail) / len(heads)
        return dist
    # Thompson-type: NumPy Monte Carlo from the posterior NumPy computes.
    draws = 200_000
    if name == "thompson":
        samples = rng.beta(1.0 + sums, 1.0 + counts - sums, size=(draws, N))
    elif name == "gaussian_ts":
        prec = 1.0 / params.prior_std**2 + counts / params.noise_std**2
        mu = (params.prior_mean / params.prior_std**2 + sums / params.noise_std**2) / prec
        samples = mu + rng.standard_normal((draws, N)) / np.sqrt(prec)
    elif name == "lints":
        _, bvec, a_inv = np_ridge(x, r)
        theta = rng.multivariate_normal(a_inv @ bvec, params.scale**2 * a_inv, size=draws)
        samples = theta @ feats.T
    elif name == "neural_linear_ts":
        _, bvec, a_inv = np_ridge(x, r - params.prior_mean * x.sum(1))
        theta = rng.multivariate_normal(params.prior_mean + a_inv @ bvec, params.scale**2 * a_inv, size=draws)
        samples = theta @ feats.T
    else:
        return None  # not a built-in policy: its own test file holds its reference
    best = np.argmax(np.where(avail, samples, -np.inf), axis=1)
    return np.bincount(best, minlength=N) / draws


@pytest.mark.parametrize("name", ALL_NAMES)
def test_single_action_distribution_matches_numpy(name):
    b = behaviour(name)[1]
    expected = _np_expected_distribution(name, b, np.random.default_rng(0))
    if expected is None:
        pytest.skip(f"{name}: no built-in NumPy formula here; the policy's own test file checks its distribution")
    marginal = b["marginal"][:, 0, :]  # [keys, N]
    if is_mc(name):
        # Mean of the MC marginals (num_mc_samples draws each) vs NumPy's own MC.
        np.testing.assert_allclose(marginal.mean(0), expected, atol=0.01)
        assert b["num_mc_samples"][0] == b["params"].num_mc_samples
    else:
        np.testing.assert_allclose(marginal, np.broadcast_to(expected, marginal.shape), atol=2e-5)
        assert np.all(b["num_mc_samples"] == 0)


# ----------------------------------------------------------------------------- propensities vs frequencies


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("k", [1, 3])
def test_propensities_match_frequencies(name, k):
    b = behaviour(name)[k]
    action = b["action"].reshape(NUM_KEYS, k)
    prop = b["propensity"].reshape(NUM_KEYS, k)
    marg = b["marginal"]  # [keys, K, N]
    assert marg.shape == (NUM_KEYS, k, N)
    expected = marg.mean(0)
    freq = np.stack([np.bincount(action[:, j], minlength=N) / NUM_KEYS for j in range(k)])
    assert np.all(np.abs(freq - expected) <= _binomial_tol(expected, NUM_KEYS)), (freq, expected)
    # Marginals are distributions per slot, and each item fills at most one slot.
    np.testing.assert_allclose(marg.sum(-1), 1.0, atol=1e-5)
    mc_marginals_only = k > 1 and policy_info(name).marginals == "monte_carlo" and not is_mc(name)
    if mc_marginals_only:  # exact slot 0 next to MC slots: holds on average
        assert np.all(expected.sum(0) <= 1.0 + 0.02)
    else:
        assert np.all(marg.sum(1) <= 1.0 + 1e-5)
    # Slot 0's conditional propensity is its marginal at the chosen item.
    np.testing.assert_allclose(prop[:, 0], marg[np.arange(NUM_KEYS), 0, action[:, 0]], rtol=1e-5, atol=1e-6)
    assert np.all((prop > 0) & (prop <= 1 + 1e-6))
    exact = not is_mc(name, k)
    assert np.all(b["num_mc_samples"] == (0 if exact else b["params"].num_mc_samples))
    # ActInfo says which kind each number is: sampled top-K floors both at 1/S.
    info = policy_info(name)
    want_prop = MONTE_CARLO_FLOORED if info.propensities == "monte_carlo" else EXACT
    want_marg = want_prop if k == 1 or info.marginals == info.propensities else MONTE_CARLO
    assert np.all(b["propensity_kind"] == want_prop) and np.all(b["marginal_kind"] == want_marg)
    if want_prop == MONTE_CARLO_FLOORED:
        s = b["params"].num_mc_samples
        chosen = marg[np.arange(NUM_KEYS)[:, None], np.arange(k), action]  # [keys, K]
        assert np.all(prop >= 1.0 / s - 1e-6) and np.all(chosen >= 1.0 / s - 1e-6)
    if exact:  # deterministic given the state: every key reports the same marginals
        np.testing.assert_allclose(marg, np.broadcast_to(marg[0], marg.shape), atol=1e-6)


def _sampled_topk_slot1_moments(c, p0, s):
    """(mean, variance) of sampled_topk_slate's slot-1 propensity (1 + B) / (1 + Y):
    Y ~ Bin(s - 1, p0) other draws share the slot-0 pick, B | Y ~ Bin(Y, c) of them
    also the slot-1 pick (c the true conditional), summed over Y's pmf."""
    from scipy.stats import binom

    y = np.arange(s)
    pmf = binom.pmf(y, s - 1, p0)
    mean_y = c + (1 - c) / (1 + y)
    second_y = c * (1 - c) * y / (1 + y) ** 2 + mean_y**2
    mean = pmf @ mean_y
    return mean, pmf @ second_y - mean**2


def test_sampled_topk_bias_formula_of_the_docstring():
    """E[1 / (1 + Y)] = (1 - (1 - P)^S) / (S P) for Y ~ Bin(S - 1, P): the bias factor
    sampled_topk_slate's docstring states, against the pmf sum."""
    for p0, s in [(0.05, 32), (0.3, 7), (0.9, 128)]:
        mean, _ = _sampled_topk_slot1_moments(0.0, p0, s)  # c = 0: the mean is E[1 / (1 + Y)]
        np.testing.assert_allclose(mean, (1 - (1 - p0) ** s) / (s * p0), rtol=1e-12)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_slate_conditional_propensities_match_frequencies(name):
    """P(slot 1 = j | slot 0 = i) empirically vs the reported conditional propensity.

    Exact policies report c = P(slot 1 = j | slot 0 = i) itself. Sampled top-K
    (Monte Carlo, the acting draw counted) reports (1 + B) / (1 + Y) with
    Y ~ Bin(S - 1, P), P = P(slot 0 = i), and B | Y ~ Bin(Y, c), whose mean is
    c + (1 - c) g with g = E[1 / (1 + Y)] = (1 - (1 - P)^S) / (S P) (the bias stated
    in sampled_topk_slate's docstring): the test inverts that exactly, so no bias
    allowance remains. Tolerance: 5 standard errors of the difference (the
    frequency's binomial one, the reported mean's from the model variance of
    :func:`_sampled_topk_slot1_moments`, g's from estimating P by the slot-0
    frequency over NUM_KEYS keys): a normal tail of 6e-7
    per comparison, about 3e-4 over the few hundred comparisons of the suite.
    """
    b = behaviour(name)[3]
    action, prop = b["action"], b["propensity"]
    mc = is_mc(name)
    s = b["params"].num_mc_samples if mc else 0
    checked = 0
    for i in range(N):
        rows = action[:, 0] == i
        n_i = rows.sum()
        if n_i < 300:
            continue
        p0 = n_i / NUM_KEYS
        for j in np.unique(action[rows, 1]):
            sel = rows & (action[:, 1] == j)
            p_hat = sel.sum() / n_i
            rep = prop[sel, 1]
            if mc:
                g = (1.0 - (1.0 - p0) ** s) / (s * p0)
                c = (rep.mean() - g) / (1.0 - g)
                # Variance of the debiased mean: the reported values' model variance
                # (at the frequency and at the estimate, the larger), over len(rep),
                # plus g's through the slot-0 frequency p0.
                var_rep = max(_sampled_topk_slot1_moments(np.clip(x, 0, 1), p0, s)[1] for x in (p_hat, c))
                dg = (1.0 - (1.0 - p0) ** s) / (s * p0) * (-1.0 / p0) + (1.0 - p0) ** (s - 1) / p0
                var_p0 = p0 * (1 - p0) / NUM_KEYS
                var = var_rep / len(rep) / (1 - g) ** 2 + ((1 - rep.mean()) / (1 - g) ** 2 * dg) ** 2 * var_p0
            else:  # exact: one number per prefix, up to float32 rounding
                c, var = rep.mean(), 0.0
                assert np.ptp(rep) <= 1e-5
            c_ref = np.clip(c, 1.0 / n_i, 1.0 - 1.0 / n_i)
            sd = np.sqrt(c_ref * (1 - c_ref) / n_i + var)
            assert abs(p_hat - c) <= 5.0 * sd + 1e-4, (i, j, p_hat, c, sd)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("k", [1, 3])
def test_never_unavailable_and_slates_distinct(name, k):
    b = behaviour(name)[k]
    action = b["action"].reshape(NUM_KEYS, k)
    assert not np.any(action == UNAVAILABLE)
    assert np.all(b["marginal"][:, :, UNAVAILABLE] == 0.0)
    assert all(len(set(row)) == k for row in action.tolist())
    assert b["action"].dtype == np.int32
    assert b["action"].shape == ((NUM_KEYS,) if k == 1 else (NUM_KEYS, k))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_jit_equals_eager_and_same_key_same_action(name):
    b = behaviour(name)[3]
    policy, params = b["policy"], b["params"]
    jit_action, jit_info = b["single"]  # policy.act(keys[1], ...) inside behaviour()'s jit
    # Eager (op by op, no jit) twice with the same key.
    action, info = policy.act(b["keys"][1], b["state"], b["obs"], params)
    action2, info2 = policy.act(b["keys"][1], b["state"], b["obs"], params)
    np.testing.assert_array_equal(np.asarray(action), np.asarray(jit_action))
    np.testing.assert_array_equal(np.asarray(action2), np.asarray(action))
    np.testing.assert_array_equal(np.asarray(info2.propensity), np.asarray(info.propensity))
    np.testing.assert_allclose(np.asarray(info.propensity), np.asarray(jit_info.propensity), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(info.marginal), np.asarray(jit_info.marginal), rtol=1e-5, atol=1e-6)
    # ... while, for a policy that randomises here, different keys give different slates.
    if b["marginal"][0, 0].max() < 0.99:
        assert len({tuple(a) for a in b["action"][:50].tolist()}) > 1


def test_epsilon_zero_is_greedy_on_numpy_argmax():
    b = behaviour("epsilon_greedy")[3]
    policy, spec = b["policy"], b["spec"]
    params = b["params"].replace(epsilon=0.0)
    counts, sums = np_counts(b["actions"], b["rewards"])
    means = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    avail = np.asarray(b["obs"].available)
    order = [i for i in np.argsort(-means, kind="stable") if avail[i]][: spec.slate_size]
    act = jax.jit(jax.vmap(policy.act, in_axes=(0, None, None, None)))
    action, info = act(b["keys"][:8], b["state"], b["obs"], params)
    np.testing.assert_array_equal(np.asarray(action), np.broadcast_to(order, (8, 3)))
    np.testing.assert_allclose(np.asarray(info.propensity), 1.0)
    np.testing.assert_allclose(np.asarray(info.marginal), np.broadcast_to(np.eye(N)[order], (8, 3, N)), atol=1e-6)


def test_contextual_names_read_features():
    # A contextual policy's action distribution must change when only the features change.
    for name in policy_names(needs_features=True):
        b = behaviour(name)[1]
        obs2 = b["obs"].replace(features=-b["obs"].features)
        _, info = b["policy"].act(b["keys"][0], b["state"], obs2, b["params"])
        assert not np.allclose(np.asarray(info.marginal), b["marginal"][0], atol=1e-3), name
