"""Start-up cost: importing viscover, asking the CLI for help, and a search with a cached ONNX export load no
heavy framework (PyTorch alone takes seconds to import); the frameworks come in only when a job needs them."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import caltech_image
from viscover import Searcher

HEAVY = ("torch", "torchvision", "fastapi", "ray", "sklearn", "matplotlib")


def modules_loaded_by(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def cli(*args: str) -> str:
    return (
        f"sys.argv = ['viscover', *{list(args)!r}]\n"
        "from viscover.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code"
    )


def test_a_plain_import_loads_no_heavy_framework() -> None:
    assert modules_loaded_by("import viscover, viscover.cli, viscover.search, viscover.detect") == []


def test_help_and_listings_load_no_heavy_framework() -> None:
    assert modules_loaded_by(cli("--help")) == []
    assert modules_loaded_by(cli("backbones")) == []
    assert modules_loaded_by(cli("detectors")) == []


def test_a_search_with_a_cached_export_loads_no_heavy_framework(indexed_home: Path) -> None:
    with Searcher.open(indexed_home) as searcher:  # the export is cached once the home is indexed
        pin_id = next(iter(searcher.catalog)).pin_id
    by_image = cli("--home", str(indexed_home), "search", str(caltech_image("Leopards", 20)), "--crop", "0,0,80,60")
    assert modules_loaded_by(by_image) == []
    assert modules_loaded_by(cli("--home", str(indexed_home), "search", pin_id, "--json")) == []


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt(M_ARENA_MAX) is glibc's")
def test_the_server_limits_malloc_arenas_on_glibc() -> None:
    """`viscover serve` calls it before its request threads start; glibc accepts the setting."""
    from viscover.threads import limit_malloc_arenas

    assert limit_malloc_arenas(2)
