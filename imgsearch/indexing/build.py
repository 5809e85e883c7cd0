"""The ``index`` and ``embed`` jobs: embed what changed, apply heads, build ANN indexes, publish once.

Everything one run produces (vectors, head outputs, heads, Annoy files, the skipped list)
goes into one new generation that is published by a single atomic rename, so a reader or
a kill at any moment sees the old index or the new one, never a half-built one. Head
outputs are re-derived for every item on every publish, so items embedded in different
runs always carry the same spaces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgsearch import dups, spaces, store
from imgsearch.embed.job import EmbedOptions, EmbedReport, EmbedResult, Encoders, Progress, embed_job
from imgsearch.embed.tags import class_arrays
from imgsearch.encoders import ImageEncoder, TextEncoder
from imgsearch.encoders.heads import Head, load_heads
from imgsearch.errors import UserError
from imgsearch.files import exif
from imgsearch.indexing import ann, trust
from imgsearch.search import fusion, hubness
from imgsearch.shipped import PRETRAINED
from imgsearch.store import DamagedStore, Generation, Store, default_store

if TYPE_CHECKING:
    from imgsearch.embed.beam.run import BeamOptions


@dataclass
class IndexReport:
    embed: EmbedReport | None
    store: Path
    indexes: dict[str, dict]
    rebuilt: bool
    notes: list[str] = field(default_factory=list)  # repairs and dropped heads, said on stderr


@dataclass
class _Plan:
    """What to publish besides the embedded vectors."""

    heads: dict[str, Head]
    ann: bool
    options: ann.AnnOptions
    parts: int  # parts per Annoy index (``ann.part_bounds`` caps it by size)
    forced: bool  # --model/--no-model given: publish even if nothing else changed
    shots: bool = False  # the collection is product shots (``spaces.product_shots``)
    # weigh text queries by the folder's familiarity (``imgsearch.indexing.trust``)
    calibrate: bool = trust.DEFAULT


def index_folder(
    target: Path,
    options: EmbedOptions,
    *,
    out: Path | None = None,
    ann_options: ann.AnnOptions = ann.AnnOptions(),
    model: Path | None = None,
    no_model: bool = False,
    progress: Progress | None = None,
    stdin=None,
    image: ImageEncoder | None = None,
    text: TextEncoder | None = None,
    calibrate: bool = trust.DEFAULT,
) -> IndexReport:
    """``imgsearch index``: embed ``target`` incrementally (unless it is a store) and index it.

    ``model``: a directory from ``imgsearch train`` whose heads go into the index; heads already
    in the index are kept across re-indexing unless ``no_model``. ``image``/``text``: encoder
    objects to use instead of loading the named ones. ``calibrate``: weigh text queries on an
    untitled folder by how familiar its photos are to the photo head (``imgsearch.indexing.trust``).
    """
    explicit = load_heads(model) if model else None
    if Store.is_store(target) and out is None:
        return _reindex_store(Store(target), explicit, no_model, ann_options, calibrate)
    if not target.exists():
        raise UserError(f"{target}: no such file or directory")
    st = Store(out or default_store(target if target.is_dir() else target.parent))
    return _update(
        st, [str(target)], options, explicit, no_model, ann_options, progress, stdin, image, text, calibrate
    )


def embed_folder(
    inputs: list[str],
    target: Store,
    options: EmbedOptions,
    progress: Progress | None = None,
    stdin=None,
    image: ImageEncoder | None = None,
    text: TextEncoder | None = None,
) -> EmbedReport:
    """``imgsearch embed``: the vectors (and kept heads) without ANN indexes; ``index`` adds them."""
    report = _update(target, inputs, options, None, False, None, progress, stdin, image, text)
    assert report.embed is not None
    report.embed.notes = report.notes
    return report.embed


def _update(
    st: Store,
    inputs: list[str],
    options: EmbedOptions,
    explicit: dict[str, Head] | None,
    no_model: bool,
    ann_options: ann.AnnOptions | None,
    progress: Progress | None,
    stdin,
    image: ImageEncoder | None,
    text: TextEncoder | None,
    calibrate: bool = trust.DEFAULT,
) -> IndexReport:
    with st.lock():
        live, notes = _live(st)
        encoders = Encoders(options, progress, image, text)
        result = embed_job(inputs, st, options, live, encoders, progress, stdin)
        plan = _plan(
            st, live, result.encoders, result.items, explicit, no_model, ann_options, notes, calibrate
        )
        report = _publish_if_changed(st, live, result, plan, notes)
        store.clear_chunks(st)
        return report


def embed_folder_beam(
    inputs: list[str],
    target: Store,
    options: EmbedOptions,
    engine: BeamOptions,
    progress: Progress | None = None,
    stdin=None,
    image: ImageEncoder | None = None,
    text: TextEncoder | None = None,
) -> EmbedReport:
    """``imgsearch embed --engine beam``: the Beam pipeline writes shards, then one publish merges them."""
    from imgsearch.embed.beam import run as beam

    beam.require_beam()
    with target.lock():
        live, notes = _live(target)
        encoders = Encoders(options, progress, image, text)
        result = beam.embed_job(inputs, target, options, live, encoders, engine, progress, stdin, image, text)
        plan = _plan(target, live, result.encoders, result.items, None, False, None, notes)
        report = _publish_if_changed(target, live, result, plan, notes)
    assert report.embed is not None
    report.embed.notes = report.notes
    return report.embed


def _publish_if_changed(
    st: Store, live: Generation | None, result: EmbedResult, plan: _Plan, notes: list[str]
) -> IndexReport:
    """Publish ``result`` as one generation, unless the live one already holds exactly that."""
    if exif.fill(result.items):  # new or changed files, or a store from before EXIF was kept
        result.changed = True
    skipped_changed = live is not None and {p for p, _ in live.skipped()} != {
        p for p, _ in result.report.skipped
    }
    unchanged = live is not None and not (result.changed or skipped_changed or plan.forced or notes)
    if unchanged and _up_to_date(live, plan):
        return IndexReport(result.report, st.root, _indexes(live), False, notes)
    return IndexReport(result.report, st.root, _publish(st, result, plan, live), True, notes)


def _reindex_store(
    st: Store,
    explicit: dict[str, Head] | None,
    no_model: bool,
    ann_options: ann.AnnOptions,
    calibrate: bool = trust.DEFAULT,
) -> IndexReport:
    """``imgsearch index E`` on an embeddings dir: heads and indexes for the vectors it holds."""
    with st.lock():
        live = st.require()
        notes = _index_damage(live)
        plan = _plan(st, live, live.encoders, live.items, explicit, no_model, ann_options, notes, calibrate)
        if _up_to_date(live, plan) and not plan.forced and not notes:
            return IndexReport(None, st.root, _indexes(live), False, notes)
        report = EmbedReport(st.root, count=live.count, unchanged=live.count, skipped=live.skipped())
        result = EmbedResult(
            report,
            live.items,
            {s: np.asarray(live.vectors[s]) for s in spaces.EMBEDDED if s in live.vectors},
            live.encoders,
            live.manifest["text_source"],
            list(live.manifest.get("roots") or []),
            changed=False,
            exclude=live.manifest.get("exclude"),
        )
        return IndexReport(None, st.root, _publish(st, result, plan, live), True, notes)


def _live(st: Store) -> tuple[Generation | None, list[str]]:
    """The live generation, or None with a note when it is damaged: this run rebuilds it."""
    try:
        live = st.load(mmap=False)
        if live is not None:
            live.check_finite()
            lexical = live.lexical_index()
            if lexical is not None:
                lexical.close()
            live.class_arrays()
    except DamagedStore as exc:
        return None, [f"repairing a damaged index: {exc}"]
    try:
        if live is not None:
            live.heads()
    except DamagedStore as exc:  # heads are re-derived (shipped) or dropped with a note (trained)
        return live, [f"repairing a damaged index: {exc}"]
    return live, _index_damage(live) if live is not None else []


def _index_damage(gen: Generation) -> list[str]:
    """A note for each Annoy file that is not what the manifest recorded: a note makes this run
    publish, and a publish builds every index again from the (checked) vectors."""
    notes = []
    for space in spaces.INDEXED:
        if space in gen.manifest["spaces"]:
            info, path = gen.index_info(space)
            if path is not None:
                damage = ann.damaged_parts(path, info, gen.count)
                notes += [f"rebuilding the {space} index: {why}" for why in damage]
    return notes


def _plan(
    st: Store,
    live: Generation | None,
    encoders: dict,
    items,
    explicit: dict[str, Head] | None,
    no_model: bool,
    ann_options: ann.AnnOptions | None,
    notes: list[str],
    calibrate: bool = trust.DEFAULT,
) -> _Plan:
    """``ann_options`` None: embed only (no Annoy indexes). The shipped heads are the ones for this
    collection of ``items``: product shots or everyday photos (``spaces.product_shots``)."""
    if explicit is not None:
        trained = explicit
    elif no_model or live is None:
        trained = {}
    else:
        trained = _kept_heads(live, notes)
    image_id = encoders["image"]["id"]
    for name, head in trained.items():
        trained_for = (head.info.get("encoders") or {}).get("image")
        if trained_for != image_id:
            raise UserError(
                f"head {name!r} was trained on image encoder {trained_for}, this index uses {image_id}"
            )
    forced = explicit is not None or (no_model and live is not None and bool(_trained_names(live)))
    options = ann_options or ann.AnnOptions()
    parts = options.parts_or(_live_parts(live))
    shots = spaces.product_shots(items)
    shipped = shipped_heads(encoders, shots)
    return _Plan({**shipped, **trained}, ann_options is not None, options, parts, forced, shots, calibrate)


def _live_parts(live: Generation | None) -> int:
    """How many parts the live image index has (0: none, or exact): a plain re-index keeps them."""
    if live is None or "image" not in live.manifest["spaces"]:
        return 0
    return ann.part_count(live.manifest["spaces"]["image"].get("index") or {})


def _trained_names(gen: Generation) -> list[str]:
    return [
        name
        for name, info in gen.manifest["spaces"].items()
        if info.get("head") and name not in spaces.SHIPPED_HEADS
    ]


def _kept_heads(live: Generation, notes: list[str]) -> dict[str, Head]:
    """Trained heads of the live index; a damaged one is dropped with a note (re-add with --model)."""
    kept = {}
    for name in _trained_names(live):
        try:
            kept[name] = Head.load(live.dir, name)
        except UserError as exc:
            notes.append(f"dropped the {name} head ({exc}); add it again with --model")
    return kept


def head_root(image_encoder: str) -> Path:
    """Where the shipped heads for an image encoder live: ``pretrained/`` for the default one,
    ``pretrained/encoders/<name>/`` for another shipped encoder (efficientnet-lite1, -lite2). The heads
    found there are still checked against the store's encoder ids."""
    other = PRETRAINED / "encoders" / image_encoder
    if image_encoder and image_encoder.replace("-", "").isalnum() and other.is_dir():
        return other
    return PRETRAINED


def shipped_heads(encoders: dict, shots: bool = False) -> dict[str, Head]:
    """Heads that ship inside the package, for indexes built with the encoders they were trained on.

    ``photo``: an image → sentence-space head trained on everyday captioned photos, so text
    queries work on photo folders that have no titles (see recipes/photo_head.py). For a
    collection of product shots (``shots``) the one in ``pretrained/shots/``, which also trained on
    product titles: on product shots it finds "<colour> <type>" ten times as often (held-out P@10
    0.58 against 0.055 for a single Flickr-only head), while on everyday photos the Flickr-only
    head stays ahead.
    """
    ids = {role: (spec or {}).get("id") for role, spec in encoders.items()}
    found = {}
    root = head_root(str((encoders.get("image") or {}).get("name") or ""))
    for folder in (root, root / "shots") if shots else (root,):
        if not folder.is_dir():
            continue
        for name, head in load_heads(folder).items():
            trained = head.info.get("encoders") or {}
            if all(trained.get(role) == ids.get(role) for role in ("image", "text")):
                found[name] = head
    return found


def _up_to_date(live: Generation, plan: _Plan) -> bool:
    """The live generation already holds these heads and (if wanted) fresh indexes."""
    have = {name for name, info in live.manifest["spaces"].items() if info.get("head")}
    derived = ("lexical", "classes")
    if have != set(plan.heads) or any(k not in live.manifest for k in derived):
        return False  # heads changed, or a store from before the lexical space / class file
    for name in spaces.SHIPPED_HEADS:
        if name in have and _head_stamp(live.dir / f"{name}.json") != _stamp(plan.heads[name].info):
            return False  # a newer shipped head or query bank, or the collection changed kind
    if not (live.dir / "items.idx.npy").is_file():
        return False  # a store from before the item offsets
    if (live.manifest.get("trust") or {}).get("fitted") != (trust.stamp() if plan.calibrate else None):
        return False  # calibrated against another fit, or --calibrate changed
    if not plan.ann:
        return True
    if (live.manifest.get("dups") or {}).get("features") != dups.FEATURES:
        return False  # a store from before the duplicate table, or with other pair features
    wanted_trees = plan.options.trees or ann.DEFAULT_TREES
    for space in spaces.INDEXED:
        if space in live.vectors:
            info = live.manifest["spaces"][space].get("index")
            if not info or info.get("rows") != live.count or info.get("trees") not in (0, wanted_trees):
                return False
            wanted_parts = len(ann.part_bounds(live.count, int(info.get("count", 0)), plan.parts)) - 1
            if ann.part_count(info) not in (0, wanted_parts):
                return False
    return True


def _head_stamp(path: Path) -> tuple | None:
    try:
        return _stamp(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _stamp(info: dict) -> tuple:
    """What tells one shipped head from another: its training date and its query bank."""
    return info.get("date"), json.dumps(info.get("query_bank"), sort_keys=True)


def _indexes(gen: Generation) -> dict[str, dict]:
    return {
        s: gen.manifest["spaces"][s]["index"]
        for s in spaces.INDEXED
        if s in gen.manifest["spaces"] and gen.manifest["spaces"][s].get("index")
    }


def _publish(st: Store, result: EmbedResult, plan: _Plan, live: Generation | None = None) -> dict[str, dict]:
    """Write vectors, head outputs, heads and indexes as one generation and make it live."""
    built = {}
    with st.building() as writer:
        writer.start(result.encoders, result.text_source, result.items, result.roots)
        if result.exclude:  # kept for the next run (--exclude is sticky), absent when there are none
            writer.manifest["exclude"] = result.exclude
        writer.add_lexical([item.text for item in result.items])
        if result.text_source.get("ocr"):  # the words read off the photos (index --ocr)
            writer.add_lexical([item.tags.get("ocr") for item in result.items], "ocr")
        writer.add_classes(*class_arrays(result.items))
        vectors = dict(result.vectors)
        for space, arr in result.vectors.items():
            writer.add_space(space, arr)
        for name, head in plan.heads.items():
            vectors[name] = head(vectors[head.source_space])
            writer.add_space(name, vectors[name], head, hubness.item_bias(head, vectors[name]))
        if plan.calibrate:
            writer.add_trust(_trust(result, plan))
        if plan.ann:
            for space in spaces.INDEXED:
                if space in vectors:
                    info = ann.build_index(
                        vectors[space], writer.index_path(space), trees=plan.options.trees, parts=plan.parts
                    )
                    writer.add_index(space, info)
                    built[space] = info
            if "image" in built:  # duplicate candidates come from the image index just built
                parts = (
                    ann.part_files(writer.index_path("image"), built["image"], len(vectors["image"]))
                    if built["image"]["method"] == "annoy"
                    else None
                )
                table = dups.pair_table(
                    result.items,
                    vectors["image"],
                    vectors.get("colour"),
                    parts,
                    previous=_previous_pairs(live, result.encoders),
                )
                writer.add_dups(table.arrays(), dups.FEATURES)
        writer.write_skipped(result.report.skipped)
    return built


def _trust(result: EmbedResult, plan: _Plan) -> dict:
    """The manifest's ``trust`` record (``imgsearch.indexing.trust``): how far the shipped photo head can be
    trusted on this folder, and the weights its text queries get."""
    stamp = {"fitted": trust.stamp()}
    if result.text_source.get("meta"):
        return {**stamp, "why": "titled catalog: its fitted weights (text@titled) hold"}
    if "photo" not in plan.heads or "image" not in result.vectors:
        return {**stamp, "why": "no shipped photo head for these encoders: the rules weigh"}
    kind = "text@shots" if plan.shots else "text@photos"
    image_id = (result.encoders.get("image") or {}).get("id") or ""
    head = "shots" if plan.shots else "photos"
    record = trust.decide(result.vectors["image"], head, kind, fusion.load().weights.get(kind, {}), image_id)
    return {**stamp, **(record or {"why": "no familiarity reference for this image encoder"})}


def _previous_pairs(live: Generation | None, encoders: dict) -> tuple[list, dups.PairTable] | None:
    """The live generation's items and pair table, when its pair features can be reused: made
    with the same pair features from vectors of the same image encoder."""
    if live is None or (live.manifest.get("dups") or {}).get("features") != dups.FEATURES:
        return None
    if (live.encoders.get("image") or {}).get("id") != (encoders.get("image") or {}).get("id"):
        return None
    try:
        table = dups.PairTable.from_arrays(live.dup_arrays(), live.count)
    except DamagedStore:
        return None  # rebuilt from scratch
    return (list(live.items), table) if table is not None else None
