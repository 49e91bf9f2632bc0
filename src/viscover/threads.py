"""Thread counts inside the numeric libraries, set on purpose: on two shared cores FAISS's default OpenMP
threads made one exact search over 100k codes take 33 ms instead of 0.12 ms."""

from __future__ import annotations

import sys

import faiss


def limit_threads(count: int) -> None:
    """Run FAISS (OpenMP, which counts threads per calling thread) and PyTorch, if loaded, on `count`
    threads from the calling thread on. ONNX Runtime sessions take their count when they are created."""
    faiss.omp_set_num_threads(count)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)
