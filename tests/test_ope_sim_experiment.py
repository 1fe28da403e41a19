"""The simulator OPE study end to end at a tiny size: IPW and DR unbiased, DR less variable."""
import pytest

from experiments import ope_sim


@pytest.mark.slow  # the simulated OPE study end to end (its estimators: tests/test_ope_estimators.py)
def test_ope_sim_tiny_unbiased(tmp_path):
    """IPW and DR are unbiased against the exact value, and DR varies less than IPW."""
    out = tmp_path / "sim"
    m = ope_sim.cli(["--sizes", "200", "--replicates", "64", "--candidates", "3", "--pop-rounds", "8192",
                     "--out", str(out)])
    assert (out / "ope_sim.png").exists() and (out / "metrics.json").exists()
    for e in ("ipw", "dr"):
        assert abs(m[f"bias/n200/{e}"]) <= m[f"bias/n200/{e}_ci95"], e
    assert m["variance/n200/dr"] < m["variance/n200/ipw"]
    for e in ope_sim.ESTIMATORS:
        assert 0.0 <= m[f"pick_best/n200/{e}"] <= 1.0 and m[f"pick_regret/n200/{e}"] >= 0.0
    assert sum(k.startswith("true_value/") for k in m) == 3
