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


eval_app = typer.Typer(no_args_is_help=True, help="The paper's offline evaluations, as tables and plots.")
app.add_typer(eval_app, name="eval")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


@eval_app.command("retrieval")
def eval_retrieval_command(
    dataset: Annotated[Path | None, typer.Argument(help="labelled folder or manifest to ingest first")] = None,
    backbones: Annotated[str, typer.Option(help="comma-separated backbone names")] = "efficientnet_lite0",
    layers: Annotated[str, typer.Option(help="comma-separated layer taps")] = "pool",
    binarize: Annotated[str, typer.Option(help="none, sign, median, itq[:bits], comma-separated")] = "none,itq",
    metric: Annotated[str, typer.Option(help="l2, l1, hamming, comma-separated")] = "l2,hamming",
    ks: Annotated[str, typer.Option("-k", help="comma-separated K values")] = "1,5,10",
    queries: Annotated[int, typer.Option(help="number of seeded random queries (capped by the catalog)")] = 2000,
    query_fraction: Annotated[float | None, typer.Option(help="queries as a fraction of labelled pins")] = None,
    seed: Annotated[int, typer.Option(help="query sample seed")] = 0,
    exclude: Annotated[str, typer.Option(help="labels never used as queries (kept as distractors)")] = (
        "BACKGROUND_Google"
    ),
    noise: Annotated[int, typer.Option(help="white-noise images added to the index (Figure 5)")] = 0,
    feature_map: Annotated[bool, typer.Option(help="also draw the t-SNE map of raw vs binary features")] = True,
    holdout: Annotated[
        str | None, typer.Option(help="evaluate only on pins that this fine-tuned backbone never trained on")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="folder for retrieval.md/.csv/.png")] = None,
) -> None:
    """Precision@K by class label over a grid of backbones, layers, binarizations and distances (Table 1)."""
    from viscover.evaluate import feature_map_sample, format_table, plan_grid, plot_feature_map, run_study, write_report
    from viscover.features.finetune import held_out_keys

    rows = plan_grid(_split(backbones), _split(layers), _split(binarize), _split(metric))
    excluded = [e for e in _split(exclude) if e]
    try:
        k_values = [int(k) for k in _split(ks)]
    except ValueError:
        raise ViscoverError(f"-k takes whole numbers separated by commas, got {ks!r}") from None
    with _engine() as engine:
        if dataset is not None:
            typer.echo(f"ingest: {engine.ingest(dataset, progress=_progress()).summary()}")
        if query_fraction is not None:
            if not 0 < query_fraction <= 1:
                raise ViscoverError(f"--query-fraction must be in (0, 1], got {query_fraction}")
            labelled = sum(1 for c in engine.catalog.categories().values() if c and c not in excluded)
            queries = max(1, round(query_fraction * labelled))
        only = held_out_keys(holdout, engine.settings) if holdout else None
        study = run_study(engine, rows, k_values, queries, seed, excluded, noise, _progress(), only)
        typer.echo(format_table(study))
        if out is not None:
            command = "viscover " + " ".join(sys.argv[1:])
            written = write_report(study, out, command, "Retrieval precision by class label")
            if feature_map:
                row = next((r for r in rows if r.binarization.binary), rows[0])
                raw, codes, labels = feature_map_sample(engine, row, noise=min(noise, 200), seed=seed, exclude=excluded)
                plot_feature_map(raw, codes, labels, out / "feature-map.png", f"{row.backbone}/{row.layer}", seed)
                written.append(out / "feature-map.png")
            typer.echo("wrote " + ", ".join(map(str, written)))


@app.command("finetune")
def finetune_command(
    name: Annotated[str, typer.Argument(help="name of the new backbone")],
    dataset: Annotated[Path | None, typer.Option(help="labelled folder or manifest to ingest first")] = None,
    base: Annotated[str, typer.Option(help="backbone to start from")] = "efficientnet_lite0",
    epochs: Annotated[int, typer.Option(help="at most this many epochs")] = 4,
    lr: Annotated[
        float, typer.Option(help="AdamW learning rate of the new classifier (pretrained layers: a tenth)")
    ] = 1e-3,
    trainable_fraction: Annotated[float, typer.Option(help="share of parameter tensors trained, from the top")] = 0.3,
    train_fraction: Annotated[float, typer.Option(help="share of each class used for training")] = 0.4,
    val_fraction: Annotated[float, typer.Option(help="share of each class used for early stopping")] = 0.1,
    patience: Annotated[int, typer.Option(help="epochs without validation gain before stopping")] = 2,
    seed: Annotated[int, typer.Option(help="split and shuffling seed")] = 0,
    exclude: Annotated[str, typer.Option(help="labels never trained on")] = "BACKGROUND_Google",
    batch_size: Annotated[int, typer.Option(help="images per training step")] = 32,
    max_steps: Annotated[int | None, typer.Option(help="cap on steps per epoch (smoke runs)")] = None,
) -> None:
    """Fine-tune a backbone on the catalog's labels; the rest of each class is held out for evaluation."""
    from viscover.features.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(
        name=name,
        base=base,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        trainable_fraction=trainable_fraction,
        train_fraction=train_fraction,
        val_fraction=val_fraction,
        patience=patience,
        seed=seed,
        exclude=tuple(e for e in _split(exclude) if e),
        max_steps=max_steps,
    )
    with _engine() as engine:
        if dataset is not None:
            typer.echo(f"ingest: {engine.ingest(dataset, progress=_progress()).summary()}")
        report = finetune(engine.catalog, config, engine.settings, _progress())
    typer.echo(
        f"finetune: {report.name} after {report.epochs_run} epochs, best validation accuracy "
        f"{report.best_val_accuracy:.3f}; use --backbones {report.name} and --holdout {report.name}"
    )


def main() -> None:
    try:
        app()
    except (ViscoverError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
