"""The learning-rate schedule: a NumPy closed form of warm-up + cosine, wired into the optimizer, bad values refused."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.train.config import TrainConfig
from rec_jax.train.trainer import learning_rate_schedule, make_optimizer, steps_per_epoch

COSINE = dataclasses.replace(TrainConfig(), learning_rate=2e-3, lr_schedule="cosine", warmup_epochs=1.0,
                             decay_epochs=4.0, lr_final_fraction=0.1)


def closed_form(step, peak, warmup, decay, floor):
    """Linear 0 -> peak over ``warmup`` steps, half a cosine period down to floor * peak at ``decay``, flat after."""
    step = np.asarray(step, np.float64)
    progress = np.clip((step - warmup) / (decay - warmup), 0.0, 1.0)
    cosine = floor * peak + (peak - floor * peak) * 0.5 * (1 + np.cos(np.pi * progress))
    return np.where(step < warmup, peak * step / warmup, cosine)


def test_cosine_schedule_matches_the_closed_form():
    spe = 10  # warm-up 10 steps, floor from step 40 on
    schedule = learning_rate_schedule(COSINE, spe)
    steps = np.arange(60)
    got = np.asarray([schedule(s) for s in steps])
    np.testing.assert_allclose(got, closed_form(steps, 2e-3, 10, 40, 0.1), rtol=1e-5, atol=1e-9)


def test_constant_schedule_is_the_learning_rate():
    assert learning_rate_schedule(TrainConfig(learning_rate=3e-4)) == 3e-4


def test_optimizer_steps_follow_the_schedule():
    """Adam on a constant gradient g > 0 moves by lr_t each step (m/sqrt(v) = 1), so x_N = -sum lr_t."""
    tx = make_optimizer(dataclasses.replace(COSINE, adam_b2=0.98), steps_per_epoch=10)
    x = jnp.zeros(())
    state = tx.init(x)
    for _ in range(25):
        updates, state = tx.update(jnp.ones(()), state, x)
        x = x + updates
    expected = -closed_form(np.arange(25), 2e-3, 10, 40, 0.1).sum()
    np.testing.assert_allclose(float(x), expected, rtol=1e-4)


def test_steps_per_epoch_counts_padded_batches():
    assert [steps_per_epoch(10, 4), steps_per_epoch(12, 4), steps_per_epoch(10, 4, 3)] == [3, 3, 8]


@pytest.mark.parametrize("change,message", [
    (dict(lr_schedule="linear"), "lr_schedule='linear': expected one of constant, cosine"),
    (dict(learning_rate=0.0), "learning_rate=0.0: expected > 0"),
    (dict(warmup_epochs=5.0), "expected 0 <= warmup_epochs < decay_epochs"),
    (dict(lr_final_fraction=1.5), "lr_final_fraction=1.5: expected a value in"),
    (dict(adam_b2=1.0), "adam_b2=1.0: expected a value in"),
])
def test_bad_schedule_values_are_refused(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        make_optimizer(dataclasses.replace(COSINE, **change), steps_per_epoch=10)


def test_cosine_needs_steps_per_epoch():
    with pytest.raises(ValueError, match="needs the number of steps per epoch"):
        learning_rate_schedule(COSINE)


def test_schedule_is_jittable_in_the_step():
    schedule = learning_rate_schedule(COSINE, 10)
    got = jax.jit(schedule)(jnp.asarray(25))
    np.testing.assert_allclose(float(got), closed_form(25, 2e-3, 10, 40, 0.1), rtol=1e-5)
