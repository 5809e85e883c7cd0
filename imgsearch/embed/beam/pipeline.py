"""The Apache Beam transforms of ``embed --engine beam``; ``beam.run_pipeline`` imports this module
only after ``beam.require_beam`` found Beam, which is why Beam is imported at the top here.

    sources ─ MatchFiles / named files ─ keep images, regular files; join catalog text
      └ GroupByKey(shard) ─ skip complete shards ─ Reshuffle ─ read + decode + colour (+ OCR)
          └ RunInference(EncoderHandler) ─ CoGroupByKey(shard) ─ write one store per shard

The shard key is a hash of the path, so a rerun puts every file in the same shard. Pixels never
cross a shuffle: decoding and inference are fused in one stage after the reshuffle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import ModelHandler, RunInference

from imgsearch import store
from imgsearch.embed import ocr
from imgsearch.embed.beam.plan import Plan, Source, excluded, listed_entry, save_shard, shard_digest, shard_of
from imgsearch.embed.job import decode_source, embed_chunk
from imgsearch.encoders import open_encoder
from imgsearch.files.catalog import FileEntry
from imgsearch.files.images import ImageError, check_size

NAMESPACE = "imgsearch"
# RunInference batches of up to 32 images (4.8 MB of pixels): MiniLM runs titles in batches of 32
# (litert.TEXT_BATCH) and Lite0 one image per invoke, so larger batches buy nothing.
MAX_BATCH = 32
TODO, FILES, DECODED, SKIPPED = "todo", "files", "decoded", "skipped"
# What every stage grouped by shard carries: (shard, payload). Declared, not inferred, because
# Beam types a bare ``tuple`` as Tuple[Any, ...], which GroupByKey (Beam >= 2.78) rejects as a key.
Keyed = tuple[int, Any]


class Example(NamedTuple):
    shard: int
    entry: FileEntry
    text: str | None
    decoded: object  # embed's decoded pixels and colour analysis
    words: str | None  # the text read off the image (--ocr), else None


def build(pipeline: beam.Pipeline, plan: Plan) -> None:
    # only the listing holds the catalog: Beam ships each stage's functions to every worker,
    # compressed, and the rest of the plan is a few kilobytes
    lean = replace(plan, meta=None)
    listed = [
        pipeline
        | f"list {n}" >> fileio.MatchFiles(source.pattern, fileio.EmptyMatchTreatment.ALLOW)
        | f"keep {n}" >> beam.ParDo(_Listed(plan, source))
        for n, source in enumerate(plan.sources)
        if source.kind != "file"
    ]
    named = [s for s in plan.sources if s.kind == "file"]
    if named:
        listed.append(pipeline | "named files" >> beam.Create(named) | "stat" >> beam.ParDo(_Named(plan)))
    every = pipeline | "every shard" >> beam.Create(
        [(n, None) for n in range(plan.shards)]
    ).with_output_types(Keyed)
    planned = (
        (*listed, every)
        | "all files" >> beam.Flatten()
        | "by shard" >> beam.GroupByKey()
        | "skip complete shards" >> beam.ParDo(_PlanShard(lean)).with_outputs(TODO, main=FILES)
    )
    decoded = (
        planned[FILES]
        | "spread" >> beam.Reshuffle()
        | "decode" >> beam.ParDo(_Decode(lean)).with_outputs(SKIPPED, main=DECODED)
    )
    embedded = decoded[DECODED] | "embed" >> RunInference(EncoderHandler(lean))
    (
        {TODO: planned[TODO], "embedded": embedded, SKIPPED: decoded[SKIPPED]}
        | "gather shards" >> beam.CoGroupByKey()
        | "write shards" >> beam.ParDo(_WriteShard(lean))
    )


class _Listed(beam.DoFn):
    """A listed file → (shard, ("file", entry, text)) or (shard, ("skip", path, reason))."""

    def __init__(self, plan: Plan, source: Source) -> None:
        self.plan = plan
        self.source = source

    def process(self, found: FileMetadata) -> Iterator[Keyed]:
        entry = listed_entry(found.path, found.size_in_bytes, found.last_updated_in_seconds, self.source)
        if isinstance(entry, FileEntry) and excluded(found.path, self.source):
            Metrics.counter(NAMESPACE, "files_excluded").inc()
        elif entry is not None:
            yield _keyed(self.plan, found.path, entry)


class _Named(beam.DoFn):
    """A file named on the command line or stdin, whatever its suffix."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def process(self, source: Source) -> Iterator[Keyed]:
        size, mtime = 0, 0.0
        if "://" in source.pattern:
            found = FileSystems.match([source.pattern])[0].metadata_list
            if not found:
                yield _keyed(self.plan, source.pattern, "no such file or directory")
                return
            size, mtime = found[0].size_in_bytes, found[0].last_updated_in_seconds
        yield _keyed(self.plan, source.pattern, listed_entry(source.pattern, size, mtime, source) or "")


def _keyed(plan: Plan, path: str, entry: FileEntry | str) -> Keyed:
    if isinstance(entry, str):
        return shard_of(path, plan.shards), ("skip", path, entry)
    text = plan.meta.text(entry.path, plan.options.text_columns) if plan.meta else None
    return shard_of(entry.path, plan.shards), ("file", entry, text)


class _PlanShard(beam.DoFn):
    """A shard complete for the same files and encoders is kept; otherwise its files go on."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.shards_resumed = Metrics.counter(NAMESPACE, "shards_resumed")
        self.items_resumed = Metrics.counter(NAMESPACE, "items_resumed")

    def process(self, grouped: tuple[int, Iterable]) -> Iterator:
        shard, values = grouped
        files = [(v[1], v[2]) for v in values if v is not None and v[0] == "file"]
        skipped = [(v[1], v[2]) for v in values if v is not None and v[0] == "skip"]
        digest = shard_digest(files, skipped)
        target = store.shard_dir(Path(self.plan.out), shard, self.plan.shards)
        count = store.complete_shard(target, self.plan.key, digest)
        if count is not None:
            self.shards_resumed.inc()
            self.items_resumed.inc(count)
            return
        yield beam.pvalue.TaggedOutput(TODO, (shard, (digest, skipped)))
        for entry, text in files:
            yield shard, entry, text


class _Decode(beam.DoFn):
    """Read and decode one file (and analyse its colours); a file that fails is skipped with why."""

    def __init__(self, plan: Plan) -> None:
        self.size = plan.image_size
        self.ocr = plan.options.ocr

    def process(self, element: tuple[int, FileEntry, str | None]) -> Iterator:
        shard, entry, text = element
        words = None
        try:
            source = _read(entry)
            decoded = decode_source(source, self.size)
            # read here, not in the inference stage: each worker thread reads its own images at
            # once, where the encoders take turns under one lock
            if self.ocr and not isinstance(decoded, ImageError):
                words = ocr.read_text(source)
        except OSError as exc:  # a remote file gone or unreadable is skipped, as a local one would be
            decoded = ImageError(f"cannot read ({exc})")
        except ImageError as exc:  # too large to be an image: not read
            decoded = exc
        if isinstance(decoded, ImageError):
            yield beam.pvalue.TaggedOutput(SKIPPED, (shard, (entry.path, str(decoded))))
        else:
            yield Example(shard, entry, text, decoded, words)


def _read(entry: FileEntry) -> str | bytes:
    """Local files are decoded from their path (as the local engine does); others are read whole,
    unless their listed size is already too large for an image."""
    path = entry.path
    if "://" not in path:
        return path
    check_size(entry.size)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


class _Model:
    """Both encoders; a class of its own because RunInference keeps a weak reference to its model.

    RunInference shares one model among the threads of a worker process (``multi_threading`` mode),
    and a LiteRT interpreter must not run in two threads at once: the lock takes turns.
    """

    def __init__(self, image, text) -> None:
        self.image = image
        self.text = text
        self.lock = threading.Lock()


class EncoderHandler(ModelHandler):
    """The image and text encoders as one model: loaded once per worker, batched by RunInference."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(min_batch_size=MAX_BATCH, max_batch_size=MAX_BATCH)
        self.plan = plan

    def load_model(self):
        o = self.plan.options
        threads = self.plan.threads
        image = self.plan.image or open_encoder(
            "image", o.image_encoder, o.weights, o.runtime, o.precision, threads
        )
        text = self.plan.text or open_encoder("text", o.text_encoder, None, o.runtime, "fp32", threads)
        return _Model(image, text)

    def run_inference(self, batch: Sequence[Example], model, inference_args=None) -> Iterable:
        image, text = model.image, model.text
        good = [(e.entry, e.decoded) for e in batch]
        texts = {e.entry.path: e.text for e in batch}
        words = [e.words or "" for e in batch] if self.plan.options.ocr else None
        with model.lock:
            items, vectors = embed_chunk(good, texts, image, text, self.plan.options, words)
        Metrics.counter(NAMESPACE, "images_embedded").inc(len(items))
        rows = enumerate(zip(batch, items, strict=True))
        return [(e.shard, (item, {s: v[row] for s, v in vectors.items()})) for row, (e, item) in rows]

    def get_metrics_namespace(self) -> str:
        return NAMESPACE


class _WriteShard(beam.DoFn):
    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    # the last stage: it writes files and emits nothing (Beam checks that process returns an iterable)
    def process(self, grouped: tuple[int, dict]) -> Iterable[None]:
        shard, parts = grouped
        todo = list(parts[TODO])
        if todo:
            digest, listing_skipped = todo[0]
            embedded = list(parts["embedded"])
            save_shard(self.plan, shard, digest, embedded, listing_skipped + list(parts[SKIPPED]))
        return ()


def counters(result) -> dict[str, int]:
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    totals: dict[str, int] = {}
    for counter in found:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals
