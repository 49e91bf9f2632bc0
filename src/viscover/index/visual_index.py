"""A persisted binary index: the binarizer learned from the catalog plus the FAISS index of its codes,
saved together in one file written atomically (temporary file, fsync, rename)."""

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
    """Binary codes of one feature space, searchable by Hamming distance. `model` names what was coded: a
    model key (`backbone/layer@digest`) for whole images, an object run for objects."""

    model: str
    binarizer: Binarizer
    codes: VectorIndex
    fitted_on: int = 0  # catalog vectors when the binarizer was learnt (from a sample of them, maybe)

    @property
    def bits(self) -> int:
        return self.binarizer.code_bits_

    def save(self, path: Path) -> None:
        state = {"model": self.model, "spec": self.codes.spec, "fitted_on": self.fitted_on}
        arrays = {f"binarizer_{k}": v for k, v in self.binarizer.to_arrays().items()}
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, state=np.array(json.dumps(state)), index=self.codes.to_bytes(), **arrays)
            handle.flush()
            os.fsync(handle.fileno())

    @classmethod
    def load(cls, path: Path) -> VisualIndex:
        with np.load(path) as data:
            state = json.loads(str(data["state"]))
            arrays = {k.removeprefix("binarizer_"): data[k] for k in data.files if k.startswith("binarizer_")}
            index_bytes = data["index"]
        if "code_bits" not in arrays:  # written by release 0.1.0, before the estimator API
            arrays["code_bits"] = arrays["bits"]
            arrays["bits"] = np.array(-1 if state["requested_bits"] is None else state["requested_bits"])
            arrays["n_samples_fit"] = np.array(state["fitted_on"])
        binarizer = Binarizer.from_arrays(arrays)
        codes = VectorIndex.from_bytes(state["spec"], "hamming", binarizer.code_bits_, index_bytes)
        return cls(state["model"], binarizer, codes, state.get("fitted_on", binarizer.n_samples_fit_))
