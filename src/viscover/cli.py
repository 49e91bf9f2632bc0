"""The `viscover` command line: ingest, index, search, flashlight, lens, terms, related, delete, info, verify,
backup, restore, detect, objects, shard, eval, serve."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer
from typer.core import TyperGroup

from viscover.box import Box
from viscover.config import Settings
from viscover.errors import BadArgumentError, BadSettingError, UnknownPinError, ViscoverError
from viscover.features import METHODS, list_backbones
from viscover.index import METRICS
from viscover.ingest import read_bytes
from viscover.search import BatchRunner, BytesQuery, Engine, PinQuery, Query, Searcher, SearchHit
from viscover.threads import limit_malloc_arenas

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
_DEFAULTS = Settings.model_fields  # help texts name the settings' defaults, which live there alone


@dataclass
class _GlobalOptions:
    """Options given before the command name."""

    home: Path | None = None
    models_dir: Path | None = None
    quiet: bool = False


_options = _GlobalOptions()


@app.callback()
def _global(
    home: Annotated[Path | None, typer.Option(help="project data directory [env VISCOVER_HOME]")] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="folder of model files, e.g. ../shared/models [env VISCOVER_MODELS_DIR]")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    _options.home, _options.models_dir, _options.quiet = home, models_dir, quiet
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")


def _settings(**overrides: object) -> Settings:
    """The command's setting overrides; unset options fall back to env and defaults."""
    given = {"home": _options.home, "models_dir": _options.models_dir, **overrides}
    return Settings.load(**{k: v for k, v in given.items() if v is not None})


def _engine(**overrides: object) -> Engine:
    return Engine(_settings(**overrides))


def _echo_failures(failures: list[tuple[str, str]]) -> None:
    for where, reason in failures:
        typer.echo(f"skipped {where}: {reason}", err=True)


def _progress() -> bool:
    return not _options.quiet


@app.command("ingest")
def ingest_command(
    path: Annotated[Path, typer.Argument(help="folder (subfolder = category) or manifest (.csv, .jsonl)")],
) -> None:
    """Add images to the catalog. Re-running is idempotent and resumes an interrupted ingest."""
    with _engine() as engine:
        report = engine.ingest(path, progress=_progress())
        _echo_failures(report.failures)
        typer.echo(f"ingest: {report.summary()}; catalog has {len(engine.catalog)} pins")


RAY_HELP = "run the models on Ray Data: `local` (a Ray started here) or a Ray cluster's address (viscover[cluster])"


def _distributed() -> ModuleType:
    """`viscover.distributed`, which `--ray` needs, or an error saying how to install it."""
    try:
        import viscover.distributed
    except ImportError:
        raise BadSettingError("--ray needs Ray: pip install 'viscover[cluster]'") from None
    return viscover.distributed


def _ray_runner(address: str | None, settings: Settings) -> BatchRunner | None:
    """The Ray runner `--ray` asks for (None: run in this process)."""
    if address is None:
        return None
    return _distributed().RayRunner(settings, None if address == "local" else address)


@app.command("index")
def index_command(
    backbone: Annotated[str | None, typer.Option(help="backbone name (see `viscover backbones`)")] = None,
    layer: Annotated[str | None, typer.Option(help="layer tap, e.g. pool, logits, fc6")] = None,
    binarizer: Annotated[str | None, typer.Option(help=f"one of {', '.join(METHODS)}")] = None,
    bits: Annotated[int | None, typer.Option(help="code length in bits (multiple of 8)")] = None,
    index_spec: Annotated[str | None, typer.Option("--index", help="FAISS binary index: BFlat, BIVF1024…")] = None,
    runtime: Annotated[str | None, typer.Option(help="auto, onnx or torch")] = None,
    batch_size: Annotated[int | None, typer.Option(help="images per model call")] = None,
    on_ray: Annotated[str | None, typer.Option("--ray", help=RAY_HELP, metavar="local|ADDRESS")] = None,
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
        report = engine.index(progress=_progress(), runner=_ray_runner(on_ray, engine.settings))
        _echo_failures(report.failures)
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
    objects: Annotated[
        bool, typer.Option("--objects", help="object search: scenes containing objects like the query")
    ] = False,
) -> None:
    """Visual search: the pins nearest to an image, a pin, or a crop of either."""
    settings = _settings()
    typed = _query(query, Box.parse(crop) if crop else None, settings)
    with Searcher(settings) as searcher:
        try:
            hits = searcher.search_objects(typed, k) if objects else searcher.search(typed, k, metric)
        except UnknownPinError:
            if isinstance(typed, PinQuery):
                raise UnknownPinError(f"{query!r} is neither an image file nor a pin id in the catalog") from None
            raise
    if as_json:
        typer.echo(json.dumps([_hit_record(hit) for hit in hits], indent=2))
        return
    if objects:
        typer.echo(f"{'rank':>4}  {'distance':>9}  {'pin':<18} {'object':<22} {'box (x0,y0,x1,y1)':<26} location")
        for hit in hits:
            o = hit.object
            box_text = ",".join(f"{v:.0f}" for v in o.box)
            typer.echo(
                f"{hit.rank:>4}  {hit.distance:>9.3f}  {hit.pin_id:<18} {f'{o.label} {o.score:.2f}':<22} "
                f"{box_text:<26} {hit.pin.location}"
            )
        return
    typer.echo(f"{'rank':>4}  {'distance':>9}  {'similar':>7}  {'pin':<18} {'category':<20} location")
    for hit in hits:
        dups = f"  (+{len(hit.near_duplicates)} near-duplicates)" if hit.near_duplicates else ""
        typer.echo(
            f"{hit.rank:>4}  {hit.distance:>9.3f}  {hit.similarity:>7.3f}  {hit.pin_id:<18} "
            f"{hit.pin.category or '-':<20} {hit.pin.location}{dups}"
        )


def _query(text: str, crop: Box | None, settings: Settings) -> Query:
    """IMAGE_OR_PIN as typed: an http(s) URL or an existing file is read as image bytes (here, in the command
    line, never in the library); anything else is a pin id."""
    if text.startswith(("http://", "https://")) or Path(text).is_file():
        return BytesQuery(read_bytes(text, settings.fetch_timeout_s), crop, name=text)
    return PinQuery(text, crop)


def _hit_record(hit: SearchHit) -> dict:
    record = {
        **asdict(hit.pin),
        "rank": hit.rank,
        "source": hit.source,
        "metric": hit.metric,
        "distance": hit.distance,
        "code_bits": hit.code_bits,
        "similarity": hit.similarity,
        "calibrated": hit.calibrated,
        "near_duplicates": list(hit.near_duplicates),
    }
    if hit.object is not None:
        record["object"] = {**asdict(hit.object), "box": list(hit.object.box)}
    return record


@app.command("flashlight")
def flashlight_command(
    query: Annotated[str, typer.Argument(help="image path, URL, or pin id")],
    crop: Annotated[str | None, typer.Option(help="search only this region: x,y,w,h in pixels")] = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="number of results")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Flashlight: results with their annotations, and for a whole image the object dots worth showing."""
    from viscover.flashlight import Flashlight

    settings = _settings()
    typed = _query(query, Box.parse(crop) if crop else None, settings)
    with Searcher(settings) as searcher:
        look = Flashlight(searcher).look(typed, k)
    dots = look.dots or []
    if as_json:
        record = {
            "results": [_hit_record(hit) for hit in look.hits],
            "annotations": [asdict(a) for a in look.annotations],
            "dots": None if look.dots is None else [{**asdict(d), "box": list(d.box)} for d in dots],
        }
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo("annotations: " + (", ".join(f"{a.term} ({a.score:.2f})" for a in look.annotations) or "none"))
    if look.dots is not None:
        typer.echo(f"dots: {sum(d.shown for d in dots)} shown of {len(dots)} detected")
        typer.echo(f"  {'':<6}{'object':<22} {'box (x0,y0,x1,y1)':<22} {'similar':>7} {'annot.':>7} {'conform':>7}")
        for d in dots:
            box_text = ",".join(f"{v:.0f}" for v in d.box)
            typer.echo(
                f"  {'shown' if d.shown else '-':<6}{f'{d.label} {d.score:.2f}':<22} {box_text:<22} "
                f"{d.similarity:>7.3f} {d.annotation:>7.2f} {d.conformity:>7.2f}"
            )
    typer.echo(f"{'rank':>4}  {'similar':>7}  {'pin':<18} {'category':<20} location")
    for hit in look.hits:
        typer.echo(
            f"{hit.rank:>4}  {hit.similarity:>7.3f}  {hit.pin_id:<18} {hit.pin.category or '-':<20} {hit.pin.location}"
        )


@app.command("lens")
def lens_command(
    query: Annotated[str, typer.Argument(help="photo path, URL, or pin id")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="number of results")] = 20,
    term: Annotated[str | None, typer.Option(help="steer the feed to pins carrying this annotation or colour")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Lens: what viscover understands of a photo, and one feed blended from visual, text and object search."""
    from viscover.lens import Lens

    settings = _settings()
    with Searcher(settings) as searcher:
        result = Lens(searcher).look(_query(query, None, settings), k, term)
    seen = result.understanding
    if as_json:
        record = {
            "understanding": {
                **asdict(seen),
                "objects": [{**asdict(d), "box": list(d.box)} for d in seen.objects],
            },
            "feed": [
                {
                    **_hit_record(p.candidate.hit),
                    "rank": p.rank,
                    "source": p.source,
                    "why": p.candidate.why,
                    "signals": dict(p.candidate.signals),
                }
                for p in result.feed
            ],
            "mix": [asdict(share) for share in result.mix],
            "term": result.term,
            "seconds": result.seconds,
        }
        typer.echo(json.dumps(record, indent=2))
        return
    typer.echo("annotations: " + (", ".join(f"{a.term} ({a.score:.2f})" for a in seen.annotations) or "none"))
    typer.echo("colours: " + (", ".join(f"{c.name} {c.share:.0%}" for c in seen.colours) or "none"))
    shown = [d for d in seen.objects if d.shown]
    typer.echo(
        f"objects: {len(shown)} passed the dot filter of {len(seen.objects)} detected"
        + "".join(f"; {d.label} {d.score:.2f} at {','.join(f'{v:.0f}' for v in d.box)}" for d in shown)
    )
    typer.echo(f"category: {seen.category or 'none'} (conformity {seen.conformity:.2f})")
    for share in result.mix:
        typer.echo(
            f"source {share.name}: {'fired' if share.fired else 'not fired'} ({share.reason}); "
            f"quota {share.quota:.0%}, placed {share.placed} of {share.offered}"
        )
    typer.echo(f"{'rank':>4}  {'source':<7} {'pin':<18} why")
    for placed in result.feed:
        typer.echo(f"{placed.rank:>4}  {placed.source:<7} {placed.candidate.hit.pin_id:<18} {placed.candidate.why}")


@app.command("terms")
def terms_command(
    min_df: Annotated[int | None, typer.Option(help="keep terms in at least this many pins")] = None,
) -> None:
    """Rebuild the dictionary of terms annotations may use (until then: every term in `annotation_min_df` pins)."""
    with _engine() as engine:
        threshold = min_df if min_df is not None else engine.settings.annotation_min_df
        if threshold < 1:
            raise ViscoverError(f"--min-df must be at least 1, got {threshold}")
        typer.echo(
            f"terms: the dictionary holds {engine.build_dictionary(threshold)} terms found in >= {threshold} pins"
        )


@app.command("delete")
def delete_command(pin_ids: Annotated[list[str], typer.Argument(help="pin ids to remove")]) -> None:
    """Remove pins from the catalog and the indexes."""
    with _engine() as engine:
        typer.echo(f"deleted {engine.delete(pin_ids)} pins")


@app.command("info")
def info_command() -> None:
    """What is stored under the home directory."""
    with Searcher(_settings()) as searcher:
        snapshot = searcher.snapshot()
        typer.echo(f"home: {searcher.settings.home}\npins: {len(searcher.catalog)}")
        typer.echo(f"generation: {snapshot.generation.number}")
        if snapshot.visual is not None:
            visual = snapshot.visual
            typer.echo(
                f"index: {len(visual.codes)} codes, {visual.bits}-bit {visual.binarizer.method}"
                f" over {visual.model}, FAISS {visual.codes.spec}"
            )
        if snapshot.objects is not None:
            objects = snapshot.objects
            typer.echo(
                f"object index: {len(objects.codes)} objects, {objects.bits}-bit "
                f"{objects.binarizer.method}, from {objects.model}"
            )


@app.command("verify")
def verify_command(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Check the catalog and the published indexes against each other; exit 1 on any problem."""
    from viscover.backup import verify

    report = verify(_settings())
    if as_json:
        typer.echo(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        indexed = ", ".join(f"{n} in the {kind} index" for kind, n in report.indexed.items()) or "no index"
        typer.echo(f"verify: {report.pins} pins; generation {report.generation}: {indexed}")
        for problem in report.damage:
            typer.echo(f"damage: {problem}", err=True)
        for problem in report.pending:
            typer.echo(f"pending: {problem}", err=True)
        typer.echo("verify: ok" if report.ok else "verify: problems found")
    if not report.ok:
        raise typer.Exit(1)


@app.command("backup")
def backup_command(destination: Annotated[Path, typer.Argument(help="a new folder for the copy")]) -> None:
    """Copy the home (catalog, the published index generation, uploads, trained models) while it serves."""
    from viscover.backup import backup

    report = backup(_settings(), destination)
    typer.echo(
        f"backup: {report.pins} pins, index generation {report.generation}, {report.files} files in "
        f"{report.destination}"
    )


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="a folder written by `viscover backup`")],
    replace: Annotated[bool, typer.Option("--replace", help="overwrite a home that has a catalog")] = False,
) -> None:
    """Put a backup in place of the home's catalog, indexes and files (stop its servers first)."""
    from viscover.backup import restore

    report = restore(source, _settings(), replace)
    typer.echo(f"restore: {report.pins} pins, index generation {report.generation} from {source}")


@app.command("backbones")
def backbones_command() -> None:
    """List the registered backbones and their named layers."""
    for name, spec in list_backbones().items():
        typer.echo(f"{name:<20} {spec.description}")


@app.command("detectors")
def detectors_command() -> None:
    """List the registered detectors and those trained into this home."""
    from viscover.detect import list_detectors
    from viscover.detect.trained import trained_detectors

    for name, spec in list_detectors().items():
        typer.echo(f"{name:<24} {spec.description}")
    settings = _settings()
    for name in trained_detectors(settings):
        typer.echo(f"{name:<24} trained by `viscover detect train` under {settings.home}")


class _DetectGroup(TyperGroup):
    """`viscover detect IMAGE …` runs the `image` subcommand; `viscover detect train …` trains."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["image", *args]
        return super().parse_args(ctx, args)


detect_app = typer.Typer(cls=_DetectGroup, no_args_is_help=True, help="Object detection: run or train detectors.")
app.add_typer(detect_app, name="detect")


@detect_app.command("image")
def detect_image_command(
    image: Annotated[str, typer.Argument(help="image path or URL")],
    detector: Annotated[str | None, typer.Option(help="detector name (see `viscover detectors`)")] = None,
    min_score: Annotated[float | None, typer.Option(help="drop detections below this confidence")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    draw: Annotated[Path | None, typer.Option(help="write the image with boxes drawn to this file")] = None,
) -> None:
    """Detect objects in one image: boxes, labels and scores (the default: `viscover detect IMAGE`)."""
    from viscover.detect import create_detector, dominant_object, draw_detections
    from viscover.ingest import load_image

    settings = _settings(detector=detector, min_score=min_score)
    picture = load_image(image, settings.max_image_pixels, settings.fetch_timeout_s).image
    found = create_detector(settings.detector, settings).detect(picture, settings.min_score)
    dominant = dominant_object(found, *picture.size, settings.dominant_area, settings.dominant_score)
    if draw is not None:
        draw_detections(picture, found).save(draw)
    if as_json:
        rows = [{**asdict(d), "box": list(d.box), "dominant": d is dominant} for d in found]
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(f"{len(found)} objects ({settings.detector}, score >= {settings.min_score}):")
        for d in found:
            mark = "  dominant" if d is dominant else ""
            typer.echo(f"  {d.label:<16} {d.score:.3f}  box {', '.join(f'{v:.0f}' for v in d.box)}{mark}")
    if draw is not None:
        typer.echo(f"wrote {draw}")


@detect_app.command("train")
def detect_train_command(
    data: Annotated[Path, typer.Option(help="COCO-json, Pascal-VOC or YOLO-txt dataset")],
    name: Annotated[str, typer.Option(help="name of the new detector")] = "fasterrcnn_trained",
    arch: Annotated[str, typer.Option(help="fasterrcnn or ssd")] = "fasterrcnn",
    split: Annotated[str, typer.Option(help="which split to train on (matched by name)")] = "train",
    epochs: Annotated[int, typer.Option(help="passes over the data")] = 10,
    batch_size: Annotated[int, typer.Option(help="images per step")] = 2,
    lr: Annotated[float, typer.Option(help="peak SGD learning rate (one-cycle schedule)")] = 0.01,
    match_iou: Annotated[float, typer.Option(help="IoU for a positive anchor/proposal match (paper: 0.7)")] = 0.5,
    ohem: Annotated[bool, typer.Option(help="SSD: online hard example mining instead of 3:1 negatives")] = False,
    proposals: Annotated[int, typer.Option(help="Faster R-CNN proposals kept at inference (300 or 100)")] = 300,
    image_size: Annotated[int, typer.Option(help="input size (shorter side for Faster R-CNN)")] = 384,
    trainable_blocks: Annotated[int, typer.Option(help="EfficientNet-Lite0 blocks trained, from the top")] = 8,
    seed: Annotated[int, typer.Option(help="shuffling seed")] = 0,
    max_steps: Annotated[int | None, typer.Option(help="cap on steps per epoch (smoke runs)")] = None,
) -> None:
    """Fine-tune a Faster R-CNN or SSD (EfficientNet-Lite0 backbone, ImageNet) on a detection dataset."""
    from viscover.detect import load_dataset
    from viscover.detect.train import DetectTrainConfig, train_detector

    config = DetectTrainConfig(
        name=name,
        arch=arch,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        match_iou=match_iou,
        ohem=ohem,
        proposals=proposals,
        image_size=image_size,
        trainable_blocks=trainable_blocks,
        seed=seed,
        max_steps=max_steps,
    )
    dataset = load_dataset(data, split)
    history = train_detector(dataset, config, _settings(), _progress())
    last = ", ".join(f"{k} {v:.3f}" for k, v in history[-1].items() if k != "epoch") if history else "-"
    typer.echo(f"detect train: {name} ({arch}) on {dataset.name}, {len(history)} epochs; last losses: {last}")
    typer.echo(f"use it with --detector {name} or --detectors {name}")


@app.command("shard")
def shard_command(
    shards: Annotated[int, typer.Option("--shards", min=1, max=4096, help="how many shards")],
    kind: Annotated[str, typer.Option(help="visual (pins, by pin key) or objects (by object id)")] = "visual",
    out: Annotated[
        Path | None, typer.Option(help="folder for the shards (default HOME/index/shards/KIND-GENERATION)")
    ] = None,
    on_ray: Annotated[
        str | None, typer.Option("--ray", help="build each shard as a Ray task: `local` or a Ray cluster's address")
    ] = None,
) -> None:
    """Split the published index by key (key % shards) into FAISS binary index files, to serve apart: its codes
    land as Parquet by shard (unless they landed already), then one task per shard builds its file."""
    from viscover.index.shards import run_in_threads, shard_index

    if kind not in ("visual", "objects"):
        raise BadArgumentError(f"--kind must be visual or objects, got {kind!r}")
    settings = _settings()
    run_tasks = run_in_threads
    with Searcher(settings) as searcher:
        snapshot = searcher.snapshot()
        index = searcher.require_index(getattr(snapshot, kind), "index" if kind == "visual" else "object index")
        if on_ray is not None:  # joined only once there is something to split
            distributed = _distributed()
            distributed.connect(None if on_ray == "local" else on_ray)
            run_tasks = distributed.run_on_ray
        number = snapshot.generation.number
        folder = out or settings.index_dir / "shards" / f"{kind}-{number}"
        built, landing = shard_index(index, snapshot.generation.name(kind), settings.home, folder, shards, run_tasks)
    typer.echo(
        f"shard: {len(index.codes)} {kind} codes of index generation {number} in {built} shards under {folder}, "
        f"built from their codes landed by shard under {landing}"
    )


@app.command("objects")
def objects_command(
    detector: Annotated[str | None, typer.Option(help="detector name (see `viscover detectors`)")] = None,
    min_score: Annotated[float | None, typer.Option(help="drop detections below this confidence")] = None,
    context: Annotated[float | None, typer.Option(help="grow each crop by this fraction of its box per side")] = None,
    dominant_area: Annotated[float | None, typer.Option(help="dominant object: largest box covers this share")] = None,
    dominant_score: Annotated[float | None, typer.Option(help="dominant object: or its score reaches this")] = None,
    windows: Annotated[
        bool | None, typer.Option("--windows/--no-windows", help="also index 83 sliding windows per pin")
    ] = None,
    on_ray: Annotated[str | None, typer.Option("--ray", help=RAY_HELP, metavar="local|ADDRESS")] = None,
) -> None:
    """Detect objects in every pin not yet done, store them, and index their crops for object search."""
    from viscover.search import index_objects

    options = dict(
        detector=detector,
        min_score=min_score,
        object_context=context,
        dominant_area=dominant_area,
        dominant_score=dominant_score,
        object_windows=windows,
    )
    with _engine(**options) as engine:
        report = index_objects(engine, progress=_progress(), runner=_ray_runner(on_ray, engine.settings))
    _echo_failures(report.failures)
    speed = f" in {report.seconds:.1f} s" if report.pins else ""
    remarked = " (dominance rule changed: marked again)" if report.remarked else ""
    typer.echo(
        f"objects: {report.pins} pins detected{speed}, {report.objects} objects ({report.windows} of them sliding "
        f"windows); {report.dominant} pins with a "
        f"dominant object{remarked}; {report.indexed} objects in the object index"
    )


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
    from viscover.features.finetuned import held_out_keys

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


@eval_app.command("detection")
def eval_detection_command(
    data: Annotated[Path, typer.Option(help="COCO-json, Pascal-VOC or YOLO-txt dataset")],
    split: Annotated[str, typer.Option(help="which split to evaluate (matched by name)")] = "val",
    detectors: Annotated[
        str, typer.Option(help="comma-separated detector names")
    ] = "ssd_mobilenet_v1_coco,yolox_nano,nanodet_m",
    iou: Annotated[str, typer.Option(help="comma-separated IoU thresholds")] = "0.7,0.5",
    min_score: Annotated[float, typer.Option(help="score threshold of the table (the curve sweeps all)")] = 0.5,
    groups: Annotated[
        str | None, typer.Option(help="category groups, e.g. 'Fashion=handbag,tie;Vehicles=car,bus'")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="folder for detection.md/.csv and detection-pr.png")] = None,
) -> None:
    """Precision and recall per category group at an IoU, a PR curve and latency (the paper's Table 3)."""
    from viscover.detect import create_detector, load_dataset
    from viscover.evaluate.detection import (
        DEFAULT_GROUPS,
        DetectionStudy,
        check_groups,
        parse_groups,
        run_detector,
        write_detection_report,
    )

    try:
        thresholds = [float(v) for v in _split(iou)]
    except ValueError:
        raise ViscoverError(f"--iou takes numbers separated by commas, got {iou!r}") from None
    if not all(0 < t <= 1 for t in thresholds):
        raise ViscoverError(f"IoU thresholds must be in (0, 1], got {iou}")
    dataset = load_dataset(data, split)
    chosen = parse_groups(groups) if groups else DEFAULT_GROUPS
    check_groups(chosen, dataset.classes)
    settings = _settings()
    loaded = [create_detector(name, settings) for name in _split(detectors)]
    runs = [run_detector(detector, dataset, min_score=0.05, progress=_progress()) for detector in loaded]
    study = DetectionStudy(dataset, runs, thresholds, min_score, chosen)
    command = "viscover " + " ".join(sys.argv[1:])
    typer.echo(write_detection_report(study, out, command))
    if out is not None:
        typer.echo(f"wrote {out / 'detection.md'}, {out / 'detection-pr.png'}")


@eval_app.command("dots")
def eval_dots_command(
    tune_data: Annotated[Path, typer.Option(help="detection data set whose val scenes tune the thresholds")],
    report_data: Annotated[
        Path,
        typer.Option(help="detection data set whose val scenes are reported on (its train scenes join the catalog)"),
    ],
    out: Annotated[Path | None, typer.Option(help="folder for dots.md/.csv and its plots")] = None,
    work: Annotated[
        Path | None, typer.Option(help="where the evaluation's catalogs live (default HOME/evaluations/dots)")
    ] = None,
    floor: Annotated[float, typer.Option(help="least detector score of a candidate dot")] = 0.25,
    beta: Annotated[
        float, typer.Option(min=0, help="thresholds maximise F-beta of useful dots (below 1: precision first)")
    ] = 0.5,
    min_instances: Annotated[int, typer.Option(min=1, help="judge only classes with this many objects")] = 10,
    draws: Annotated[int, typer.Option(min=1, help="bootstrap resamples of scenes")] = 1000,
    seed: Annotated[int, typer.Option(help="bootstrap seed")] = 0,
    scenes: Annotated[
        int | None, typer.Option(min=1, help="use only the first N scenes of each split (smoke runs)")
    ] = None,
    apply: Annotated[bool, typer.Option("--apply", help="save the tuned thresholds as this home's dot filter")] = False,
) -> None:
    """Which object dots to show (the paper's Table 5): tune the dot filter on one data set, report on another."""
    from viscover.flashlight.evaluate_dots import evaluate_dots, write_dots_report
    from viscover.search import write_thresholds

    settings = _settings()
    study = evaluate_dots(
        tune_data,
        report_data,
        settings,
        work or settings.home / "evaluations" / "dots",
        floor=floor,
        beta=beta,
        min_instances=min_instances,
        draws=draws,
        seed=seed,
        limit=scenes,
        progress=_progress(),
    )
    command = "viscover " + " ".join(sys.argv[1:])
    typer.echo(write_dots_report(study, out, command))
    if out is not None:
        typer.echo(f"wrote {out / 'dots.md'}, {out / 'dots.csv'}, {out / 'dots-roc.png'}, {out / 'dots-precision.png'}")
    if apply:
        path = write_thresholds(settings.home, study.chosen(), command)
        typer.echo(f"dot thresholds for {settings.home} written to {path}")


@eval_app.command("annotations")
def eval_annotations_command(
    data: Annotated[list[Path], typer.Argument(help="fashion-small and/or ikea-rooms folders")],
    out: Annotated[Path | None, typer.Option(help="folder for annotations.md/.csv and its plots")] = None,
    work: Annotated[
        Path | None, typer.Option(help="where the evaluation's homes live (default HOME/evaluations/annotations)")
    ] = None,
    holdout: Annotated[float, typer.Option(help="share of leaking units (names, rooms) held out as queries")] = 0.2,
    target: Annotated[
        float, typer.Option(min=0, max=1, help="precision the annotation threshold must reach on dev")
    ] = 0.5,
    draws: Annotated[int, typer.Option(min=1, help="bootstrap resamples of queries")] = 1000,
    seed: Annotated[int, typer.Option(help="split and bootstrap seed")] = 0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="use only the first N items of each data set (smoke runs)")
    ] = None,
) -> None:
    """Annotation precision against held-out queries' own text, beside two baselines; narrowing by a chip."""
    from viscover.flashlight.evaluate_annotations import evaluate_annotations, write_annotations_report

    settings = _settings()
    studies = evaluate_annotations(
        data,
        settings,
        work or settings.home / "evaluations" / "annotations",
        holdout=holdout,
        target=target,
        draws=draws,
        seed=seed,
        limit=limit,
        progress=_progress(),
    )
    typer.echo(write_annotations_report(studies, out, "viscover " + " ".join(sys.argv[1:])))
    if out is not None:
        typer.echo(f"wrote {out / 'annotations.md'}, {out / 'annotations.csv'} and two plots")


related_app = typer.Typer(no_args_is_help=True, help="Related Pins: learn the ranker, show a pin's related pins.")
app.add_typer(related_app, name="related")


@related_app.command("train")
def related_train_command(
    board_types: Annotated[
        Path | None, typer.Option(help='JSON lines of {"board" or "room": name, "type": kind}: category vectors')
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="auto, cooccurrence, neighbours, visual, category or text, for both kinds of query (default: "
            f"settings, {_DEFAULTS['related_warm_features'].default} for pins on some board and "
            f"{_DEFAULTS['related_cold_features'].default} for pins on none)"
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option(
            help="dominant-object variant: auto, none, A, B or C "
            f"(default: settings, {_DEFAULTS['related_variant'].default})"
        ),
    ] = None,
) -> None:
    """Learn the Related Pins ranker from the catalog's boards (run `viscover objects` first for variants A-C)."""
    from viscover.related.train import train_home

    with _engine() as engine:
        path, model, report = train_home(
            engine, board_types=board_types, feature_set=features, variant=variant, progress=_progress()
        )
    typer.echo(
        f"related: learned from {report.queries} queries ({report.rows} candidates; {report.boards} boards in "
        f"{report.folds} folds; {report.dominant_queries} queries with a dominant object) in {report.seconds:.1f} s: "
        f"{model.describe()}; saved {path}"
    )
    for kind, recall in report.dev_recall.items():
        typer.echo(
            f"  {kind} queries, recall@10 on held-out folds (± one standard error of the shortfall from the best): "
            + ", ".join(f"{f}/{v} {r:.3f} ±{report.dev_error[kind][f, v]:.3f}" for (f, v), r in recall.items())
        )


@related_app.command("show")
def related_show_command(
    pin_id: Annotated[str, typer.Argument(help="pin id")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="number of related pins")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="each feature's part of each score")] = False,
) -> None:
    """A pin's related pins, with the sources that proposed each and (--explain) why it ranks where it does."""
    from viscover.related import load_related

    with Searcher(_settings()) as searcher:
        hits = load_related(searcher).related(pin_id, k)
    if as_json:
        records = [
            {
                "rank": h.rank,
                "pin_id": h.pin.pin_id,
                "score": h.score,
                "sources": list(h.sources),
                "contributions": h.contributions,
                "category": h.pin.category,
                "location": h.pin.location,
            }
            for h in hits
        ]
        typer.echo(json.dumps(records, indent=2))
        return
    typer.echo(f"{'rank':>4}  {'score':>7}  {'pin':<18} {'sources':<26} {'category':<20} location")
    for h in hits:
        typer.echo(
            f"{h.rank:>4}  {h.score:>7.3f}  {h.pin.pin_id:<18} {'+'.join(h.sources):<26} "
            f"{h.pin.category or '-':<20} {h.pin.location}"
        )
        if explain:
            parts = sorted(h.contributions.items(), key=lambda item: -abs(item[1]))
            typer.echo("        " + ", ".join(f"{name} {value:+.3f}" for name, value in parts[:6]))


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(seed) for seed in _split(text)]
    except ValueError:
        raise BadArgumentError(f"--seeds: whole numbers separated by commas, not {text!r}") from None
    return list(dict.fromkeys(seeds))


@eval_app.command("related")
def eval_related_command(
    data: Annotated[Path, typer.Argument(help="the ikea-rooms folder (products.jsonl, rooms.jsonl)")],
    out: Annotated[Path | None, typer.Option(help="folder for related.md/.csv and its plot")] = None,
    work: Annotated[
        Path | None, typer.Option(help="where the evaluation's home lives (default HOME/evaluations/related)")
    ] = None,
    seeds: Annotated[str, typer.Option(help="room-split seeds, comma-separated")] = "0,1,2",
    test_share: Annotated[float, typer.Option(min=0.05, max=0.95, help="share of rooms held out for test")] = 0.3,
    draws: Annotated[int, typer.Option(min=1, help="bootstrap resamples of test rooms")] = 1000,
    limit: Annotated[int | None, typer.Option(min=4, help="use only the first N rooms (smoke runs)")] = None,
    folds: Annotated[
        int | None, typer.Option(min=2, help="folds of training boards to cross-fit over (default: related train's)")
    ] = None,
) -> None:
    """The paper's Table 4 as offline rows: baselines, each candidate source, and the Rank-SVM feature sets."""
    from viscover.related.evaluate import evaluate_related, write_related_report

    settings = _settings()
    study = evaluate_related(
        data,
        settings,
        work or settings.home / "evaluations" / "related",
        seeds=_seeds(seeds),
        test_share=test_share,
        draws=draws,
        limit=limit,
        folds=folds,
        progress=_progress(),
    )
    typer.echo(write_related_report(study, out, "viscover " + " ".join(sys.argv[1:])))
    if out is not None:
        typer.echo(f"wrote {out / 'related.md'}, {out / 'related.csv'} and {out / 'related-recall.png'}")


@eval_app.command("colours")
def eval_colours_command(
    data: Annotated[Path, typer.Argument(help="the fashion-small folder (styles.csv, images/)")],
    out: Annotated[Path | None, typer.Option(help="folder for colours.md/.csv and the confusion plot")] = None,
    sample: Annotated[int, typer.Option(min=1, help="products named (a seeded sample)")] = 2000,
    seed: Annotated[int, typer.Option(help="sample, k-means and bootstrap seed")] = 0,
    draws: Annotated[int, typer.Option(min=1, help="bootstrap resamples of products")] = 1000,
) -> None:
    """Lens's most salient colour against the catalog's, with and without removing the background."""
    from viscover.lens.evaluate_colours import evaluate_colours, write_colours_report

    study = evaluate_colours(data, sample=sample, seed=seed, draws=draws, progress=_progress())
    typer.echo(write_colours_report(study, out, "viscover " + " ".join(sys.argv[1:])))
    if out is not None:
        typer.echo(f"wrote {out / 'colours.md'}, {out / 'colours.csv'} and {out / 'colours-confusion.png'}")


@eval_app.command("lens")
def eval_lens_command(
    ikea: Annotated[Path, typer.Argument(help="the ikea-rooms folder (rooms.jsonl, rooms/, products/)")],
    fashion: Annotated[Path, typer.Argument(help="the fashion-small folder (styles.csv, images/)")],
    out: Annotated[Path | None, typer.Option(help="folder for lens.md/.json and its plots")] = None,
    work: Annotated[
        Path | None, typer.Option(help="where the evaluation's homes live (default HOME/evaluations/lens)")
    ] = None,
    queries: Annotated[int, typer.Option(min=1, help="fashion-small dev and test queries each, at most")] = 400,
    seed: Annotated[int, typer.Option(help="split and bootstrap seed")] = 0,
    draws: Annotated[int, typer.Option(min=1, help="bootstrap resamples of queries")] = 1000,
) -> None:
    """Object search against whole-image search on ikea-rooms; the blended feed against visual search alone."""
    from viscover.lens.evaluate import evaluate_blend, evaluate_objects, write_lens_report

    settings = _settings()
    folder = work or settings.home / "evaluations" / "lens"
    objects = evaluate_objects(ikea, settings, folder, seed, draws, _progress())
    blended = evaluate_blend(fashion, settings, folder, queries, seed, draws, _progress())
    typer.echo(write_lens_report(objects, blended, out, "viscover " + " ".join(sys.argv[1:])))
    if out is not None:
        typer.echo(f"wrote {out / 'lens.md'}, {out / 'lens.json'} and two plots")


@app.command("finetune")
def finetune_command(
    name: Annotated[str, typer.Argument(help="name of the new backbone")],
    dataset: Annotated[Path | None, typer.Option(help="labelled folder or manifest to ingest first")] = None,
    base: Annotated[str, typer.Option(help="backbone to start from")] = "efficientnet_lite0",
    epochs: Annotated[int, typer.Option(help="at most this many epochs")] = 8,
    lr: Annotated[
        float, typer.Option(help="AdamW learning rate of the new classifier (pretrained layers: a tenth)")
    ] = 1e-3,
    trainable_fraction: Annotated[float, typer.Option(help="share of parameter tensors trained, from the top")] = 0.6,
    train_fraction: Annotated[float, typer.Option(help="share of each class used for training")] = 0.4,
    val_fraction: Annotated[float, typer.Option(help="share of each class used for early stopping")] = 0.1,
    patience: Annotated[int, typer.Option(help="epochs without validation gain before stopping")] = 3,
    seed: Annotated[int, typer.Option(help="split and shuffling seed")] = 0,
    exclude: Annotated[str, typer.Option(help="labels never trained on")] = "BACKGROUND_Google",
    batch_size: Annotated[int, typer.Option(help="images per training step")] = 32,
    max_steps: Annotated[int | None, typer.Option(help="cap on steps per epoch (smoke runs)")] = None,
    head: Annotated[str, typer.Option(help="classifier: cosine (normalized softmax) or linear (softmax)")] = "cosine",
    temperature: Annotated[float, typer.Option(help="temperature of the cosine head")] = 0.05,
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
        head=head,
        temperature=temperature,
    )
    with _engine() as engine:
        if dataset is not None:
            typer.echo(f"ingest: {engine.ingest(dataset, progress=_progress()).summary()}")
        report = finetune(engine.catalog, config, engine.settings, _progress())
    typer.echo(
        f"finetune: {report.name} after {report.epochs_run} epochs, best validation accuracy "
        f"{report.best_val_accuracy:.3f}; use --backbones {report.name} and --holdout {report.name}"
    )


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1: this machine only)")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on (default 8000)")] = None,
    cluster: Annotated[
        str | None, typer.Option(help="search from Ray actors holding shards: `local`, or a Ray cluster's address")
    ] = None,
) -> None:
    """Serve the REST API (/docs) and the search page (/) over the home."""
    try:
        import uvicorn

        from viscover.serve import create_app
    except ImportError as exc:
        raise ViscoverError(f"`viscover serve` needs the serve extra ({exc}): pip install 'viscover[serve]'") from None
    settings = _settings(serve_host=host, serve_port=port, cluster=cluster)
    access = logging.getLogger("viscover.access")
    access.setLevel(logging.INFO)
    access.addHandler(logging.StreamHandler())
    access.propagate = False
    if settings.serve_host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        typer.echo(
            f"warning: serving on {settings.serve_host} without VISCOVER_API_KEY: anyone who reaches it can "
            "read and change the catalog",
            err=True,
        )
    shown = f"[{settings.serve_host}]" if ":" in settings.serve_host else settings.serve_host
    typer.echo(f"viscover: serving {settings.home} at http://{shown}:{settings.serve_port}/ (API at /docs)")
    limit_malloc_arenas(settings.serve_malloc_arenas)  # before uvicorn starts its request threads
    uvicorn.run(
        create_app(settings), host=settings.serve_host, port=settings.serve_port, access_log=False, log_level="warning"
    )


def main() -> None:
    try:
        app()
    except ViscoverError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
