"""The persisted visual index: the binarizer learned from the catalog plus the FAISS index of its codes,
saved together in one file written atomically (temporary file, then rename)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viscover.features.binarize import Binarizer
from viscover.index.vector_index import VectorIndex
from viscover.storage import atomic_path


@dataclass
class VisualIndex:
    """Binary codes of one feature space (`model`), searchable by Hamming distance."""

    model: str
    binarizer: Binarizer
    codes: VectorIndex
    fitted_on: int  # how many vectors the binarizer learned from; refit when the catalog doubles
    requested_bits: int | None  # the code length asked for (small catalogs may learn fewer bits)

    def save(self, path: Path) -> None:
        state = {
            "model": self.model,
            "spec": self.codes.spec,
            "fitted_on": self.fitted_on,
            "requested_bits": self.requested_bits,
        }
        arrays = {f"binarizer_{k}": v for k, v in self.binarizer.to_arrays().items()}
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, state=np.array(json.dumps(state)), index=self.codes.to_bytes(), **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path) -> VisualIndex | None:
        if not path.exists():
            return None
        with np.load(path) as data:
            state = json.loads(str(data["state"]))
            binarizer = Binarizer.from_arrays(
                {k.removeprefix("binarizer_"): data[k] for k in data.files if k.startswith("binarizer_")}
            )
            codes = VectorIndex.from_bytes(state["spec"], "hamming", binarizer.bits, data["index"])
        return cls(state["model"], binarizer, codes, state["fitted_on"], state["requested_bits"])
