"""Pin every thread pool of a job to the number of threads its rule declares.

Why: an OpenMP pool larger than the cores a job really gets collapses when the machine is busy
(a search candidate that takes 0.57 s with one thread took 7-35 s with torch's default pool while
other processes kept the two cores busy). ``metantk-nas --threads N`` therefore sets torch's
intra- and inter-op pools, OpenMP, MKL, OpenBLAS and any BLAS numpy has already loaded to ``N``.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: Variables read by OpenMP, MKL, OpenBLAS, numexpr and Accelerate when they start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def limit_threads(threads: int) -> None:
    """Use exactly ``threads`` threads in this process and in the processes it starts.

    Imports torch: its inter-op pool can only be sized before it first runs, so it is sized here.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads: expected an integer >= 1, got {threads!r}")
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    if "numpy" in sys.modules:  # its BLAS read the variables already
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    import torch

    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        # Fails once inter-op work has started (only possible when main() runs twice in one process).
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(threads)
