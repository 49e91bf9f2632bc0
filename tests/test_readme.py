"""The README's Python example runs as written, on a small catalog instead of all of Caltech-101."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED, caltech_image

README = Path(__file__).resolve().parents[1] / "README.md"
PATHS_LINE = 'home, photos = ".viscover", "../shared/datasets/caltech101"'


def test_the_python_example_runs(caltech_subset: Path, tmp_path: Path) -> None:
    example = re.search(r"The same from Python.*?```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert example and PATHS_LINE in example.group(1)
    code = example.group(1).replace(PATHS_LINE, f"home, photos = {str(tmp_path / 'home')!r}, {str(caltech_subset)!r}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"] and rows[0][3] == "Leopards"
    assert all(0 <= float(row[1]) <= 1 for row in rows)


def run_example(product: str, home: Path, photo: Path) -> str:
    """The README's Python example for a product (`flashlight`, `lens`), run on `home` and `photo`: its output."""
    example = re.search(
        rf"```python\n(from viscover import BytesQuery, Searcher\nfrom viscover.{product}.*?)```",
        README.read_text(),
        re.DOTALL,
    )
    assert example
    code = example.group(1).replace('".viscover"', repr(str(home))).replace('"photo.jpg"', repr(str(photo)))
    env = {**os.environ, "VISCOVER_MODELS_DIR": str(SHARED / "models")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_flashlight_example_runs(indexed_home: Path) -> None:
    assert "'leopards'" in run_example("flashlight", indexed_home, caltech_image("Leopards", 21))


def test_the_lens_example_runs(indexed_home: Path) -> None:
    printed = run_example("lens", indexed_home, caltech_image("pagoda", 21))
    assert "'pagoda'" in printed and "('visual', 'visually similar" in printed
