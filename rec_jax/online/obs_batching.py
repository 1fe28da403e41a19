"""Which leaves of a simulator's observation vary per stream, read off its traced program.

The engine vmaps a simulator over streams; leaves of the observation that depend only on
unbatched inputs (item features held once by the env params, say) stay unbatched, so a
policy can tell fixed item features from per-stream ones (``Policy.fixed_features``) and
the engine does not copy them S times. :func:`traced_once` traces a function once at
one-stream shapes; :func:`obs_axes` answers, per leaf, 0 (batched) or None, by
:func:`depends_on` over the jaxpr, the way vmap itself would batch it.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jax_core


def abstract(tree: Any) -> Any:
    def one(x):
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return jax.ShapeDtypeStruct(x.shape, x.dtype)
        return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))

    return jax.tree.map(one, tree)


def one_stream(x: jax.Array) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape[1:], x.dtype)


def traced_once(fn: Callable, *abstract_args: Any) -> tuple[Callable, Any]:
    """Trace ``fn`` once at the given (one-stream) shapes; return a function that
    replays the traced program (so probing and vmapping it do not retrace ``fn``)
    and the output shapes."""
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*abstract_args)
    flat_fn = jax_core.jaxpr_as_fun(closed)
    out_tree = jax.tree.structure(out_shape)

    def replay(*args):
        return jax.tree.unflatten(out_tree, flat_fn(*jax.tree.leaves(args)))

    replay.jaxpr = closed  # what obs_axes reads
    return replay, out_shape


def obs_axes(fn: Callable, in_axes: tuple, args: tuple, obs_shape: Any) -> Any:
    """Per leaf of the obs that ``fn`` (from :func:`traced_once`) returns first under
    ``vmap(fn, in_axes)(*args)``: None when it depends on unbatched inputs only, else 0.

    Decided on the traced program (:func:`depends_on`), without running vmap: an
    error while batching the simulator surfaces where the engine vmaps it."""
    in_batched = [axis is not None for axis, arg in zip(in_axes, args) for _ in jax.tree.leaves(arg)]
    jaxpr = fn.jaxpr.jaxpr
    if len(in_batched) != len(jaxpr.invars):
        raise ValueError(f"obs_axes: {len(in_batched)} input leaves for a program of {len(jaxpr.invars)} inputs")
    out_batched = depends_on(jaxpr, in_batched)
    treedef = jax.tree.structure(obs_shape)
    return jax.tree.unflatten(treedef, [0 if b else None for b in out_batched[: treedef.num_leaves]])


def depends_on(jaxpr: Any, in_flags: list[bool]) -> list[bool]:
    """Per output of ``jaxpr`` (a jax.extend.core.Jaxpr): does it depend on an input
    flagged in ``in_flags``? What vmap would batch: an equation's outputs depend on the
    flagged inputs when any of its inputs does, except where the dependency can be
    read more finely and vmap reads it the same way -- calls (jit, custom_jvp/vjp,
    checkpoint), ``cond`` with an unflagged index, and the carries of ``scan`` and
    ``while`` (to a fixed point). Custom vmap rules decide their own batching, so a
    flagged input flags all their outputs."""
    flags = dict(zip(jaxpr.invars, in_flags))

    def get(v) -> bool:
        return False if isinstance(v, jax_core.Literal) else flags.get(v, False)

    for eqn in jaxpr.eqns:
        ins = [get(v) for v in eqn.invars]
        outs = _eqn_depends_on(eqn, ins) if any(ins) else [False] * len(eqn.outvars)
        flags.update(zip(eqn.outvars, outs))
    return [get(v) for v in jaxpr.outvars]


def _eqn_depends_on(eqn: Any, ins: list[bool]) -> list[bool]:
    name, params, everything = eqn.primitive.name, eqn.params, [True] * len(eqn.outvars)
    if name == "cond":
        if ins[0]:  # a flagged index: vmap selects between all branches
            return everything
        branch_outs = [depends_on(branch.jaxpr, ins[1:]) for branch in params["branches"]]
        return [any(col) for col in zip(*branch_outs)]
    if name == "scan":
        body, n_consts, n_carry = params["jaxpr"].jaxpr, params["num_consts"], params["num_carry"]
        consts, carry, xs = ins[:n_consts], ins[n_consts:n_consts + n_carry], ins[n_consts + n_carry:]
        while True:
            out = depends_on(body, consts + carry + xs)
            new_carry = [c or o for c, o in zip(carry, out[:n_carry])]
            if new_carry == carry:
                return carry + out[n_carry:]
            carry = new_carry
    if name == "while":
        nc, nb = params["cond_nconsts"], params["body_nconsts"]
        cond_consts, body_consts, carry = ins[:nc], ins[nc:nc + nb], ins[nc + nb:]
        while True:
            if depends_on(params["cond_jaxpr"].jaxpr, cond_consts + carry)[0]:
                return everything  # a flagged predicate: every carry is batched
            out = depends_on(params["body_jaxpr"].jaxpr, body_consts + carry)
            new_carry = [c or o for c, o in zip(carry, out)]
            if new_carry == carry:
                return carry
            carry = new_carry
    subs = list(jax_core.jaxprs_in_params(params))
    if (name != "custom_vmap_call" and len(subs) == 1 and len(subs[0].invars) == len(eqn.invars)
            and len(subs[0].outvars) == len(eqn.outvars)):
        return depends_on(subs[0], ins)  # a call: its body, input for input
    return everything


def per_leaf_axes(axes: Any, tree: Any) -> list:
    """The vmap axis (None or 0) of every leaf of ``tree`` for an ``in_axes`` entry ``axes``
    (None, an int, or a pytree prefix of ``tree`` whose leaves are None / ints)."""
    if axes is None or isinstance(axes, int):
        return [axes] * len(jax.tree.leaves(tree))
    treedef = jax.tree.structure(axes, is_leaf=lambda v: v is None)
    out = []
    for a, sub in zip(jax.tree.leaves(axes, is_leaf=lambda v: v is None), treedef.flatten_up_to(tree)):
        out += [a] * len(jax.tree.leaves(sub))
    return out


def vmapped_out_axes(fn: Callable, in_axes: tuple, args: tuple) -> tuple[Callable, Any]:
    """(``fn`` traced once for one stream, the axes of its outputs under ``vmap(fn, in_axes)``):
    outputs that depend on unbatched inputs only come out unbatched (None), so a table
    computed from the params alone is held once rather than copied per stream.
    ``in_axes`` entries may be pytree prefixes of their args (unlike :func:`obs_axes`)."""
    one = []
    flags = []
    for axes, arg in zip(in_axes, args):
        leaf_axes = per_leaf_axes(axes, arg)
        leaves, treedef = jax.tree.flatten(arg)
        one.append(jax.tree.unflatten(treedef, [
            one_stream(x) if a is not None else abstract(x) for x, a in zip(leaves, leaf_axes)]))
        flags += [a is not None for a in leaf_axes]
    traced, out_shape = traced_once(fn, *one)
    out_batched = depends_on(traced.jaxpr.jaxpr, flags)
    treedef = jax.tree.structure(out_shape)
    return traced, jax.tree.unflatten(treedef, [0 if b else None for b in out_batched[: treedef.num_leaves]])
