"""Cold start of the command line: wall time of whole `viscover` processes (interpreter start, imports, opening
the home, loading the index and the cached ONNX export, one search), median of several runs, beside the bare
interpreter and `import torch` (what every search paid before the read path stopped importing PyTorch),
in the same run.

    python benchmarks/cold_search.py                      # builds a small Caltech-101 home first
    python benchmarks/cold_search.py --home .viscover     # or times an existing, indexed home

`--release-src DIR` adds release 0.1.0's search (its `src/`, e.g. from `git worktree add /tmp/release d332edc`)
on a home of its own built from the same images, as the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
CALTECH = SHARED / "datasets" / "caltech101"
VISCOVER = str(Path(sys.executable).parent / "viscover")


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
    return elapsed


def small_home(root: Path, viscover: list[str]) -> Path:
    """Five Caltech-101 classes, ten images each, ingested and indexed (this also caches the ONNX export)."""
    home = root / "home"
    images = root.parent / "images"
    for category in ("accordion", "airplanes", "Leopards", "Motorbikes", "pagoda"):
        (images / category).mkdir(parents=True, exist_ok=True)
        for number in range(1, 11):
            path = CALTECH / category / f"image_{number:04d}.jpg"
            if not (images / category / path.name).exists():
                (images / category / path.name).symlink_to(path)
    for step in (["ingest", str(images)], ["index"]):
        subprocess.run([*viscover, "-q", "--home", str(home), *step], check=True, capture_output=True)
    return home


def release_command(source: Path) -> list[str]:
    """Release 0.1.0's command line, run from its source tree with this environment's packages."""
    return ["env", f"PYTHONPATH={source}", sys.executable, "-c", "from viscover.cli import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="an indexed home (default: build a small one)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--query", type=Path, default=CALTECH / "Leopards" / "image_0020.jpg")
    parser.add_argument("--release-src", type=Path, help="release 0.1.0's src/ folder, timed as the baseline")
    args = parser.parse_args()
    os.environ.setdefault("VISCOVER_MODELS_DIR", str(SHARED / "models"))
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or small_home(Path(tmp) / "current", [VISCOVER])
        pin_id = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from viscover import Searcher; print(next(iter(Searcher.open({str(home)!r}).catalog)).pin_id)",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        search = [VISCOVER, "--home", str(home), "search"]
        cases = [
            ("python -c pass (interpreter)", [sys.executable, "-c", "pass"]),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
            ("viscover --help", [VISCOVER, "--help"]),
            ("viscover search IMAGE", [*search, str(args.query), "-k", "10"]),
            ("viscover search IMAGE --crop", [*search, str(args.query), "--crop", "10,20,100,150", "-k", "10"]),
            ("viscover search PIN_ID", [*search, pin_id, "-k", "10"]),
        ]
        if args.release_src:
            release = release_command(args.release_src.resolve())
            release_home = small_home(Path(tmp) / "release", release)
            cases.append(
                (
                    "release 0.1.0: search IMAGE",
                    [*release, "--home", str(release_home), "search", str(args.query), "-k", "10"],
                )
            )
        for _, command in cases:  # warm the page cache once, as a user's second search would find it
            wall_time(command)
        print(f"median and min wall time of {args.runs} runs each; home {home}")
        print(f"{'command':<32} {'median s':>9} {'min s':>7}")
        for label, command in cases:
            times = [wall_time(command) for _ in range(args.runs)]
            print(f"{label:<32} {statistics.median(times):>9.3f} {min(times):>7.3f}")


if __name__ == "__main__":
    main()
