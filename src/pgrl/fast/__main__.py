"""`python -m pgrl.fast`: compile the fast path's kernels into numba's cache now (the Makefile's install does)."""

import time

from pgrl.fast import numba_available, warm

if not numba_available():
    raise SystemExit("numba is not installed: pip install numba scipy threadpoolctl (pgrl's own dependencies)")
start = time.perf_counter()
warm()
print(f"pgrl fast-path kernels ready in {time.perf_counter() - start:.1f} s")
