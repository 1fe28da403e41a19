"""OPE estimators, SLOPE and log checks against slow NumPy references (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax import ope


def _log(seed=0, n=200, num_actions=5, heavy=False):
    rng = np.random.default_rng(seed)
    pi_b = rng.dirichlet(np.ones(num_actions) * (0.3 if heavy else 2.0), size=n)
    pi_b = np.clip(pi_b, 1e-4, None)
    pi_b /= pi_b.sum(1, keepdims=True)
    action = np.array([rng.choice(num_actions, p=p) for p in pi_b])
    pi_e = rng.dirichlet(np.ones(num_actions), size=n)
    q = rng.uniform(0.05, 0.6, size=(n, num_actions))
    reward = (rng.random(n) < q[np.arange(n), action] + 0.1).astype(np.float64)
    return dict(reward=reward, action=action, pscore=pi_b[np.arange(n), action], pi_e=pi_e, q_hat=q)


def _reference(log, name, hyper=None):
    """Slow loop over rounds, straight from the papers' formulas."""
    r, a, p, pe, q = log["reward"], log["action"], log["pscore"], log["pi_e"], log["q_hat"]
    n = len(r)
    terms, wsum, corr = [], 0.0, 0.0
    for i in range(n):
        w = pe[i, a[i]] / p[i]
        qpi = sum(pe[i, b] * q[i, b] for b in range(pe.shape[1]))
        resid = r[i] - q[i, a[i]]
        wsum += w
        corr += w * resid
        if name == "dm":
            terms.append(qpi)
        elif name in ("ipw", "snipw"):
            terms.append(w * r[i])
        elif name in ("dr", "sndr"):
            terms.append(qpi + w * resid)
        elif name == "switch_dr":
            terms.append(qpi + (w * resid if w <= hyper else 0.0))
        elif name == "dr_os":
            terms.append(qpi + (hyper * w / (w * w + hyper)) * resid)
    if name == "snipw":
        return sum(terms) / wsum
    if name == "sndr":
        return sum(pe[i] @ q[i] for i in range(n)) / n + corr / wsum
    return sum(terms) / n


@pytest.mark.parametrize("heavy", [False, True])
def test_estimators_match_numpy_reference(heavy):
    log = _log(1, heavy=heavy)
    with jax.enable_x64(True):
        d = ope.OPEData(**{k: jnp.asarray(v) for k, v in log.items()})
        got = {"dm": ope.dm(d), "ipw": ope.ipw(d), "snipw": ope.snipw(d), "dr": ope.dr(d), "sndr": ope.sndr(d),
               "switch_dr": ope.switch_dr(d, 3.0), "dr_os": ope.dr_os(d, 2.5)}
        got = {k: float(v) for k, v in got.items()}
    hyper = {"switch_dr": 3.0, "dr_os": 2.5}
    for name, value in got.items():
        np.testing.assert_allclose(value, _reference(log, name, hyper.get(name)), rtol=1e-6, atol=0, err_msg=name)
    # float32 (the default) agrees with the float64 reference up to rounding
    d32 = ope.validate_log(log, pi_e=log["pi_e"], q_hat=log["q_hat"])
    np.testing.assert_allclose(float(ope.dr(d32)), _reference(log, "dr"), rtol=1e-5)


def test_switch_and_shrinkage_limits():
    """tau = inf and lambda = inf are DR; tau below every weight and lambda = 0 are DM."""
    log = _log(2)
    d = ope.validate_log(log, pi_e=log["pi_e"], q_hat=log["q_hat"])
    w = np.asarray(ope.weights(d))
    np.testing.assert_allclose(float(ope.switch_dr(d, jnp.inf)), _reference(log, "dr"), rtol=1e-5)
    np.testing.assert_allclose(float(ope.dr_os(d, jnp.inf)), _reference(log, "dr"), rtol=1e-5)
    np.testing.assert_allclose(float(ope.switch_dr(d, 0.5 * w.min())), _reference(log, "dm"), rtol=1e-5)
    np.testing.assert_allclose(float(ope.dr_os(d, 0.0)), _reference(log, "dm"), rtol=1e-5)


def test_iips_is_positionwise_ipw():
    rng = np.random.default_rng(3)
    n, k = 50, 3
    reward = rng.integers(0, 2, (n, k)).astype(np.float32)
    pscore = rng.uniform(0.05, 1.0, (n, k)).astype(np.float32)
    pe = rng.uniform(0.0, 1.0, (n, k)).astype(np.float32)
    ref = np.mean([sum(pe[i, j] / pscore[i, j] * reward[i, j] for j in range(k)) for i in range(n)])
    np.testing.assert_allclose(float(ope.iips(reward, pscore, pe)), ref, rtol=1e-6)


def _slope_reference(theta, se):
    """Largest i with a common point in all intervals j <= i, stopping at the first failure."""
    chosen = 0
    for i in range(len(theta)):
        lo = max(theta[j] - 2 * se[j] for j in range(i + 1))
        hi = min(theta[j] + 2 * se[j] for j in range(i + 1))
        if lo > hi:
            break
        chosen = i
    return chosen


def test_slope_index_matches_reference():
    rng = np.random.default_rng(4)
    for _ in range(50):
        m = rng.integers(1, 8)
        se = np.sort(rng.uniform(0.01, 1.0, m))[::-1]
        theta = rng.normal(0, 1, m).cumsum() * 0.3
        assert int(ope.slope_index(jnp.asarray(theta), jnp.asarray(se))) == _slope_reference(theta, se)


def _rounds_reference(log, name, h):
    """f64[n] per-round terms of Switch-DR (threshold h) or DR-os (shrinkage h), NumPy."""
    r, a, p, pe, q = log["reward"], log["action"], log["pscore"], log["pi_e"], log["q_hat"]
    rows = np.arange(len(r))
    w, qpi, resid = pe[rows, a] / p, (pe * q).sum(1), r - q[rows, a]
    if name == "switch_dr":
        return qpi + np.where(w <= h, w * resid, 0.0)
    return qpi + (w if np.isinf(h) else h * w / (w * w + h)) * resid


@pytest.mark.parametrize("seed", [5, 6])
def test_slope_tuned_estimate_matches_numpy_slope(seed):
    """SLOPE's choice and estimate against a NumPy SLOPE over the same grids (per-round
    terms, theta = mean, se = std / sqrt(n), :func:`_slope_reference`). Seed 6's log
    makes NumPy pick an interior grid point for both (tau = lambda = 4), seed 5's the
    smallest tau: a rule that always returned one end of the grid fails."""
    n = 400
    log = _log(seed, n=n, heavy=True)
    d = ope.validate_log(log, pi_e=log["pi_e"], q_hat=log["q_hat"])
    est = ope.estimate_all(d)
    for name, grid, key in (("switch_dr", ope.DEFAULT_TAUS, "switch_dr_tau"),
                            ("dr_os", ope.DEFAULT_LAMBDAS, "dr_os_lambda")):
        terms = np.stack([_rounds_reference(log, name, h) for h in grid])  # [M, n]
        i = _slope_reference(terms.mean(1), terms.std(1) / np.sqrt(n))
        if seed == 6:
            assert 0 < i < len(grid) - 1, (name, i)
        assert float(est[key]) == grid[i], (name, float(est[key]), grid[i])
        np.testing.assert_allclose(float(est[name]), terms[i].mean(), rtol=1e-5)


def test_bootstrap_vmaps_over_resamples():
    log = _log(6, n=30)
    d = ope.validate_log(log, pi_e=log["pi_e"], q_hat=log["q_hat"])
    idx = ope.resample_indices(jax.random.key(0), 30, 4)
    got = np.asarray(ope.bootstrap(ope.ipw, d, idx))
    w = log["pi_e"][np.arange(30), log["action"]] / log["pscore"]
    ref = [(w * log["reward"])[i].mean() for i in np.asarray(idx)]
    np.testing.assert_allclose(got, ref, rtol=1e-5)


@pytest.mark.parametrize("field,value,match", [
    ("pscore", 0.0, r"'pscore' row 3 is 0.0; expected a propensity in \(0, 1\]"),
    ("pscore", 1.5, r"'pscore' row 3 is 1.5"),
    ("pscore", np.nan, r"'pscore' row 3"),
    ("reward", np.inf, r"'reward'"),
])
def test_bad_values_name_the_field(field, value, match):
    log = _log(7, n=10)
    log[field] = log[field].copy()
    log[field][3] = value
    with pytest.raises(ValueError, match=match):
        ope.validate_log(log, pi_e=log["pi_e"])


def test_missing_and_mismatched_columns():
    log = _log(8, n=10)
    with pytest.raises(ValueError, match="log field 'pscore' is missing"):
        ope.validate_log({k: v for k, v in log.items() if k != "pscore"}, pi_e=log["pi_e"])
    with pytest.raises(ValueError, match="log field 'action' has length 9, expected 10"):
        ope.validate_log(dict(log, action=log["action"][:9]), pi_e=log["pi_e"])
    with pytest.raises(ValueError, match="'pi_e' has shape"):
        ope.validate_log(log, pi_e=log["pi_e"][:5])
    with pytest.raises(ValueError, match="'action': expected ids in 0..4"):
        ope.validate_log(dict(log, action=log["action"] + 5), pi_e=log["pi_e"])
    with pytest.raises(ValueError, match="'q_hat' has shape"):
        ope.validate_log(log, pi_e=log["pi_e"], q_hat=log["q_hat"][:, :2])


def test_floored_monte_carlo_propensities_are_refused_unless_allowed():
    """Engine logs carry ActInfo.propensity_kind; Thompson-type (floored at 1/S) ones cap
    IPW weights at S * pi_e, so validate_log refuses them in one line unless told."""
    from rec_jax.policies.base import EXACT, MONTE_CARLO_FLOORED

    log = _log(9, n=10)
    kind = np.full(10, EXACT)
    kind[4] = MONTE_CARLO_FLOORED
    with pytest.raises(ValueError, match=r"'propensity_kind': 1 of 10 pscores are Monte Carlo .*allow_mc_floor=True"):
        ope.validate_log(dict(log, propensity_kind=kind), pi_e=log["pi_e"])
    with pytest.raises(ValueError, match="'pscore_kind'"):
        ope.validate_log(dict(log, pscore_kind=kind), pi_e=log["pi_e"])
    d = ope.validate_log(dict(log, propensity_kind=kind), pi_e=log["pi_e"], allow_mc_floor=True)
    np.testing.assert_allclose(np.asarray(d.pscore), log["pscore"], rtol=1e-6)
    ope.validate_log(dict(log, propensity_kind=np.full(10, EXACT)), pi_e=log["pi_e"])  # exact: accepted
    with pytest.raises(ValueError, match="'propensity_kind' has length 9"):
        ope.validate_log(dict(log, propensity_kind=kind[:9]), pi_e=log["pi_e"])
