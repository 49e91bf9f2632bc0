"""All of viscover's settings in one typed place: defaults, overridable by VISCOVER_* env vars and the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from viscover.errors import BadSettingError

# Related Pins' feature sets (each adds to the one before), or auto: chosen on held-out folds
RelatedFeatures = Literal["auto", "cooccurrence", "neighbours", "visual", "category", "text"]


def default_home() -> Path:
    """The per-user data directory (XDG on Linux), where catalogs live unless --home says otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "viscover"


class Settings(BaseSettings):
    """Engine settings. Every field can be set as VISCOVER_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="VISCOVER_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="project data directory")
    backbone: str = Field("efficientnet_lite0", description="feature backbone name from the registry")
    layer: str = Field("pool", description="layer tap of the backbone (see `viscover backbones`)")
    binarizer: Literal["sign", "median", "itq"] = Field(
        "itq", description="how raw features become bits (section 4 of the paper)"
    )
    code_bits: int | None = Field(256, description="bits per binary code; None keeps one bit per feature dimension")
    index: str = Field("BFlat", description="FAISS binary index factory string (BFlat, BIVF1024, BHNSW32)")
    index_nprobe: int = Field(
        16,
        ge=1,
        description="inverted lists an IVF index (BIVF…) visits per query: 16 found 99% of exact search's top 10 "
        "at 1M real codes, 25x faster (docs/results/cluster.md)",
    )
    index_ef_search: int = Field(
        128,
        ge=1,
        description="candidates an HNSW index (BHNSW…) keeps while searching: 128 found 96.5% of exact search's "
        "top 10 at 1M real codes, 6.7x faster (docs/results/cluster.md)",
    )
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="inference runtime: ONNX Runtime with a PyTorch fallback, or one of them"
    )
    batch_size: int = Field(32, ge=1)
    decode_workers: int = Field(2, ge=1, description="threads that decode and resize images ahead of the model")
    binarizer_sample: int = Field(
        20_000, ge=9, description="the binarizer learns from a seeded sample of this many vectors at most"
    )
    dedup_fraction: float = Field(
        0.02,
        ge=0,
        le=1,
        description="results differing from a better one in at most this fraction of code bits are near-duplicates",
    )
    detector: str = Field("yolox_nano", description="detector name (see `viscover detectors`)")
    min_score: float = Field(0.5, ge=0, le=1, description="detections below this confidence are dropped")
    object_context: float = Field(
        0.15, ge=0, le=1, description="object crops grow by this fraction of the box per side (section 6: context)"
    )
    object_windows: bool = Field(
        True,
        description="index 83 class-agnostic sliding windows per pin beside the detector's boxes: object search "
        "finds products COCO has no class for (docs/results/lens)",
    )
    dominant_area: float = Field(0.25, ge=0, le=1, description="dominant object: largest box covers this share")
    dominant_score: float = Field(0.9, ge=0, le=1, description="dominant object: or its score reaches this")
    max_image_pixels: int = Field(89_478_485, description="images larger than this are refused as decompression bombs")
    models_dir: Path | None = Field(
        None,
        description="where model files are found: detector folders (e.g. ssd-mobilenet-v1-coco/) and "
        "torchvision weight files (default: HOME/models)",
    )
    cache_dir: Path | None = Field(None, description="where ONNX exports are cached (default: HOME/cache)")
    allow_download: bool = Field(True, description="may fetch missing weights when a download URL is known")
    download_mirror: str | None = Field(
        None, description="base URL that replaces https://download.pytorch.org/models/ for weight downloads"
    )
    fetch_timeout_s: float = Field(20.0, description="timeout for images given by URL in a manifest")
    max_depth: int = Field(
        1000, ge=1, description="deepest result a search or a page of results may reach (k is capped by it)"
    )
    write_lock_timeout_s: float = Field(
        30.0, ge=0, description="how long a writer (ingest, index, objects, delete) waits for another to finish"
    )
    batch_threads: int | None = Field(
        None, ge=1, description="threads inside FAISS, ONNX Runtime and PyTorch for batch jobs (default: all cores)"
    )
    search_threads: int = Field(
        1, ge=1, description="threads inside FAISS, ONNX Runtime and PyTorch per search call on the serving path"
    )

    annotation_method: Literal["tfidf", "similarity"] = Field(
        "similarity",
        description="how result pins' terms are aggregated into annotations: tf-idf, or tf-idf weighted by each "
        "pin's similarity (tied with it on dev in docs/results/flashlight-annotations, and chosen there by a hair)",
    )
    annotation_depth: int = Field(20, ge=1, description="result pins whose terms make a list's annotations")
    annotation_count: int = Field(8, ge=1, description="annotations shown with a result list")
    annotation_min_df: int = Field(2, ge=1, description="terms in fewer pins never annotate (until `viscover terms`)")
    annotation_min_score: float = Field(
        0.0,
        ge=0,
        description="annotations scoring less are not shown; scores depend on a catalog's text, so `viscover eval "
        "annotations` reports the score at which a catalog's annotations are mostly right (default: show all)",
    )
    # The thresholds are docs/results/flashlight-dots' tuned "all three" row. A catalog pin's dots are its stored
    # objects, detected at `min_score`: a lower detector threshold reaches uploads only.
    dots: bool | None = Field(
        None,
        description="show object dots (Flashlight); unset: on where `viscover objects` has stored the home's objects "
        "(a dot's conformity reads them, and the detector's model files are there); see docs/results/flashlight-dots",
    )
    dot_conformity: Literal["label", "largest"] = Field(
        "label",
        description="a dot's category conformity: the share of its top results in which the detector saw the "
        "dot's own label (their stored objects, else their category), or the paper's largest share of them with "
        "one category (among those with a category); docs/results/flashlight-dots compares the two. The default "
        "thresholds are tuned for the default measure: after changing it, run `viscover eval dots --apply`",
    )
    dot_conformity_depth: int = Field(10, ge=1, description="a dot's top results its conformity is measured on")
    dot_min_detector: float = Field(0.3, ge=0, le=1, description="a dot's least detector score")
    dot_min_similarity: float = Field(0.0, ge=0, le=1, description="a dot's least top-result similarity")
    dot_min_annotation: float = Field(0.0, ge=0, description="a dot's least top-annotation score")
    dot_min_conformity: float = Field(0.5, ge=0, le=1, description="a dot's least category conformity")
    # Related Pins: the ranker `viscover related train` learns by default (docs/results/related-ikea compares all)
    # one feature set per kind of query, chosen on inner splits of ikea-rooms' training rooms
    # (docs/results/related-auto.md): for warm pins + visual found 2.1% more room-mates than `auto`'s choices on
    # held-out folds [0.4%, 4.2%]; cold pins need the text features (as `auto` found on every seed)
    related_warm_features: RelatedFeatures = Field(
        "visual",
        description="Related Pins ranker features for pins on some board: co-occurrence only (the paper's control), "
        "+ the boards of a pin's text neighbours, + visual, + category cross, + text, or auto: the smallest set "
        "from co-occurrence with the neighbours' boards up whose held-out recall (on folds of the training boards, "
        "with the variant chosen with it) falls short of the best by no more than one standard error",
    )
    related_cold_features: RelatedFeatures = Field(
        "text", description="Related Pins ranker features for pins on no board (the same choices)"
    )
    related_variant: Literal["auto", "none", "A", "B", "C"] = Field(
        "none",
        description="Related Pins dominant-object variant: none, the paper's A, B or C, or auto: for warm and for "
        "cold queries, the first within one standard error (of its shortfall) of the best on held-out folds of the "
        "training boards",
    )
    related_text_words: int = Field(
        4,
        ge=1,
        le=20,
        description="Related Pins text candidates match any of this many of a pin's rarest description words "
        "(chosen on held-out folds of training boards: benchmarks/related_text_words.py)",
    )
    # Lens: which sources blend, their triggers, and their precision relative to visual search's on the same
    # queries, from `viscover eval lens` (docs/results/lens): the blender gives each source that fires a share of
    # the feed in proportion to it. Text's is by its top annotation's score, measured on fashion-small (category
    # P@10); object search's on ikea-rooms (P@10 of rooms holding the product). The text trigger was set on dev.
    lens_sources: list[Literal["visual", "text", "object"]] = Field(
        default_factory=lambda: ["visual", "text", "object"], description="Lens sources that may fire"
    )
    lens_depth: int = Field(60, ge=1, le=1000, description="candidates each Lens source offers the blender")
    lens_text_queries: int = Field(3, ge=1, description="top annotations Lens searches the text index with")
    lens_text_min_annotation: float = Field(
        1.684,
        ge=0,
        description="the text source fires only when the top annotation scores at least this (annotation scores "
        "depend on a catalog's text: `viscover eval lens` sets it on fashion-small)",
    )
    lens_objects: int = Field(3, ge=1, description="detected objects (passing the dot filter) Lens searches scenes for")
    lens_text_precision: list[tuple[float, Annotated[float, Field(ge=0)]]] = Field(
        default_factory=lambda: [(1.684, 0.673), (3.37, 1.164), (3.921, 0.965), (4.715, 1.108), (5.983, 1.359)],
        description="the text source's precision relative to visual search's, by its top annotation's score: "
        "(least score, relative precision) pairs",
    )
    lens_object_precision: float = Field(
        1.743, ge=0, description="the object source's precision relative to visual search's"
    )
    cluster: str | None = Field(
        None,
        description="serve search from Ray actors holding shards of the index: `local` starts Ray on this machine, "
        "else a Ray address (needs viscover[cluster]); default: the index in this process",
    )
    cluster_shards: int = Field(4, ge=1, le=4096, description="shards an index is split into for a cluster")
    serve_host: str = Field("127.0.0.1", description="address `viscover serve` binds (loopback unless asked)")
    serve_port: int = Field(8000, ge=0, le=65535, description="port `viscover serve` listens on")
    serve_malloc_arenas: int = Field(
        2, ge=1, le=64, description="glibc malloc arenas `viscover serve` lets its request threads share"
    )
    api_key: SecretStr | None = Field(
        None, description="when set, every API route but /healthz wants it in the X-API-Key header"
    )
    max_upload_mb: float = Field(10.0, gt=0, description="uploads larger than this are refused (413)")
    max_upload_pixels: int = Field(
        40_000_000, ge=1, description="uploaded images with more pixels are refused (decoding takes memory)"
    )
    image_workers: int = Field(2, ge=1, description="uploads a server decodes and embeds at once; others wait")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names a server answers besides loopback and its --host ('*': any); guards against "
        "DNS rebinding",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="web origins (https://host:port) whose pages may call the API (CORS) and send writes; "
        "default: none",
    )
    max_requests_in_flight: int = Field(
        32, ge=1, description="requests a server works on at once; more are answered 503 at once, not queued"
    )
    rate_limit_per_minute: int | None = Field(
        None, ge=1, description="requests a minute per API key (per client address without one); more get 429"
    )
    page_size: int = Field(20, ge=1, le=100, description="results per page when a request does not say")
    query_cache_size: int = Field(256, ge=1, description="query vectors the server keeps for paging")

    @classmethod
    def load(cls, home: Path | str | None = None, **overrides: object) -> Settings:
        """Settings from defaults, VISCOVER_* variables, `home` and `overrides`; a bad value is a
        BadSettingError."""
        if home is not None:
            overrides["home"] = Path(home)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']} (got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise BadSettingError(f"bad setting (VISCOVER_<NAME> or option): {problems}") from None

    @property
    def related_feature_sets(self) -> dict[str, str]:
        """`related train`'s feature set for each kind of query: pins on some board (warm) and on none (cold)."""
        return {"warm": self.related_warm_features, "cold": self.related_cold_features}

    @property
    def threads(self) -> int:
        """Threads a batch job uses: `batch_threads`, or every core this process may run on."""
        if self.batch_threads:
            return self.batch_threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.db"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def model_files(self) -> Path:
        return self.models_dir or self.home / "models"

    @property
    def model_cache(self) -> Path:
        return self.cache_dir or self.home / "cache"
