"""Off-policy estimates from the decision service's log, against a closed form and a
brute-force NumPy IPW on a synthetic epsilon-greedy log."""
import numpy as np
import pytest

from rec_jax.ope.from_log import cli, estimate
from rec_jax.serve.http.decision_log import Decision, DecisionLog
from rec_jax.serve.http.export import read_served_log

ITEMS, GREEDY, EPS = 6, [1, 2], 0.3
CLICK = {1: (0.30, 0.20), 2: (0.25, 0.15), 3: (0.05, 0.04), 4: (0.08, 0.06), 5: (0.10, 0.07), 6: (0.02, 0.02)}


def _log(path, n=3000, seed=0, kind="exact"):
    """An epsilon-greedy (slot by slot) logger over 6 items, 2 slots; clicks by (item, slot)."""
    rng = np.random.default_rng(seed)
    log = DecisionLog(path, clock=lambda: 0.0)
    rows = []
    for i in range(n):
        left, slate, props = list(range(1, ITEMS + 1)), [], []
        for j in range(2):
            best = next(g for g in GREEDY + left if g in left)  # greedy order: 1, 2, then the rest
            pick = int(rng.choice(left)) if rng.random() < EPS else best
            props.append((1 - EPS) * (pick == best) + EPS / len(left))
            slate.append(pick)
            left.remove(pick)
        clicks = [float(rng.random() < CLICK[item][j]) for j, item in enumerate(slate)]
        rows.append((slate, props, clicks))
        log.log_decisions([Decision(id=f"d{i:05d}", user=f"u{i % 50}", context=[], slate=slate, propensities=props,
                                    propensity_kind=kind, policy="epsilon_greedy", policy_params={},
                                    model_version="m", created=float(i), expires=1e12, greedy=GREEDY)])
        log.log_reward(f"d{i:05d}", clicks)
    log.close()
    return rows


def test_greedy_value_from_an_epsilon_greedy_log(tmp_path):
    rows = _log(tmp_path / "d.db")
    truth = (CLICK[1][0] + CLICK[2][1]) / 2  # the greedy slate [1, 2]: its expected clicks per slot
    out = estimate(read_served_log(tmp_path / "d.db"), "greedy", bootstrap=300)
    # IPW by brute force: 1[slate == greedy] / prod(propensities) * clicks per slot
    brute = np.mean([(s == GREEDY) / np.prod(p) * np.mean(c) for s, p, c in rows])
    assert out["ipw"] == pytest.approx(brute, rel=1e-5)
    assert out["matches"] == sum(s == GREEDY for s, _, _ in rows)
    for name in ("ipw", "snipw", "dr"):
        lo, hi = out[f"{name}_ci95"]
        assert lo <= truth <= hi, (name, lo, truth, hi)
    assert out["dr_ci95"][1] - out["dr_ci95"][0] <= out["ipw_ci95"][1] - out["ipw_ci95"][0]  # the model helps
    logging = estimate(read_served_log(tmp_path / "d.db"), "logging", bootstrap=50)
    assert logging["ipw"] == pytest.approx(np.mean([np.mean(c) for _, _, c in rows]), rel=1e-6)


def test_floored_monte_carlo_propensities_are_refused_in_one_line(tmp_path, capsys):
    _log(tmp_path / "mc.db", n=40, kind="monte_carlo_floored")
    assert cli([str(tmp_path / "mc.db"), "--policy", "greedy", "--bootstrap", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Monte Carlo" in err and "\n" not in err
    assert cli([str(tmp_path / "mc.db"), "--policy", "greedy", "--bootstrap", "10", "--allow-mc-floor"]) == 0
    assert cli([str(tmp_path / "mc.db"), "--policy", "oracle"]) == 2
