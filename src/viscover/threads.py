"""Thread counts inside the numeric libraries, set on purpose: on two shared cores FAISS's default OpenMP
threads made one exact search over 1M codes 99x slower while two other processes were busy
(docs/results/read-path.md).

FAISS (OpenMP) counts threads per calling thread, so `limit_threads` is called by each thread that searches
or indexes. ONNX Runtime takes its count per session, when the session is made. PyTorch has one count for
the whole process, set where a PyTorch model is loaded (`torch_threads`).
"""

from __future__ import annotations

import ctypes

import faiss

M_ARENA_MAX = -8  # glibc's mallopt parameter for the number of malloc arenas


def limit_threads(count: int) -> None:
    """Run FAISS on `count` threads in the calling thread from now on."""
    faiss.omp_set_num_threads(count)


def torch_threads(count: int) -> None:
    """Run PyTorch on `count` threads in this process (its count is process-wide)."""
    import torch

    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def limit_malloc_arenas(count: int) -> bool:
    """Let the process's threads share at most `count` glibc malloc arenas (True when glibc took it). Otherwise
    each of a server's request threads grows an arena of its own, and resident memory creeps as they fragment."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return mallopt(M_ARENA_MAX, count) == 1
