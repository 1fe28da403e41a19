"""rec_jax.roofline: XLA's matmul count equals the hand count, the fraction's arithmetic,
the probes' plumbing (tiny sizes), the CPU model; the analytic step counts' arithmetic."""
import math

import jax.numpy as jnp
import pytest

from rec_jax import roofline


def test_xla_matmul_flops_equal_the_hand_count():
    m, k, n = 64, 48, 32
    cost = roofline.xla_cost(lambda a, b: a @ b, jnp.ones((m, k)), jnp.ones((k, n)))
    assert cost["flops"] == roofline.matmul_flops(m, k, n) == 2 * m * n * k
    assert cost["bytes"] >= 4 * (m * k + k * n + m * n)  # at least the operands and the result


def test_cost_dict_accepts_both_jax_return_forms():
    assert roofline._cost_dict({"flops": 3.0}) == {"flops": 3.0}
    assert roofline._cost_dict([{"flops": 3.0, "bytes accessed": 1.0}, {"flops": 2.0}]) == \
        {"flops": 5.0, "bytes accessed": 1.0}
    assert roofline._cost_dict(None) == {}


def test_roofline_fraction_by_hand():
    # 100 GFLOP/s and 10 GB/s; 1e4 FLOPs and 1e3 bytes per step: both bounds 1e7 steps/s
    f = roofline.roofline_fields(2e6, 1e4, 2e3, "hand", 100.0, 10.0, 5e4, 6e3)
    assert math.isclose(f["roofline_steps_per_s"], min(100e9 / 1e4, 10e9 / 2e3)) and f["roofline_bound"] == "memory"
    assert math.isclose(f["roofline_fraction"], 2e6 / 5e6)
    assert math.isclose(f["achieved_gflop_s"], 2e6 * 1e4 / 1e9) and math.isclose(f["achieved_gb_s"], 4.0)
    assert (f["xla_flops_per_step"], f["xla_bytes_per_step"], f["flops_source"]) == (5e4, 6e3, "hand")
    none = roofline.roofline_fields(1.0, 1.0, 1.0, "hand", None, None)
    assert none["roofline_fraction"] is None and none["peak_gflop_s"] is None
    with pytest.raises(ValueError, match="flops_per_step > 0"):
        roofline.roofline_fields(1.0, 0.0, 1.0, "hand", 1.0, 1.0)


def test_probes_and_cpu_model():
    assert isinstance(roofline.cpu_model(), str) and roofline.cpu_model().strip()
    assert roofline.peak_gflop_s(max_n=1024, repeats=1) > 0
    assert roofline.peak_gb_s(megabytes=4, repeats=1) > 0


def test_linucb_minimal_count():
    from experiments.bench_engine import linucb_step_cost

    k, d = 100, 16
    flops, nbytes, how = linucb_step_cost(k, d)
    assert flops == 4 * k * d + 6 * k + 4 * d * d + 9 * d + 3 == 8171  # about 8 kFLOP per user-step
    assert nbytes == 4 * (2 * d * d + 2 * d + 2 * k + d + 1)
    assert "incremental variances" in how
    shared, _, _ = linucb_step_cost(k, d, "shared", streams=4096)
    assert 2 * d * d < shared < 2 * d * d + 4 * d + 1 + k + 1000 / 4096 * (3 * d**3 + 2 * k * d * d)


def test_epsilon_greedy_minimal_count():
    from experiments.bench_engine import epsilon_greedy_step_cost

    k, d = 100, 16  # hand count: argmax over the K means, the env's dot + noise, one mean and count moved
    flops, nbytes, _ = epsilon_greedy_step_cost(k, d)
    assert flops == k + (2 * d + 1) + 4 == 137
    assert nbytes == 4 * k + 4 * d + 4 + 16 == 484


def test_train_step_count_of_a_tiny_sasrec():
    from rec_jax.train.config import get_preset
    from rec_jax.train.step_cost import train_step_cost

    c = get_preset("tiny-sasrec")  # L = 12, D = 16, F = 32, one block, full CE
    n, b, t, p = 50, 32, 100, 4000
    flops, nbytes, _ = train_step_cost(c, n, b, t, p)
    per_token = 8 * 16 * 16 + 4 * 16 * (12 + 1) / 2 + 4 * 16 * 32
    assert flops == 3 * (b * 12 * per_token + t * 2 * 16 * (n + 1)) + 12 * p
    assert nbytes == 4 * (10 * p + b * 13)
