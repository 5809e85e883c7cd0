"""The ``imgsearch`` command: a thin Typer layer that parses, calls the library, renders.

Heavy modules (numpy users, TensorFlow) are imported inside the commands so
that ``imgsearch --help`` answers instantly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imgsearch.errors import UserError

_STARTED = time.perf_counter()

app = typer.Typer(
    help="Search a folder of images by example, by words, or both — from the shell, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring lines join into paragraphs, wrapped to the terminal
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root() -> None:
    """Search a folder of images by example, by words, or both — from the shell, offline.

    Start with `imgsearch index DIR`, then `imgsearch query photo.jpg --text "red bag"`.
    """


def _fail(message: str, code: int = 2) -> typer.Exit:
    _say_error(message)
    return typer.Exit(code)


def _say_error(message: str) -> None:
    from rich.text import Text

    err.print(Text("imgsearch: ", style="red") + Text(_one_line(message)), highlight=False, soft_wrap=True)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _notes(notes: list[str]) -> None:
    from rich.text import Text

    for note in notes:
        err.print(Text(f"imgsearch: {_one_line(note)}", style="yellow"), highlight=False, soft_wrap=True)


def _split_columns(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def _encoder_help(role: str) -> str:
    # the registry's names, read without importing any model code
    from imgsearch.encoders import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, REGISTRY

    def note(name: str, trusted: bool) -> str:
        if name in (DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER):
            return " (offline default)"
        return " (offline, weights from an optional pip package)" if trusted else ""

    entries = [e for e in REGISTRY if e.role == role]
    return ", ".join(e.name + note(e.name, e.trusted) for e in entries) + "."


ImageEncoderOpt = Annotated[str, typer.Option("--image-encoder", help=_encoder_help("image"))]
TextEncoderOpt = Annotated[str, typer.Option("--text-encoder", help=_encoder_help("text"))]
WeightsOpt = Annotated[
    str | None,
    typer.Option("--weights", help="Local weights file for the image encoder (e.g. resnet50 .h5)."),
]
MetaOpt = Annotated[
    Path | None,
    typer.Option(
        "--meta",
        help="Catalog CSV or JSON lines; rows join images by path, filename or id (= stem). Later runs "
        "keep it (--no-meta drops it); if it goes missing they stop rather than drop the titles. "
        "Strict: a malformed row (a quote left open, more or fewer fields than the header) or two "
        "different rows for one image (same id or path) is an error naming the line, and the index "
        "stays as it was; a row repeated exactly is fine.",
    ),
]
NoMetaOpt = Annotated[
    bool,
    typer.Option("--no-meta", help="Drop the catalog (--meta) the index was built with, and its titles."),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        help="Leave out the files under the folder that match this gitignore pattern (relative to the "
        "folder: '*.gif', 'raw/', '/drafts/**'); repeatable. Later runs keep the list; giving --exclude "
        "again replaces it, --no-exclude drops it. A .imgsearchignore at the folder's root (gitignore "
        "syntax) applies too, on every run. Excluded files leave the index like deleted ones.",
    ),
]
NoExcludeOpt = Annotated[
    bool, typer.Option("--no-exclude", help="Drop the --exclude patterns the index was built with.")
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--text-columns", help="Comma-separated metadata columns that form the item text."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
AutoTagsOpt = Annotated[
    bool,
    typer.Option(help="Give images without metadata text their auto tags (classes, colours) as text."),
]
RebuildOpt = Annotated[bool, typer.Option("--rebuild", help="Ignore existing vectors and embed everything.")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="Image encoder precision on LiteRT: fp32 (default), fp16, int8 (dynamic range) or "
        "int8-full (calibrated on your images). See README for measured speed and quality.",
    ),
]
OcrOpt = Annotated[
    bool | None,
    typer.Option(
        "--ocr/--no-ocr",
        help="Read the words printed in each photo (packaging, signs, screenshots) into the ocr "
        "space, for --text. Off unless given: 1.4-2.6 photos/s on 2 CPU cores (docs/ocr.md). Later "
        "runs keep it and read only new or changed files; --no-ocr drops it.",
    ),
]
RuntimeOpt = Annotated[
    str, typer.Option("--runtime", help="litert (default: 3-5x faster on a CPU) or keras (TensorFlow).")
]


def _embed_options(given: dict):
    """The embedding options from the parameters of a command that embeds: ``embed`` and ``index``
    name them alike, and each passes its ``locals()`` (this reads the parameters' names only)."""
    from imgsearch.embed.job import EmbedOptions
    from imgsearch.encoders.litert import PRECISIONS

    meta, exclude, runtime, precision = given["meta"], given["exclude"], given["runtime"], given["precision"]
    if meta and given["no_meta"]:
        raise _fail("--meta and --no-meta contradict each other")
    if exclude and given["no_exclude"]:
        raise _fail("--exclude and --no-exclude contradict each other")
    if exclude:
        from imgsearch.files.exclusions import check_globs

        check_globs(exclude)
    if meta and not given["text_columns"]:
        raise _fail("--meta needs --text-columns (e.g. --text-columns productDisplayName)")
    if runtime not in ("litert", "keras"):
        raise _fail("--runtime must be litert or keras")
    if precision not in PRECISIONS:
        raise _fail(f"--precision must be one of {', '.join(PRECISIONS)}")
    if precision != "fp32" and runtime != "litert":
        raise _fail("--precision needs --runtime litert")
    return EmbedOptions(
        given["image_encoder"],
        given["text_encoder"],
        given["weights"],
        meta,
        _split_columns(given["text_columns"]),
        given["auto_tags"],
        given["rebuild"],
        runtime=runtime,
        precision=precision,
        no_meta=given["no_meta"],
        exclude=exclude or None,
        no_exclude=given["no_exclude"],
        ocr=given["ocr"],
    )


def _with_progress(quiet: bool, job):
    """Run ``job(progress)`` with a progress bar on a terminal, taken down however the job ends."""
    from imgsearch.cli.progress import make_progress

    progress = make_progress(err, quiet)
    try:
        return job(progress)
    finally:
        if progress:
            progress.stop()


@app.command()
def embed(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, directories (recursive), or - for paths on stdin.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Embeddings directory to write (created or updated).")
    ],
    image_encoder: ImageEncoderOpt = "efficientnet-lite0",
    text_encoder: TextEncoderOpt = "minilm",
    weights: WeightsOpt = None,
    meta: MetaOpt = None,
    no_meta: NoMetaOpt = False,
    text_columns: ColumnsOpt = None,
    exclude: ExcludeOpt = None,
    no_exclude: NoExcludeOpt = False,
    auto_tags: AutoTagsOpt = True,
    rebuild: RebuildOpt = False,
    runtime: RuntimeOpt = "litert",
    precision: PrecisionOpt = "fp32",
    ocr: OcrOpt = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (default: this process) or beam (an Apache Beam pipeline: local worker "
            "processes, or a cluster runner; needs pip install 'imgsearch[beam]').",
        ),
    ] = "local",
    shards: Annotated[
        int | None,
        typer.Option("--shards", help="--engine beam: shards written in parallel, then merged (default 4)."),
    ] = None,
    runner: Annotated[
        str | None,
        typer.Option(
            "--runner",
            help="--engine beam: the Beam runner (default DirectRunner: one worker process per core). "
            "Further Beam options go after `--`.",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Turn images (and their titles) into vectors in an embeddings directory.

    Incremental: unchanged files (same path, size, mtime) keep their vectors, and an
    interrupted run resumes. Unreadable files are skipped and listed in skipped.tsv.
    With --engine beam, Beam pipeline options follow `--`: imgsearch embed DIR --out E
    --engine beam -- --direct_num_workers=2
    """
    from imgsearch.indexing.build import embed_folder
    from imgsearch.store import Store

    options = _embed_options(locals())
    if engine == "beam":
        from imgsearch.embed.beam.run import DEFAULT_SHARDS, BeamOptions
        from imgsearch.indexing.build import embed_folder_beam

        inputs, beam_args = _beam_args(inputs)
        beam = BeamOptions(shards or DEFAULT_SHARDS, runner or "DirectRunner", beam_args)
        report = _with_progress(
            quiet, lambda progress: embed_folder_beam(inputs, Store(out), options, beam, progress)
        )
    elif engine == "local":
        if shards is not None or runner is not None:
            raise _fail("--shards and --runner need --engine beam")
        report = _with_progress(quiet, lambda progress: embed_folder(inputs, Store(out), options, progress))
    else:
        raise _fail("--engine must be local or beam")
    _notes(report.notes)
    if not quiet:
        from imgsearch.cli.render import print_embed_report

        print_embed_report(err, report)


def _beam_args(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Split the Beam options (everything after `--` on the command line) from the sources:
    click hands both over as one list of arguments, the options last."""
    argv = sys.argv[1:]
    if "--" not in argv:
        return inputs, []
    after = argv[argv.index("--") + 1 :]
    if not after:
        return inputs, []
    if inputs[-len(after) :] != after or len(inputs) == len(after):
        raise _fail("with --engine beam, sources go before `--` and Beam options after it")
    return inputs[: -len(after)], after


TreesOpt = Annotated[
    int | None,
    typer.Option(
        "--trees",
        min=1,
        help="Annoy trees (default 10, measured recall@10 ≥ 0.98 against exact search at 100k items). "
        "More trees: bigger index and slower build for a little more recall.",
    ),
]
PartsOpt = Annotated[
    int | None,
    typer.Option(
        "--parts",
        min=1,
        help="Annoy indexes per space, each over a slice of the items; a query searches them all and "
        "merges the top k exactly. Default: as the index has them, else one. Parts under 8,000 items "
        "are merged (bench/scale_query.py measures latency by part count).",
    ),
]
# `index --shards` named the parts until 0.2; kept hidden for one release
OldPartsOpt = Annotated[int | None, typer.Option("--shards", min=1, hidden=True)]


def _parts(info: dict) -> str:
    from imgsearch.indexing.ann import part_count

    parts = part_count(info)
    return f" × {parts} parts" if parts > 1 else ""


@app.command()
def index(
    target: Annotated[
        Path, typer.Argument(help="Image folder (embedded incrementally), or an embeddings dir to index.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where the index goes (default: TARGET/.imgsearch).")
    ] = None,
    image_encoder: ImageEncoderOpt = "efficientnet-lite0",
    text_encoder: TextEncoderOpt = "minilm",
    weights: WeightsOpt = None,
    meta: MetaOpt = None,
    no_meta: NoMetaOpt = False,
    text_columns: ColumnsOpt = None,
    exclude: ExcludeOpt = None,
    no_exclude: NoExcludeOpt = False,
    auto_tags: AutoTagsOpt = True,
    rebuild: RebuildOpt = False,
    runtime: RuntimeOpt = "litert",
    precision: PrecisionOpt = "fp32",
    trees: TreesOpt = None,
    parts: PartsOpt = None,
    old_parts: OldPartsOpt = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="Model dir from `imgsearch train`: its heads go into the index."),
    ] = None,
    no_model: Annotated[
        bool, typer.Option("--no-model", help="Drop the trained heads the index holds (see --model).")
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Weigh text search on a folder without titles by how like the photo head's training "
            "photos its photos are (recorded in the index; see docs/domains.md).",
        ),
    ] = True,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Then keep watching TARGET and re-index after its changes settle, until Ctrl-C "
            "(queries and `serve` see each new index as it is published).",
        ),
    ] = False,
    settle: Annotated[
        float,
        typer.Option("--settle", help="With --watch: seconds without changes before re-indexing.", min=0.1),
    ] = 2.0,
    ocr: OcrOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Embed what is new or changed in a folder and build its search index.

    Only new or changed files (path, size, mtime) are embedded; deleted files drop out.
    The index lives in TARGET/.imgsearch and is replaced atomically: queries running
    meanwhile see the old index or the new one. Collections under 8,000 items are
    searched exactly; larger ones through Annoy (recall@10 ≥ 0.98 measured at 100k).
    Each new or changed file's EXIF (date taken, camera, lens, GPS, and the place
    the GPS names, offline) is kept for `query --taken-after/--place/--camera`.
    """
    from imgsearch.api import Index

    if model is not None and no_model:
        raise _fail("--model and --no-model contradict each other")
    options = _embed_options(locals())

    def run(options, model: Path | None, no_model: bool) -> None:
        built = _with_progress(
            quiet,
            lambda progress: Index.build(
                target,
                out=out,
                parts=parts if parts is not None else old_parts,
                trees=trees,
                model=model,
                no_model=no_model,
                calibrate=calibrate,
                progress=progress,
                **vars(options),
            ),
        )
        _print_index_report(built.report, quiet)

    run(options, model, no_model)
    if watch:
        from dataclasses import replace

        # later rounds are plain re-indexes: what is sticky (catalog, heads, exclusions) stays
        _watch(target, out, lambda: run(replace(options, rebuild=False), None, False), settle, quiet)


def _watch(target: Path, out: Path | None, reindex, settle: float, quiet: bool) -> None:
    from imgsearch.indexing.watch import watch_folder
    from imgsearch.store import STORE_DIRNAME

    if not target.is_dir():
        raise _fail(f"--watch: {target} is not a folder")

    def guarded() -> None:  # a bad moment (a catalog being rewritten) is said, and watching goes on
        try:
            reindex()
        except UserError as exc:
            _say_error(str(exc))

    if not quiet:
        err.print(f"watching {target} (Ctrl-C to stop)", highlight=False)
    try:
        watch_folder(target, out or target / STORE_DIRNAME, guarded, settle)
    except KeyboardInterrupt:
        if not quiet:
            err.print("stopped watching", highlight=False)


def _print_index_report(report, quiet: bool) -> None:
    _notes(report.notes)
    if not quiet:
        from imgsearch.cli.render import print_embed_report

        if report.embed:
            print_embed_report(err, report.embed)
        built = ", ".join(
            f"{s}: {i['method']}" + (f" ({i['trees']} trees{_parts(i)})" if i["trees"] else "")
            for s, i in report.indexes.items()
        )
        err.print(
            f"index {'built' if report.rebuilt else 'up to date'} at {report.store} ({built})",
            highlight=False,
        )


@app.command()
def query(
    images: Annotated[
        list[str] | None,
        typer.Argument(help="Query images (paths), or - for image bytes on stdin (at most 256 MB)."),
    ] = None,
    text: Annotated[
        list[str] | None,
        typer.Option("--text", "-t", help='Query text; repeatable; "2:red bag" weighs it 2.'),
    ] = None,
    not_text: Annotated[
        list[str] | None, typer.Option("--not", help="Text to move away from; repeatable.")
    ] = None,
    not_image: Annotated[
        list[str] | None, typer.Option("--not-image", help="Image to move away from; repeatable.")
    ] = None,
    weight: Annotated[
        str | None,
        typer.Option(
            "--weight",
            help="Space weights from -1000 to 1000, e.g. image=0.3,text=0.7,colour=1; spaces: "
            + _space_names()
            + " (defaults depend on the query and what the index holds; see README).",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", help="Number of results.")] = 10,
    like: Annotated[
        list[str] | None,
        typer.Option(
            "--like",
            help="Indexed item (id or path) to move towards; repeatable; alone: more like it.",
        ),
    ] = None,
    unlike: Annotated[
        list[str] | None,
        typer.Option(
            "--unlike",
            help="Indexed item (id or path) to move away from; repeatable.",
        ),
    ] = None,
    taken_after: Annotated[
        str | None,
        typer.Option(
            "--taken-after",
            help="Only photos taken on or after the start of this date: YYYY, YYYY-MM or YYYY-MM-DD "
            "(EXIF date taken).",
        ),
    ] = None,
    taken_before: Annotated[
        str | None,
        typer.Option(
            "--taken-before",
            help="Only photos taken before the start of this date (YYYY, YYYY-MM, YYYY-MM-DD): "
            "--taken-after 2019-06 --taken-before 2019-09 is June to August 2019.",
        ),
    ] = None,
    place: Annotated[
        str | None,
        typer.Option(
            "--place",
            help="Only photos whose GPS place (city, region, country; named offline at index time) "
            'includes this name, e.g. Lisbon, Portugal or "Lisbon, Portugal"; any case.',
        ),
    ] = None,
    camera: Annotated[
        str | None,
        typer.Option(
            "--camera", help='Only photos from a camera whose make and model contain this, e.g. "Pixel 7".'
        ),
    ] = None,
    index_path: Annotated[
        Path | None, typer.Option("--index", help="Index dir (default: nearest .imgsearch upwards).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="table | paths | json | tsv (default: table on a terminal, else paths)."
        ),
    ] = None,
    timings: Annotated[
        bool, typer.Option("--timings", help="Print wall time per step (start-up, models, encode, search).")
    ] = False,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="With --batch: append the lines that carry like/unlike to the index's feedback log, "
            "for `train --from-log`.",
        ),
    ] = False,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help='JSON-lines file of queries (or -): {"image": [...], "text": [...], '
            '"not": [...], "not_image": [...], "like": [...], "unlike": [...], "k": 10, '
            '"weight": {...}, "taken_after": "2019-06", "taken_before": "2019-09", "place": "Lisbon", '
            '"camera": "Pixel 7"}; answers as JSON lines '
            "(a bad line gets its own error line; exit 2 if any failed).",
        ),
    ] = None,
    print0: Annotated[
        bool, typer.Option("--print0", "-0", help="Paths ended by NUL instead of newline (for xargs -0).")
    ] = False,
    image_encoder: Annotated[
        str | None,
        typer.Option(
            "--image-encoder",
            help="Allow loading this image encoder if the index needs it (the offline defaults and "
            "your cached exports always load; an index never decides what gets downloaded).",
        ),
    ] = None,
    text_encoder: Annotated[
        str | None,
        typer.Option("--text-encoder", help="Allow loading this text encoder (see --image-encoder)."),
    ] = None,
    sheet: Annotated[
        Path | None,
        typer.Option("--sheet", help="Also write the results as a contact sheet (PNG: rank, score, name)."),
    ] = None,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview", help="Show thumbnails inline (kitty or iTerm2 image protocol), else the table."
        ),
    ] = False,
) -> None:
    """Search by image, by text, or both; results ranked by fused, calibrated scores.

    Each space (image, classes, text, colour, lexical BM25, wordnet nouns,
    and trained or shipped heads: aligned, metric, photo) is standardised
    per query, then summed with weights fitted per kind of query, or rule
    weights where the index lacks a head they weigh (see README).
    A photo with text asks for "this, but red": in the photo head's
    space the two are added, the photo's own colour taken out first
    when the text names a colour. Words alone score each photo there
    less its hubness bias (how near it sits to most queries of their
    kind: a few words, or a sentence).

    Filters (--taken-after, --taken-before, --place, --camera) read the
    EXIF kept at index time and pick the photos before they are ranked;
    alone, they list the matches by date taken. Photos without the EXIF
    a filter needs are left out and counted on stderr.

    Exit status: 0 with results, 1 with none, 2 on error.
    """
    from imgsearch.api import Index
    from imgsearch.cli import render
    from imgsearch.search import filters
    from imgsearch.search.query import build_query

    fmt = fmt or ("table" if sys.stdout.isatty() else "paths")
    if fmt not in render.FORMATS:
        raise _fail(f"--format must be one of {', '.join(render.FORMATS)}")
    clock = _Clock()
    found = Index.open(index_path, image_encoder=image_encoder, text_encoder=text_encoder)
    gen = found.generation
    clock.lap("index")
    if batch is not None:
        with _pipe_guard():
            status = found.batch(batch, sys.stdout, log=log)
        raise typer.Exit(status)
    if log:
        raise _fail("--log goes with --batch (serve logs its queries itself)")
    q = build_query(
        images or [],
        text or [],
        not_text or [],
        not_image or [],
        top,
        weight,
        like or [],
        unlike or [],
        filters.make(taken_after, taken_before, place, camera),
    )
    hits = _search_timed(found, q, clock) if timings else found.run(q)
    clock.lap("search")
    _notes(found.notes)
    if sheet is not None and hits:
        from imgsearch.cli.preview import write_sheet
        from imgsearch.files.roots import Roots

        err.print(f"wrote {write_sheet(hits, sheet, Roots.of(gen))}", highlight=False)
    if preview:
        fmt = _preview(hits, gen) or fmt
    with _pipe_guard():
        quoted = render.render_hits(hits, fmt, sys.stdout if fmt != "table" else None, nul=print0)
    if quoted:
        _notes([f"{quoted} path(s) with line breaks were written as JSON strings; use -0 for exact names"])
    if timings:
        clock.lap("output")
        err.print(clock.report(), highlight=False)
    raise typer.Exit(0 if hits else 1)


def _preview(hits, gen) -> str | None:
    """Draw the hits inline when the terminal can: "none" then (nothing else to print), else None."""
    from imgsearch.cli.preview import preview, terminal_protocol
    from imgsearch.files.roots import Roots

    protocol = terminal_protocol(os.environ) if sys.stdout.isatty() else None
    if protocol is None:
        _notes(["--preview: no inline images here (kitty or iTerm2 protocol on a terminal)"])
        return None
    with _pipe_guard():
        sys.stdout.write(preview(hits, protocol, Roots.of(gen)))
    return "none"


@contextlib.contextmanager
def _pipe_guard():
    """A reader that stops early (`| head -1`) is not an error: stop writing, exit 0."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        raise typer.Exit(0) from None


@app.command()
def serve(
    index_path: Annotated[
        Path | None, typer.Option("--index", help="Index dir (default: nearest .imgsearch upwards).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; other than loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Bearer token every API call must carry (open the page at /#token=T)."),
    ] = None,
    no_log: Annotated[
        bool,
        typer.Option(
            "--no-log",
            help="Do not append the queries and their likes to the index's feedback log "
            "(`imgsearch log`, `train --from-log`).",
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Also keep the index current: re-index its folder after changes settle, with the "
            "encoders it was made with; the page answers from each new index as it is published.",
        ),
    ] = False,
    settle: Annotated[
        float,
        typer.Option("--settle", help="With --watch: seconds without changes before re-indexing.", min=0.1),
    ] = 2.0,
) -> None:
    """Serve the index over HTTP: a search page at / and a JSON API (see README), warm between queries.

    POST /api/query takes one --batch line and answers its result line. A new generation
    published by `imgsearch index` is picked up between requests. Each query, with the
    results liked and unliked, goes to the index's feedback log (item ids and the query's
    words, never images) unless --no-log. Ctrl-C stops it.
    """
    from imgsearch.serve.app import run
    from imgsearch.store import find_store

    run(find_store(index_path), host, port, token, feedback_log=not no_log, watch=settle if watch else None)


def _search_timed(index, q, clock: _Clock):
    """``index.run`` with model loading and encoding timed apart from the search itself."""
    index.load_models(image=bool(q.images or q.not_images), text=bool(q.texts))
    clock.lap("models")
    vectors = index.encode(q)
    clock.lap("encode")
    return index.run(q, vectors=vectors)


class _Clock:
    """Wall time per step of a query, for --timings; start-up = Python + imports before the command."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self.laps = [("start-up", self._now() - _STARTED + _startup_before_import())]
        self._last = self._now()

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps.append((name, now - self._last))
        self._last = now

    def report(self) -> str:
        return "timings: " + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in self.laps)


def _startup_before_import() -> float:
    """Seconds from process start to this module's import (Linux /proc; 0 elsewhere)."""
    import os
    import time

    try:
        ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = float(Path("/proc/uptime").read_text().split()[0])
        started_ago = boot - ticks / os.sysconf("SC_CLK_TCK")
        return max(0.0, started_ago - (time.perf_counter() - _STARTED))
    except (OSError, ValueError, IndexError):
        return 0.0


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    meta: Annotated[
        Path | None,
        typer.Option("--meta", help="Catalog CSV/JSON lines with the labels (not with --from-log)."),
    ] = None,
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log",
            help="Learn the text→image head from the index's feedback log (the likes and unlikes of "
            "`serve` and `query --batch --log`) instead of a catalog; written only if it ranks the "
            "log's held-out queries better than the index's current head.",
        ),
    ] = False,
    heads: Annotated[
        str, typer.Option("--heads", help="aligned (image→text, needs titles) and/or metric (needs labels).")
    ] = "aligned,metric",
    label_column: Annotated[
        str, typer.Option("--label-column", help="Label column(s) for the metric head.")
    ] = "articleType",
    epochs: Annotated[
        int, typer.Option("--epochs", help="Most epochs; early stopping usually ends sooner.")
    ] = 40,
    hidden: Annotated[int, typer.Option("--hidden", help="Hidden layer width (0 = linear head).")] = 0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Items per step (contrastive losses like large batches).")
    ] = 256,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    learning_rate: Annotated[
        float, typer.Option("--learning-rate", help="AdamW step size.", min=1e-6, max=1.0)
    ] = 1e-3,
    finetune_blocks: Annotated[
        int,
        typer.Option(
            "--finetune-blocks",
            help="Also fine-tune the top N blocks of the image backbone (with --heads metric; "
            "augmented images; slow on a CPU, meant for GPUs). Makes a new image encoder.",
        ),
    ] = 0,
    index_path: Annotated[Path | None, typer.Option("--index", help="Index dir (default: nearest).")] = None,
) -> None:
    """Train heads on the frozen vectors of an index (seconds to minutes on a CPU).

    With --meta: split by product id (id mod 5 == 0 is the test split and is never trained
    on; a seeded 10% of the rest drives early stopping). With --from-log: the queries users
    liked results for, one in five held out. Then `imgsearch index DIR --model OUT`.
    """
    from imgsearch.store import find_store
    from imgsearch.train.job import run_training
    from imgsearch.train.transfer import TrainConfig

    if from_log == (meta is not None):
        raise _fail("give --meta (train on a catalog) or --from-log (on the feedback log), one of them")
    gen = find_store(index_path).require()
    cfg = TrainConfig(
        epochs=epochs, hidden=hidden, seed=seed, batch_size=batch_size, learning_rate=learning_rate
    )

    def report(name: str, log) -> None:
        err.print(
            f"{name} epoch {log.epoch:2d}: loss {log.loss:.4f}, val recall@10 {log.val_recall10:.3f} "
            f"({log.seconds:.1f} s)",
            highlight=False,
        )

    if from_log:
        from imgsearch.api import Index
        from imgsearch.train.job import run_log_training

        index = Index(gen)
        lines, written = run_log_training(gen, index.feedback_log, index.encoder, out, cfg, report)
        for line in lines:
            err.print(line, highlight=False)
        raise typer.Exit(0 if written else 1)
    summary = run_training(
        gen,
        meta,
        _split_columns(heads),
        _split_columns(label_column),
        out,
        cfg,
        finetune_blocks=finetune_blocks,
        report=report,
    )
    for line in summary:
        err.print(line, highlight=False)


@app.command("eval")
def evaluate_cmd(
    meta: Annotated[Path, typer.Option("--meta", help="Catalog CSV/JSON lines with the labels.")],
    label_column: Annotated[
        str,
        typer.Option("--label-column", help="Label column(s); relevant = same value(s), e.g. articleType."),
    ] = "articleType",
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help="Text→image: CSV/JSONL with query,relevant "
            "(relevant = label filter like articleType=Handbags,baseColour=Red, or ids).",
        ),
    ] = None,
    hide_text: Annotated[
        bool, typer.Option("--hide-text", help="Ignore item texts; score images alone (auto tags).")
    ] = False,
    split: Annotated[str, typer.Option("--split", help="test (id mod 5 == 0), train or all.")] = "all",
    sample: Annotated[
        int, typer.Option("--sample", help="Image→image: query items sampled (0 = all).")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    index_path: Annotated[Path | None, typer.Option("--index", help="Index dir (default: nearest).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """Measure search quality on labelled data: precision, recall, mAP and F1 at k = 1, 5, 10, 50.

    Without --queries: image→image, every sampled labelled item queries the rest.
    With --queries: text→image through the same fused search as `query`.
    """
    from imgsearch.cli.render import print_metrics
    from imgsearch.store import find_store
    from imgsearch.train import evaluate as ev
    from imgsearch.train.splits import split_rows

    gen = find_store(index_path).require()
    rows = split_rows(gen, split)
    if queries is None:
        labels = ev.load_labels(gen, meta, _split_columns(label_column))
        metrics = ev.image_to_image(
            gen.vectors[ev.image_space(gen)], labels, sample=sample or None, seed=seed, rows=rows
        )
        title = f"image → image, relevant = same {label_column}, {split} split"
    else:
        metrics = ev.evaluate_text(gen, meta, queries, hide_text=hide_text, rows=rows)
        title = f"text → image ({'images only' if hide_text else 'with item text'}), {split} split"
    if fmt == "json":
        import json

        print(json.dumps({"eval": title, **metrics.to_json()}))
    else:
        print_metrics(Console(), title, metrics)


def _space_names() -> str:
    from imgsearch.spaces import help_text

    return help_text()


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's usage-error and abort classes: Typer 0.20+ raises those of its own copy of click."""
    import click

    modules = [click.exceptions]
    try:
        from typer._click import exceptions as vendored  # type: ignore[import-not-found]

        modules.append(vendored)
    except ImportError:
        pass
    return tuple(m.ClickException for m in modules), tuple(
        getattr(m, "Abort", KeyboardInterrupt) for m in modules
    )


def main() -> None:
    """Entry point: every failure is one line on stderr and exit 2, never a traceback.

    Exit status: 0 done (or results found), 1 no results, 2 error, 130 interrupted.
    ``IMGSEARCH_DEBUG=1`` shows the traceback of an unexpected error.
    """
    usage_error, abort = _click_exceptions()
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # file names that are not UTF-8 print as escapes
            stream.reconfigure(errors="backslashreplace")
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:  # usage errors, in click's own words
        exc.show()
        code = exc.exit_code
    except abort:
        code = 130
    except UserError as exc:
        _say_error(str(exc))
        code = 2
    except OSError as exc:
        _say_error(_os_error(exc))
        code = 2
    except MemoryError:
        _say_error("out of memory")
        code = 2
    except Exception as exc:
        if os.environ.get("IMGSEARCH_DEBUG"):
            raise
        _say_error(f"unexpected error ({type(exc).__name__}: {exc}); IMGSEARCH_DEBUG=1 shows the traceback")
        code = 2
    if code == 130:
        err.print("imgsearch: interrupted; finished chunks are kept, run the same command again to resume")
    sys.exit(code or 0)


def _os_error(exc: OSError) -> str:
    """A file-system failure as the user would say it: what, where, and for a full disk what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        return f"{where}no space left on device; nothing was published, free some space and run it again"
    if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return f"{where}{reason}; choose a writable place with --out"
    return f"{where}{reason}"


@app.command("log")
def log_cmd(
    index_path: Annotated[Path | None, typer.Option("--index", help="Index dir (default: nearest).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Delete the feedback log.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
) -> None:
    """What the feedback log holds: queries, likes and unlikes, items touched.

    `serve` appends every query it answers (unless --no-log), `query --batch --log` the
    lines that carry like/unlike. It keeps item ids and the query's words, never images,
    in INDEX/feedback.jsonl; `train --from-log` learns from it; --clear deletes it.
    """
    import json

    from imgsearch.store import FeedbackLog, find_store

    if fmt not in ("table", "json"):
        raise _fail("--format must be table or json")
    feedback = FeedbackLog(find_store(index_path))
    if clear:
        err.print(
            "deleted the feedback log" if feedback.clear() else "no feedback log to delete", highlight=False
        )
        raise typer.Exit(0)
    summary = feedback.summary()
    if fmt == "json":
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key.replace('_', ' ')}: {value}")
    raise typer.Exit(0 if summary["queries"] else 1)


@app.command()
def dups(
    target: Annotated[
        Path | None, typer.Argument(help="Indexed folder (default: nearest .imgsearch upwards).")
    ] = None,
    index_path: Annotated[Path | None, typer.Option("--index", help="Index dir (instead of DIR).")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Duplicate score (0-1) a pair needs; default 0.6, chosen on bench/dups.py. "
            "Lower finds more edited copies and more look-alikes.",
        ),
    ] = None,
    exact_only: Annotated[bool, typer.Option("--exact-only", help="Only byte-identical files.")] = False,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="table | paths | json (default: table on a terminal, else paths)."
        ),
    ] = None,
    print0: Annotated[
        bool,
        typer.Option(
            "--print0", "-0", help="With paths: each path ends in NUL and each group in one more NUL."
        ),
    ] = False,
    copies: Annotated[
        bool,
        typer.Option(
            "--copies",
            help="Paths of the copies only: every member but the first of each group, one per line "
            "(with -0: NUL-ended), to delete: `imgsearch dups DIR --copies -0 | xargs -0 -r rm --`.",
        ),
    ] = False,
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="Also draw the groups as rows of thumbnails (PNG).")
    ] = None,
) -> None:
    """Find exact (same bytes) and near-duplicate images (resized, recompressed, cropped, marked).

    Vector neighbours propose pairs; a score from the image cosine, lined-up thumbnails, pHash
    and colour decides (see README). Groups are connected components, the largest file first.
    Right before output each file is checked against the index (size, mtime): files gone or
    changed since are left out, with a note; so is a group whose first file is.
    Exit status: 0 with groups, 1 with none, 2 on error.
    """
    from imgsearch.api import Index

    fmt = fmt or ("table" if sys.stdout.isatty() and not (print0 or copies) else "paths")
    if fmt not in ("table", "paths", "json"):
        raise _fail("--format must be one of table, paths, json")
    if print0 and fmt != "paths":
        raise _fail("--print0 goes with --format paths")
    if copies and fmt != "paths":
        raise _fail("--copies goes with --format paths")
    if target is not None and index_path is not None:
        raise _fail("give DIR or --index, not both")
    found = Index.open(index_path or target)
    gen = found.generation
    groups = found.duplicates(threshold, exact_only=exact_only)  # checked against the files as they are
    _notes(found.notes)
    from imgsearch.cli.render import render_groups

    with _pipe_guard():
        quoted = render_groups(gen, groups, fmt, sys.stdout, nul=print0, copies=copies)
    if quoted:
        _notes([f"{quoted} path(s) with a tab or line break were written as JSON strings; use -0"])
    if sheet is not None and groups:
        _dups_sheet(gen, groups, sheet)
    raise typer.Exit(0 if groups else 1)


def _dups_sheet(gen, groups, out: Path) -> None:
    from imgsearch.cli.sheet import Cell, contact_sheet
    from imgsearch.files.roots import Roots

    rows = [
        [
            Cell(gen.items[r].path, f"{s:.2f} {Path(gen.items[r].path).name}")
            for r, s in zip(g.rows, g.similarity, strict=True)
        ]
        for g in groups
    ]
    contact_sheet(rows, out, roots=Roots.of(gen))  # only files inside the indexed folders are drawn
    err.print(f"wrote {out} ({len(groups)} group{'s' if len(groups) != 1 else ''})", highlight=False)
