"""One small registry for every kind of pluggable part (backbones, detectors, and the products' sources):
names map to specs, each file of a plugin package registers its own, and a duplicate name is refused."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Generic, Protocol, TypeVar

from viscover.errors import UnknownNameError


class Named(Protocol):
    name: str


SpecT = TypeVar("SpecT", bound=Named)


class Registry(Generic[SpecT]):
    """Specs of one kind by name; the modules of `package`, if given, are imported (and so register) on
    first use."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind, self.package = kind, package
        self._specs: dict[str, SpecT] = {}
        self._loaded = False
        self._lock = threading.RLock()  # a plugin may look the registry up while it loads

    def register(self, spec: SpecT) -> SpecT:
        """Add a spec; a second spec under a taken name is a programming error."""
        if spec.name in self._specs:
            raise ValueError(f"{self.kind} {spec.name!r} is registered twice")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> SpecT:
        specs = self.all()
        if name not in specs:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; registered: {', '.join(specs)}")
        return specs[name]

    def __contains__(self, name: str) -> bool:
        return name in self.all()

    def all(self) -> dict[str, SpecT]:
        """Every registered spec, sorted by name."""
        self._load_plugins()
        return dict(sorted(self._specs.items()))

    def _load_plugins(self) -> None:
        with self._lock:
            if self._loaded or self.package is None:
                return
            self._loaded = True
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{module.name}")
