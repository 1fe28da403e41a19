"""The README's Python example runs (at a tiny size) and its regret matches a recomputation."""
import re
from pathlib import Path

import numpy as np


def test_readme_engine_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    assert "num_streams=4096" in code and ", 200)" in code
    code = code.replace("4096", "8").replace(", 200)", ", 5)")
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    metrics = namespace["metrics"]
    regret = np.asarray(metrics["regret"])
    assert regret.shape == (5, 8)
    # regret + expected reward of the chosen item = the best item's expected reward,
    # recomputed here from the final state's hidden theta (fixed over time) and the features
    state, env_params = namespace["state"], namespace["env_params"]
    theta = np.asarray(state.env_state.theta)  # f32[S, D]
    features = np.asarray(env_params.item_features)  # f32[N, D]
    best = (theta @ features.T).max(axis=1)  # f32[S]
    total = regret + np.asarray(metrics["expected_reward"])
    np.testing.assert_allclose(total, np.broadcast_to(best, total.shape), rtol=1e-5, atol=1e-5)
