"""The `viscover` command line: ingest, index, search, delete, info, backbones."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from viscover.config import Settings
from viscover.errors import ViscoverError
from viscover.features import METHODS, list_backbones
from viscover.index import METRICS
from viscover.ingest import CropBox
from viscover.search import Engine

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@dataclass
class _GlobalOptions:
    """Options given before the command name."""

    home: Path | None = None
    quiet: bool = False


_options = _GlobalOptions()


@app.callback()
def _global(
    home: Annotated[Path | None, typer.Option(help="project data directory [env VISCOVER_HOME]")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    _options.home, _options.quiet = home, quiet
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


def _engine(**settings: object) -> Engine:
    """An engine with the command's setting overrides; unset options fall back to env and defaults."""
    fields = {k: v for k, v in {"home": _options.home, **settings}.items() if v is not None}
    return Engine(Settings(**fields))


def _progress() -> bool:
    return not _options.quiet


@app.command("ingest")
def ingest_command(
    path: Annotated[Path, typer.Argument(help="folder (subfolder = category) or manifest (.csv, .jsonl)")],
) -> None:
    """Add images to the catalog. Re-running is idempotent and resumes an interrupted ingest."""
    with _engine() as engine:
        report = engine.ingest(path, progress=_progress())
        for where, reason in report.failures:
            typer.echo(f"skipped {where}: {reason}", err=True)
        typer.echo(f"ingest: {report.summary()}; catalog has {len(engine.catalog)} pins")


@app.command("index")
def index_command(
    backbone: Annotated[str | None, typer.Option(help="backbone name (see `viscover backbones`)")] = None,
    layer: Annotated[str | None, typer.Option(help="layer tap, e.g. pool, logits, fc6")] = None,
    binarizer: Annotated[str | None, typer.Option(help=f"one of {', '.join(METHODS)}")] = None,
    bits: Annotated[int | None, typer.Option(help="code length in bits (multiple of 8)")] = None,
    index_spec: Annotated[str | None, typer.Option("--index", help="FAISS binary index: BFlat, BIVF1024…")] = None,
    runtime: Annotated[str | None, typer.Option(help="auto, onnx or torch")] = None,
    batch_size: Annotated[int | None, typer.Option(help="images per model call")] = None,
) -> None:
    """Extract features for pins not yet indexed, binarize them and update the search index."""
    options = dict(
        backbone=backbone,
        layer=layer,
        binarizer=binarizer,
        code_bits=bits,
        index=index_spec,
        runtime=runtime,
        batch_size=batch_size,
    )
    with _engine(**options) as engine:
        report = engine.index(progress=_progress())
        for where, reason in report.failures:
            typer.echo(f"skipped {where}: {reason}", err=True)
        speed = f" at {report.images_per_second:.1f} img/s ({report.runtime})" if report.extracted else ""
        typer.echo(
            f"index: extracted {report.extracted} new{speed}; {report.indexed} pins in the "
            f"{report.bits}-bit {engine.settings.index} index{' (rebuilt)' if report.rebuilt else ''}"
        )


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="image path, URL, or pin id")],
    crop: Annotated[str | None, typer.Option(help="search only this region: x,y,w,h in pixels")] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="number of results")] = 10,
    metric: Annotated[str, typer.Option(help=f"one of {', '.join(METRICS)}")] = "hamming",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Visual search: the pins nearest to an image, a pin, or a crop of either."""
    box = CropBox.parse(crop) if crop else None
    with _engine() as engine:
        hits = engine.search(query, crop=box, k=k, metric=metric)
    if as_json:
        rows = [
            {
                **asdict(hit.pin),
                "rank": hit.rank,
                "distance": hit.distance,
                "near_duplicates": list(hit.near_duplicates),
            }
            for hit in hits
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'rank':>4}  {'distance':>9}  {'pin':<18} {'category':<20} location")
    for hit in hits:
        dups = f"  (+{len(hit.near_duplicates)} near-duplicates)" if hit.near_duplicates else ""
        typer.echo(
            f"{hit.rank:>4}  {hit.distance:>9.3f}  {hit.pin.pin_id:<18} "
            f"{hit.pin.category or '-':<20} {hit.pin.location}{dups}"
        )


@app.command("delete")
def delete_command(pin_ids: Annotated[list[str], typer.Argument(help="pin ids to remove")]) -> None:
    """Remove pins from the catalog and the index."""
    with _engine() as engine:
        typer.echo(f"deleted {engine.delete(pin_ids)} pins")


@app.command("info")
def info_command() -> None:
    """What is stored under the home directory."""
    with _engine() as engine:
        visual = engine.visual_index
        typer.echo(f"home: {engine.settings.home}\npins: {len(engine.catalog)}")
        if visual is not None:
            typer.echo(
                f"index: {len(visual.codes)} codes, {visual.binarizer.bits}-bit {visual.binarizer.method}"
                f" over {visual.model}, FAISS {visual.codes.spec}"
            )


@app.command("backbones")
def backbones_command() -> None:
    """List the registered backbones and their named layers."""
    for name, spec in list_backbones().items():
        typer.echo(f"{name:<20} {spec.description}")


def main() -> None:
    try:
        app()
    except (ViscoverError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
