"""compare_losses: each loss's means are the means of its own runs, and the gap is computed from them."""
import json

import numpy as np
import pytest


@pytest.mark.slow  # four tiny training runs, ~25 s
def test_compare_losses_tiny(tmp_path, capsys):
    from experiments.compare_losses import cli

    code = cli(["--preset", "tiny-sasrec", "--losses", "ce", "gbce", "--seeds", "0", "1", "--epochs", "1",
                "--out", str(tmp_path)])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for loss in ("ce", "gbce"):
        runs = [json.loads((tmp_path / loss / f"seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
        assert out[loss]["ndcg@10"] == [r["test/ndcg@10"] for r in runs]
        assert out[loss]["mean_ndcg@10"] == pytest.approx(np.mean([r["test/ndcg@10"] for r in runs]))
        assert json.loads((tmp_path / loss / "seed0" / "config.json").read_text())["config"]["loss"] == loss
    assert out["gbce"]["gap_vs_ce"] == pytest.approx(1 - out["gbce"]["mean_ndcg@10"] / out["ce"]["mean_ndcg@10"])


def test_compare_losses_unknown_loss_is_one_line(capsys):
    from experiments.compare_losses import cli

    assert cli(["--losses", "ce", "hinge"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hinge" in err and "gbce" in err
