"""Importing rec_jax starts no XLA backend: ``jax.distributed.initialize`` (multi-process
runs) and forced host device counts must still be possible after the imports."""
import subprocess
import sys

SCRIPT = """
import rec_jax, rec_jax.online, rec_jax.policies, rec_jax.sim, rec_jax.fused_threefry, rec_jax.distributed
from jax._src import xla_bridge
assert not xla_bridge._backends, sorted(xla_bridge._backends)
print("COLD_OK")
"""


def test_importing_rec_jax_initialises_no_backend():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "COLD_OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
