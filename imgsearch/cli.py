"""The ``imgsearch`` command: a thin Typer layer that parses, calls the library, renders.

Heavy modules (numpy users, TensorFlow) are imported inside the commands so
that ``imgsearch --help`` answers instantly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imgsearch.errors import UserError

app = typer.Typer(
    help="Search a folder of images by example, by words, or both — from the shell, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Search a folder of images by example, by words, or both — from the shell, offline.

    Start with `imgsearch index DIR`, then `imgsearch query photo.jpg --text "red bag"`.
    """


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]imgsearch:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _split_columns(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


ImageEncoderOpt = Annotated[
    str,
    typer.Option("--image-encoder", help="efficientnet-lite0 (offline default), resnet50, hub:<url-or-dir>."),
]
TextEncoderOpt = Annotated[
    str, typer.Option("--text-encoder", help="minilm (offline default), bert-base, hf://<owner/name>.")
]
WeightsOpt = Annotated[
    str | None,
    typer.Option("--weights", help="Local weights file for the image encoder (e.g. resnet50 .h5)."),
]
MetaOpt = Annotated[
    Path | None,
    typer.Option(
        "--meta", help="Catalog CSV or JSON lines; rows join images by path, filename or id (= stem)."
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--text-columns", help="Comma-separated metadata columns that form the item text."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]


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
    text_columns: ColumnsOpt = None,
    auto_tags: Annotated[
        bool,
        typer.Option(help="Give images without metadata text their auto tags (classes, colours) as text."),
    ] = True,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Ignore existing vectors and embed everything.")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Turn images (and their titles) into vectors in an embeddings directory.

    Incremental: unchanged files (same path, size, mtime) keep their vectors, and an
    interrupted run resumes. Unreadable files are skipped and listed in skipped.tsv.
    """
    from imgsearch.embed import EmbedOptions
    from imgsearch.embed import embed as run_embed
    from imgsearch.progress import make_progress
    from imgsearch.store import Store

    if meta and not text_columns:
        raise _fail("--meta needs --text-columns (e.g. --text-columns productDisplayName)")
    options = EmbedOptions(
        image_encoder, text_encoder, weights, meta, _split_columns(text_columns), auto_tags, rebuild
    )
    progress = make_progress(err, quiet)
    try:
        report = run_embed(inputs, Store(out), options, progress)
    finally:
        if progress:
            progress.stop()
    if not quiet:
        from imgsearch.render import print_embed_report

        print_embed_report(err, report)


def main() -> None:
    """Entry point: user mistakes become one line on stderr and exit code 2."""
    try:
        app()
    except UserError as exc:
        err.print(f"[red]imgsearch:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("imgsearch: interrupted; finished chunks are kept, run the same command again to resume")
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
