"""The embedding job: files → decoded pixels → image/text/colour vectors, ready to publish.

Incremental: items whose (path, size, mtime) and text are unchanged keep their vectors;
chunks are saved as they finish, so an interrupted run resumes where it stopped. Decoding
runs in threads one chunk ahead of the model, so decode and inference overlap. This module
never publishes: ``build`` writes the result, heads and indexes as one generation.

Encoders are loaded only when something needs embedding, or passed in (tests, pipelines).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from imgsearch import dups, spaces, store
from imgsearch.embed import colors, ocr
from imgsearch.embed.tags import image_tags, tag_text
from imgsearch.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    ImageEncoder,
    TextEncoder,
    cheap_id,
    load_image_encoder,
    open_encoder,
    runtime_of,
)
from imgsearch.errors import UserError
from imgsearch.files.catalog import FileEntry, Metadata, read_metadata, scan
from imgsearch.files.images import ImageError
from imgsearch.files.roots import covering_roots
from imgsearch.store import Item, Store

CHUNK = 256
DECODE_THREADS = 2


class Progress(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def advance(self, n: int) -> None: ...
    def note(self, message: str) -> None: ...


class _NoProgress:
    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class EmbedOptions:
    image_encoder: str = DEFAULT_IMAGE_ENCODER
    text_encoder: str = DEFAULT_TEXT_ENCODER
    weights: str | None = None
    meta: Path | None = None
    text_columns: list[str] = field(default_factory=list)
    auto_tags: bool = True  # untitled items get their auto tags as text
    rebuild: bool = False
    chunk: int = CHUNK
    runtime: str = "litert"  # or "keras"
    precision: str = "fp32"  # image encoder on LiteRT: fp32, fp16, int8, int8-full
    no_meta: bool = False  # drop the catalog the index was built with (--no-meta)
    exclude: list[str] | None = None  # --exclude globs; None: those the index was built with
    no_exclude: bool = False  # drop the kept --exclude globs (--no-exclude)
    ocr: bool | None = None  # read the words in each photo (--ocr/--no-ocr); None: as the index was built


@dataclass
class EmbedReport:
    store: Path
    count: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    resumed: int = 0
    excluded: int = 0  # image files left out by --exclude or .imgsearchignore
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    embedded_per_second: float = 0.0
    notes: list[str] = field(default_factory=list)  # repairs and dropped heads, said on stderr


@dataclass
class EmbedResult:
    """What one embedding run produced: every live item with its vectors, ready to publish."""

    report: EmbedReport
    items: list[Item]
    vectors: dict[str, np.ndarray]  # the embedded spaces (spaces.EMBEDDED), one row per item
    encoders: dict[str, dict]
    text_source: dict
    roots: list[str]
    changed: bool  # differs from the live generation (False: nothing to publish)
    exclude: dict | None = None  # the manifest's "exclude": globs kept, ignore files read


class Encoders:
    """The image and text encoders of a run: given (tests, pipelines), or loaded on first use."""

    def __init__(
        self,
        options: EmbedOptions,
        progress: Progress | None = None,
        image: ImageEncoder | None = None,
        text: TextEncoder | None = None,
    ) -> None:
        self.options = options
        self.progress = progress or _NoProgress()
        self._image = image
        self._text = text
        self.calibration: list[FileEntry] = []  # images to calibrate int8-full on

    @property
    def loaded(self) -> bool:
        return self._image is not None

    @property
    def image(self) -> ImageEncoder:
        if self._image is None:
            o = self.options
            if o.runtime == "litert" and o.precision == "int8-full":
                self._calibrate()
            if o.runtime == "litert":
                self._announce_export(cheap_id("image", o.image_encoder, o.weights), o.precision)
            self._image = open_encoder("image", o.image_encoder, o.weights, o.runtime, o.precision)
        return self._image

    @property
    def text(self) -> TextEncoder:
        if self._text is None:
            o = self.options
            if o.runtime == "litert":
                self._announce_export(cheap_id("text", o.text_encoder), "fp32")
            self._text = open_encoder("text", o.text_encoder, None, o.runtime)
        return self._text

    def expected_ids(self) -> dict[str, str]:
        """Encoder ids to check the live store against, loading a model only when the id needs one."""
        o = self.options
        image = None if self._image else cheap_id("image", o.image_encoder, o.weights)
        text = None if self._text else cheap_id("text", o.text_encoder)
        return {"image": image or self.image.spec.id, "text": text or self.text.spec.id}

    def _announce_export(self, spec_id: str | None, precision: str) -> None:
        """The first run converts the model to LiteRT (tens of seconds): say so rather than look stuck."""
        from imgsearch.encoders.litert import cached_path

        if spec_id is None or not cached_path(spec_id, precision).exists():
            self.progress.note(f"preparing the fast runtime for {spec_id or 'the encoder'} (once; ~30 s)")

    def _calibrate(self) -> None:
        """Full-integer quantisation is calibrated on (up to 200) images of the catalog itself."""
        from imgsearch.encoders.litert_export import REPRESENTATIVE_IMAGES, export_image

        keras_encoder = load_image_encoder(self.options.image_encoder, self.options.weights)
        step = max(1, len(self.calibration) // REPRESENTATIVE_IMAGES)
        decoded = [_decode(e, keras_encoder.image_size) for e in self.calibration[::step]]
        batches = [d.pixels[None] for d in decoded if isinstance(d, _Decoded)][:REPRESENTATIVE_IMAGES]
        if not batches:
            raise UserError("--precision int8-full needs images to calibrate on")
        export_image(keras_encoder, "int8-full", batches)

    def specs(self) -> dict[str, dict]:
        """Encoder specs plus the runtime that produced the vectors (vectors of one encoder id
        agree across runtimes to cosine ≥ 0.99999 in fp32; reduced precisions are recorded)."""
        image = {**self.image.spec.to_json(), "runtime": runtime_of(self.image)}
        if image["runtime"] == "litert":
            image["precision"] = self.options.precision
        text = {**self.text.spec.to_json(), "runtime": runtime_of(self.text)}
        return {"image": image, "text": text}

    def chunk_key(self) -> dict:
        """Chunks resume only under the same encoders, runtime and precision."""
        return {
            role: f"{spec['id']}/{spec['runtime']}/{spec.get('precision', '')}"
            for role, spec in self.specs().items()
        }


def embed_job(
    inputs: list[str],
    target: Store,
    options: EmbedOptions,
    previous: store.Generation | None,
    encoders: Encoders,
    progress: Progress | None = None,
    stdin=None,
) -> EmbedResult:
    """Embed what ``previous`` (the live generation, or None) lacks; the caller holds the lock."""
    progress = progress or _NoProgress()
    started = time.perf_counter()
    kept = kept_manifest(previous, target)  # what sticks from the last run, even under --rebuild
    options = replace(options, exclude=sticky_exclusions(options, kept))
    found = scan(inputs, stdin, options.exclude or [])
    entries, skipped = found.entries, found.skipped
    named = [(path, reason) for path, reason in skipped if path in inputs]
    if not entries and named:
        raise UserError(f"{named[0][0]}: {named[0][1]}")
    options, meta = load_catalog(options, kept)
    options = replace(options, ocr=ocr.enabled(options.ocr, kept))
    previous = None if options.rebuild else previous
    texts = {e.path: meta.text(e.path, options.text_columns) if meta else None for e in entries}
    if previous is not None:
        store.check_encoders(previous.manifest, encoders.expected_ids(), target.root)
    reuse = _reusable(previous if _same_precision(previous, options) else None, target, encoders, entries)
    todo = [e for e in entries if not _can_reuse(reuse, e, texts[e.path], options)]
    encoders.calibration = todo
    report = EmbedReport(target.root, skipped=list(skipped), excluded=len(found.excluded))
    reuse.update(_embed_todo(todo, texts, encoders, target, options, progress, report))
    exclude = exclude_entry(options.exclude or [], found.ignore_files)
    result = _collect(entries, reuse, previous, encoders, options, report, exclude)
    report.seconds = time.perf_counter() - started
    return result


def kept_manifest(previous: store.Generation | None, target: Store) -> dict | None:
    """The manifest the sticky settings (--meta, --exclude, --ocr) are kept in: the live
    generation's, or, when that is damaged (``previous`` None), its manifest as far as it reads,
    so the run that repairs the index keeps the user's choices."""
    return previous.manifest if previous is not None else target.last_manifest()


def sticky_metadata(options: EmbedOptions, manifest: dict | None) -> EmbedOptions:
    """Re-indexing without --meta keeps the catalog the index was built with, so a plain
    `imgsearch index DIR` never drops the titles; --no-meta is the one way to drop them."""
    if options.no_meta:
        return replace(options, meta=None, text_columns=[])
    if options.meta is not None or manifest is None:
        return options
    source = manifest.get("text_source") or {}
    if isinstance(source, dict) and source.get("meta"):
        return replace(options, meta=Path(source["meta"]), text_columns=list(source.get("columns") or []))
    return options


def sticky_exclusions(options: EmbedOptions, manifest: dict | None) -> list[str]:
    """The --exclude globs of this run: those given, else those the index was built with (a plain
    `imgsearch index DIR` keeps leaving out what it left out); --no-exclude drops them."""
    if options.no_exclude:
        return []
    if options.exclude is not None:
        return list(options.exclude)
    kept = (manifest or {}).get("exclude") or {}
    return list(kept.get("globs") or []) if isinstance(kept, dict) else []


def exclude_entry(globs: list[str], ignore_files: list[str]) -> dict | None:
    """What the manifest keeps of the exclusions (None when there are none, as in older stores)."""
    return {"globs": globs, "ignore_files": ignore_files} if globs or ignore_files else None


def load_catalog(options: EmbedOptions, manifest: dict | None) -> tuple[EmbedOptions, Metadata | None]:
    """The options with the sticky catalog (``kept_manifest``) filled in, and that catalog read. A
    kept catalog that is missing or unreadable is an error, never a quiet switch to no titles: that
    switch was published, and the next run saw nothing to restore once the file was back."""
    kept = sticky_metadata(options, manifest)
    if kept.meta is None:
        return kept, None
    try:
        return kept, read_metadata(kept.meta, kept.text_columns)
    except UserError as exc:
        if options.meta is not None:  # named on this command line: its own error says it all
            raise
        raise UserError(
            f"{exc} (the catalog this index was built with: put it back, give --meta FILE, "
            "or drop its titles with --no-meta)"
        ) from None


def _same_precision(previous: store.Generation | None, options: EmbedOptions) -> bool:
    """Vectors made at another precision are embedded again rather than mixed in."""
    if previous is None:
        return False
    image = previous.manifest["encoders"].get("image") or {}
    have = image.get("precision", "fp32") if image.get("runtime") == "litert" else "fp32"
    want = options.precision if options.runtime == "litert" else "fp32"
    return have == want


_Reuse = dict[str, tuple[Item, dict[str, np.ndarray]]]


def _reusable(
    previous: store.Generation | None, target: Store, encoders: Encoders, entries: list[FileEntry]
) -> _Reuse:
    """Vectors we already have: the live generation, then chunks of an interrupted run.

    Only the embedded spaces are reused: head outputs are re-derived for every item at publish
    time, so an item embedded now and one embedded last week always carry the same spaces.
    """
    reuse: _Reuse = {}
    if previous is not None:
        embedded = [s for s in spaces.EMBEDDED if s in previous.vectors]
        for row, item in enumerate(previous.items):
            reuse[item.path] = (item, {s: previous.vectors[s][row] for s in embedded})
    if entries and target.partial_dir.exists() and any(target.partial_dir.glob("chunk-*.npz")):
        items, chunks = store.load_chunks(target, encoders.chunk_key())
        stacked = {s: np.concatenate(v) for s, v in chunks.items() if s in spaces.EMBEDDED}
        for row, item in enumerate(items):
            reuse[item.path] = (item, {s: v[row] for s, v in stacked.items()})
            item.tags["resumed"] = True
    return reuse


def _can_reuse(reuse: _Reuse, entry: FileEntry, text: str | None, options: EmbedOptions) -> bool:
    found = reuse.get(entry.path)
    if found is None:
        return False
    item = found[0]
    if item.fingerprint() != entry.fingerprint():
        return False
    if options.ocr and "ocr" not in item.tags:
        return False  # not read yet (indexed before --ocr): embedded again, and read
    if text is not None:
        return item.text == text
    return item.tags.get("text_source") == ("auto" if options.auto_tags else None)


@dataclass
class _Decoded:
    pixels: np.ndarray  # model input, uint8
    colour: np.ndarray  # colour histogram, computed here so it overlaps with inference
    backdrop: bool  # a product shot on a plain backdrop
    signature: dict[str, str] = field(default_factory=dict)  # dups.signature: sha256, phash, thumb, centre


def _decode(entry: FileEntry, size: int) -> _Decoded | ImageError:
    return decode_source(entry.path, size)


def decode_source(source: str | bytes, size: int) -> _Decoded | ImageError:
    """Model input and colour analysis of a file (or its bytes, read from elsewhere), or why not."""
    try:
        pixels, signature = dups.decode_and_sign(source, size)
        hist, backdrop = colors.colour_analysis(pixels)
        return _Decoded(pixels, hist.astype(np.float32), backdrop, signature)
    except ImageError as exc:
        return exc
    except Exception as exc:  # a broken codec must not end the run
        return ImageError(f"cannot decode ({type(exc).__name__}: {exc})")


def decoded_chunks(todo: list[FileEntry], size: int, chunk: int) -> Iterator[list[tuple[FileEntry, object]]]:
    """Yield decoded chunks (``_Decoded`` or the ``ImageError``) while the next chunk decodes."""
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        pending: list[tuple[FileEntry, Future]] | None = None
        for start in range(0, len(todo) + chunk, chunk):
            part = todo[start : start + chunk]
            submitted = [(e, pool.submit(_decode, e, size)) for e in part]
            if pending:
                yield [(e, f.result()) for e, f in pending]
            pending = submitted
            if not part:
                break


def _embed_todo(
    todo: list[FileEntry],
    texts: dict[str, str | None],
    encoders: Encoders,
    target: Store,
    options: EmbedOptions,
    progress: Progress,
    report: EmbedReport,
) -> _Reuse:
    done: _Reuse = {}
    if not todo:
        return done
    image = encoders.image
    text_encoder = encoders.text
    key = encoders.chunk_key()
    progress.start(len(todo), "embedding")
    first = store.next_chunk_number(target)
    t0 = time.perf_counter()
    embedded = 0
    for n, decoded in enumerate(decoded_chunks(todo, image.image_size, options.chunk), start=first):
        good = [(e, d) for e, d in decoded if isinstance(d, _Decoded)]
        report.skipped += [(e.path, str(d)) for e, d in decoded if not isinstance(d, _Decoded)]
        if good:
            items, vectors = embed_chunk(good, texts, image, text_encoder, options)
            store.save_chunk(target, n, key, items, vectors)
            for row, item in enumerate(items):
                done[item.path] = (item, {s: v[row] for s, v in vectors.items()})
            embedded += len(good)
        progress.advance(len(decoded))
    report.embedded_per_second = embedded / max(time.perf_counter() - t0, 1e-9)
    return done


def embed_chunk(
    good, texts, image, text_encoder, options, words: list[str] | None = None
) -> tuple[list[Item], dict[str, np.ndarray]]:
    """Items and vectors of decoded images. ``words``: under ``options.ocr``, the text already read
    off each image (Beam reads it in parallel as it decodes); None: read here."""
    pixels = np.stack([d.pixels for _, d in good])
    feats, probs = [], []
    for start in range(0, len(pixels), image.batch_size):
        out = image.encode(pixels[start : start + image.batch_size])
        feats.append(out.features)
        probs.append(out.class_probs)
    probs_all = None if probs[0] is None else np.concatenate(probs)
    items = []
    for row, (entry, decoded) in enumerate(good):
        tags = image_tags(decoded.colour, None if probs_all is None else probs_all[row])
        tags["backdrop"] = decoded.backdrop
        text = texts[entry.path]
        tags["text_source"] = "meta" if text else ("auto" if options.auto_tags else None)
        if text is None and options.auto_tags:
            text = tag_text(tags) or None
        items.append(Item(entry.id, entry.path, entry.size, entry.mtime, text, tags, **decoded.signature))
    if options.ocr:  # read before the chunk is saved, so an interrupted run keeps the words
        read = words if words is not None else ocr.read_all([item.path for item in items])
        for item, found in zip(items, read, strict=True):
            item.tags["ocr"] = found
    text_vecs = np.zeros((len(items), text_encoder.spec.dim), np.float32)
    with_text = [i for i, item in enumerate(items) if item.text]
    if with_text:
        text_vecs[with_text] = text_encoder.encode([items[i].text for i in with_text])
    colour = np.stack([d.colour for _, d in good])
    return items, {"image": np.concatenate(feats), "text": text_vecs, "colour": colour}


def _collect(
    entries: list[FileEntry],
    reuse: _Reuse,
    previous: store.Generation | None,
    encoders: Encoders,
    options: EmbedOptions,
    report: EmbedReport,
    exclude: dict | None = None,
) -> EmbedResult:
    """Every live item in path order with its vectors, and whether anything changed."""
    old = {i.path: i for i in previous.items} if previous else {}
    live = [e for e in entries if e.path in reuse and reuse[e.path][0].fingerprint() == e.fingerprint()]
    live_paths = {e.path for e in live}
    report.removed = sum(1 for p in old if p not in live_paths)
    for e in live:
        item = reuse[e.path][0]
        if e.path not in old:
            report.added += 1
        elif old[e.path] is item:
            report.unchanged += 1
        else:
            report.updated += 1
        report.resumed += int(bool(item.tags.pop("resumed", False)))
    items = [reuse[e.path][0] for e in live]
    report.count = len(items)
    if not items:
        raise UserError(
            "no usable images: "
            + (f"{report.skipped[0][0]}: {report.skipped[0][1]}" if report.skipped else "nothing found")
        )
    vectors = {s: np.stack([reuse[e.path][1][s] for e in live]) for s in spaces.EMBEDDED}
    specs = encoders.specs() if encoders.loaded or previous is None else previous.manifest["encoders"]
    roots = covering_roots(x.path for x in live)  # all of them: serve reads only under these
    source = text_source(options)
    changed = (
        previous is None
        or bool(report.added or report.updated or report.removed)
        or previous.manifest.get("text_source") != source
        or previous.manifest.get("exclude") != exclude
        or previous.manifest.get("roots") != roots  # a store from before roots were complete
    )
    return EmbedResult(report, items, vectors, specs, source, roots, changed, exclude)


def text_source(options: EmbedOptions) -> dict:
    """Where items' text comes from, as the manifest records it (a change re-publishes the index)."""
    source = {
        "meta": str(options.meta.resolve()) if options.meta else None,
        "columns": options.text_columns,
        "auto_tags": "items without metadata text" if options.auto_tags else "never",
    }
    if options.ocr:  # only then: a store indexed without it keeps the manifest it had
        source["ocr"] = ocr.ENGINE
    return source
