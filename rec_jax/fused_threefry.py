"""Threefry-2x32 keys whose hash compiles to ONE fused loop on XLA:CPU, bit-identical to JAX's.

Why: JAX lowers its threefry hash on CPU as a rolled ``fori_loop`` of 5 iterations (to keep
compile times down), so every ``split``, ``uniform`` or ``normal`` becomes a while loop of
some 40 small XLA:CPU thunks. In the online engine, which draws per-stream keys and
numbers for thousands of streams every step, those loops took about a quarter of a LinUCB
step (4,096 streams: ~0.7 ms of ~2.7 ms, profiled with ``jax.profiler``). JAX's unrolled
lowering (its GPU one) is no cure on CPU: XLA fuses the hash into each consumer and, where
a split key is hashed again, recomputes the whole chain per element (measured slower).

This module defines a PRNG implementation (``jax.extend.random.define_prng_impl``) with the
SAME seed, split, fold_in and random_bits as JAX's default ``threefry2x32`` (partitionable
mode, JAX's default), computed by an unrolled hash whose two output words are materialised
behind ``lax.optimization_barrier``: each hash is one loop fusion, consumed, never
recomputed. :func:`as_fused` re-types a standard threefry key (same key data); every key
and number derived from it is bit for bit what the standard key would give
(``tests/test_fused_threefry.py`` checks split, fold_in, bits of every width, uniform,
normal, under jit and vmap).

Keys of other implementations, threefry keys while ``jax_threefry_partitionable`` is off
(their bits would differ), and every key when JAX's default backend is not the CPU (GPUs
lower threefry to a fused kernel of their own) are returned unchanged by :func:`as_fused`.
``jax.random.poisson`` accepts only JAX's own threefry keys: code that draws from it passes
:func:`as_standard` of its key (the same bits).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import define_prng_impl, threefry_prng_impl

# Threefry-2x32, 20 rounds (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"):
# rotation constants of the two alternating groups of four rounds, and the key-schedule parity.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _hash(k1, k2, x1, x2) -> tuple[jax.Array, jax.Array]:
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = _rotl(x2, r) ^ x1
        x1 = x1 + ks[(block + 1) % 3]
        x2 = x2 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


@jax.custom_batching.custom_vmap
def threefry2x32(k1, k2, x1, x2) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash of counter words (x1, x2) under key words (k1, k2), all uint32
    and broadcastable, unrolled; the two output words are materialised (see the module
    docstring) by computing them in the body of a while loop whose single trip XLA cannot
    see at compile time (``lax.optimization_barrier`` is expanded away before fusion on CPU)."""
    shape = jnp.broadcast_shapes(*(jnp.shape(a) for a in (k1, k2, x1, x2)))
    args = tuple(jnp.broadcast_to(jnp.asarray(a, np.uint32), shape) for a in (k1, k2, x1, x2))
    # trip count 1, opaque to XLA: (k1 >> 31) >> 1 is 0 for every uint32
    trips = (args[0].ravel()[0] >> np.uint32(31)) >> np.uint32(1)

    def body(carry):
        i, y1, y2 = carry
        y1, y2 = _hash(args[0], args[1], y1, y2)
        return i + np.uint32(1), y1, y2

    _, y1, y2 = jax.lax.while_loop(lambda c: c[0] <= trips, body, (np.uint32(0), args[2], args[3]))
    return y1, y2


@threefry2x32.def_vmap
def _threefry2x32_vmap(axis_size, in_batched, k1, k2, x1, x2):
    # Elementwise in every argument: broadcast the unbatched ones and hash the whole batch
    # at once (one while loop with an unbatched trip count, not a batched predicate).
    args = [a if b else jnp.broadcast_to(a, (axis_size,) + jnp.shape(a)) for a, b in zip((k1, k2, x1, x2), in_batched)]
    rank = max(jnp.ndim(a) for a in args)
    args = [a.reshape(a.shape[:1] + (1,) * (rank - a.ndim) + a.shape[1:]) for a in args]
    return threefry2x32(*args), (True, True)


_MAX_DRAWS = 2**32 - 1  # counters whose high word is 0: every size this module computes itself


def _counters(shape: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """(high, low) uint32 words of each element's row-major flat index, as JAX's
    partitionable threefry counts them, for sizes up to ``_MAX_DRAWS`` (high words 0)."""
    low = jax.lax.iota(np.uint32, _size(shape)).reshape(shape) if shape else jnp.zeros((), np.uint32)
    return jnp.zeros(shape, np.uint32), low


def _size(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _split(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    if _size(shape) > _MAX_DRAWS:  # 64-bit counters: JAX's own (rolled) hash, the same bits
        return threefry_prng_impl.split(key, tuple(shape))
    hi, lo = _counters(tuple(shape))
    b1, b2 = threefry2x32(key[0], key[1], hi, lo)
    return jnp.stack([b1, b2], axis=-1)


def _fold_in(key: jax.Array, data) -> jax.Array:
    c = threefry_prng_impl.seed(jnp.asarray(data, np.uint32))  # the counter pair JAX hashes
    b1, b2 = threefry2x32(key[0], key[1], c[0], c[1])
    return jnp.stack([b1, b2])


def _random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    if bit_width not in (8, 16, 32, 64):
        raise TypeError(f"fused threefry: bit_width must be 8, 16, 32 or 64, got {bit_width}")
    if _size(shape) > _MAX_DRAWS:  # 64-bit counters: JAX's own (rolled) hash, the same bits
        return threefry_prng_impl.random_bits(key, bit_width, tuple(shape))
    hi, lo = _counters(tuple(shape))
    b1, b2 = threefry2x32(key[0], key[1], hi, lo)
    if bit_width == 64:
        return (b1.astype(jnp.uint64) << np.uint64(32)) | b2.astype(jnp.uint64)
    bits = b1 ^ b2
    return bits if bit_width == 32 else bits.astype({8: np.uint8, 16: np.uint16}[bit_width])


FUSED_THREEFRY = define_prng_impl(
    key_shape=(2,),
    seed=threefry_prng_impl.seed,
    split=_split,
    random_bits=_random_bits,
    fold_in=_fold_in,
    name="threefry2x32_fused",
    tag="fry_fused",
)


def _fused_dtype():
    return jax.random.key(0, impl=FUSED_THREEFRY).dtype


def is_fused(key: jax.Array) -> bool:
    """Whether ``key`` is a typed key of this implementation."""
    return key.dtype == _fused_dtype()


def as_fused(key: jax.Array) -> jax.Array:
    """``key`` (typed, any shape) re-typed to the fused implementation with the same key data
    when it is a standard threefry key in partitionable mode and JAX's default backend is
    the CPU; otherwise unchanged."""
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise TypeError(f"as_fused: expected a typed PRNG key (jax.random.key), got dtype {key.dtype}")
    if key.dtype == _fused_dtype():
        return key
    if str(jax.random.key_impl(key)) != "threefry2x32" or not jax.config.jax_threefry_partitionable:
        return key
    if jax.default_backend() != "cpu":  # GPUs have JAX's own fused threefry kernel
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=FUSED_THREEFRY)


def as_standard(key: jax.Array) -> jax.Array:
    """A fused key re-typed back to JAX's own threefry (the same key data, the same draws);
    other keys unchanged. For the one sampler JAX restricts to its own threefry keys,
    ``jax.random.poisson``."""
    if key.dtype != _fused_dtype():
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key), impl="threefry2x32")


def key_dtype_like(key_dtype):
    """The dtype :func:`as_fused` gives keys of ``key_dtype``."""
    return jax.eval_shape(as_fused, jax.ShapeDtypeStruct((), key_dtype)).dtype
