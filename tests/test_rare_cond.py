"""rec_jax.online.rare_cond.when_any: a real branch under vmap, each element as if alone."""
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.online.rare_cond import when_any


def _fn(calls):
    def repair(ops):
        x, need = ops
        jax.debug.callback(lambda: calls.append(1))  # fires only when the branch runs
        return jnp.where(need, 2.0 * x, x)

    return lambda x, need: when_any(need, repair, lambda ops: ops[0], (x, need))


def test_alone_it_is_the_plain_branch():
    calls = []
    f = jax.jit(_fn(calls))
    assert float(f(3.0, jnp.bool_(False))) == 3.0 and float(f(3.0, jnp.bool_(True))) == 6.0
    jax.effects_barrier()
    assert len(calls) == 1


def test_under_vmap_one_branch_runs_and_each_element_is_its_own():
    calls = []
    f = jax.jit(jax.vmap(_fn(calls)))
    x = jnp.arange(4.0)
    np.testing.assert_array_equal(f(x, jnp.zeros(4, bool)), x)  # nothing needed: the repair never ran
    jax.effects_barrier()
    assert calls == []
    need = jnp.array([False, True, False, False])
    np.testing.assert_array_equal(f(x, need), np.where(need, 2 * x, x))  # only element 1 changed
    jax.effects_barrier()
    assert len(calls) >= 1
    # in a scan (the engine's layout) too
    g = jax.jit(jax.vmap(lambda x, n: jax.lax.scan(lambda c, _: (_fn([])(c, n), None), x, None, length=3)[0]))
    np.testing.assert_array_equal(g(x, need), np.where(need, 8 * x, x))
