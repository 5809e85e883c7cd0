"""``imgsearch embed --engine beam``: the embedding job as an Apache Beam pipeline, for many workers.

The pipeline (``beam_pipeline``) lists the sources with Beam's file systems (so ``gs://`` and other
paths work where Beam's extras for them are installed), joins the catalog text, splits the files
into shards by a hash of their path, decodes them and runs the same encoders as the local engine
through ``RunInference``; each shard becomes a store of its own under ``OUT/shards/``. This driver
then reads the shards back and hands one merged result to ``build``, which publishes it as one
generation (heads included), exactly as the local engine's result.

Resume: a shard is written all at once together with what it was made from (encoder ids and a
digest of its files and their text); a rerun skips the shards that are complete for the same
inputs. Apache Beam is an optional extra: nothing here imports it at module level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from imgsearch import store
from imgsearch.embed import colors, ocr
from imgsearch.embed.beam.plan import Plan, Source
from imgsearch.embed.job import (
    EmbedOptions,
    EmbedReport,
    EmbedResult,
    Encoders,
    Progress,
    exclude_entry,
    kept_manifest,
    load_catalog,
    sticky_exclusions,
    text_source,
)
from imgsearch.encoders import ImageEncoder, TextEncoder
from imgsearch.errors import UserError
from imgsearch.files.catalog import Metadata, expand_stdin
from imgsearch.files.exclusions import check_globs, matcher
from imgsearch.files.roots import covering_roots
from imgsearch.store import Item, Store

# Runners that mean "this machine": Beam's FnApiRunner, never the Prism runner the DirectRunner
# tries first (Prism downloads its binary at run time).
LOCAL_RUNNERS = ("DirectRunner", "direct", "FnApiRunner")
DEFAULT_SHARDS = 4
INSTALL_HINT = "pip install 'imgsearch[beam]'"


@dataclass
class BeamOptions:
    shards: int = DEFAULT_SHARDS
    runner: str = "DirectRunner"
    args: list[str] = field(default_factory=list)  # Beam pipeline options, as given after `--`


def require_beam() -> None:
    try:
        with quiet_beam():
            import apache_beam  # noqa: F401
    except ImportError:
        raise UserError(f"--engine beam needs Apache Beam: {INSTALL_HINT}") from None


@contextlib.contextmanager
def quiet_beam() -> Iterator[None]:
    """Beam logs every stage at INFO, and a warning about Google Cloud clients we never use through
    the root logger (which, with no handler, would print it): keep the terminal for real errors."""
    root, beam_logger = logging.getLogger(), logging.getLogger("apache_beam")
    levels = root.level, beam_logger.level
    silent = logging.NullHandler()
    root.addHandler(silent)
    root.setLevel(logging.ERROR)
    beam_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.removeHandler(silent)
        root.setLevel(levels[0])
        beam_logger.setLevel(levels[1])


def embed_job(
    inputs: list[str],
    target: Store,
    options: EmbedOptions,
    previous: store.Generation | None,
    encoders: Encoders,
    engine: BeamOptions,
    progress: Progress | None = None,
    stdin=None,
    image: ImageEncoder | None = None,
    text: TextEncoder | None = None,
) -> EmbedResult:
    """Run the pipeline into ``target/shards`` and merge the shards; the caller holds the lock."""
    started = time.perf_counter()
    if engine.shards < 1:
        raise UserError("--shards must be at least 1")
    sources, missing = expand_sources(inputs, stdin)
    if not sources:
        raise UserError(f"{missing[0][0]}: {missing[0][1]}" if missing else "nothing to embed")
    kept = kept_manifest(previous, target)  # what sticks from the last run, even under --rebuild
    sources, exclude = attach_exclusions(options, kept, sources)
    options, catalog = load_catalog(options, kept)
    options = replace(options, ocr=ocr.enabled(options.ocr, kept))
    if options.ocr:
        ocr.require()
    previous = None if options.rebuild else previous
    if previous is not None:
        store.check_encoders(previous.manifest, encoders.expected_ids(), target.root)
    plan = make_plan(sources, target, options, encoders, engine, catalog)
    plan.image, plan.text = image, text  # given encoders travel with the pipeline; named ones load per worker
    # --rebuild embeds everything again; otherwise complete shards of the same files are kept
    store.prepare_shards(target.root, 0 if options.rebuild else engine.shards)
    if progress is not None:
        progress.note(f"embedding with Apache Beam ({_runner_name(engine)}, {engine.shards} shards)")
    counters = run_pipeline(plan, engine)
    pipeline_seconds = time.perf_counter() - started
    items, vectors, skipped = store.read_shards(target.root, engine.shards, plan.key)
    report = EmbedReport(target.root, skipped=missing + skipped, excluded=counters.get("files_excluded", 0))
    report.resumed = counters.get("items_resumed", 0)
    report.embedded_per_second = counters.get("images_embedded", 0) / max(pipeline_seconds, 1e-9)
    result = _result(items, vectors, previous, plan, report, exclude)
    report.seconds = time.perf_counter() - started
    return result


def attach_exclusions(
    options: EmbedOptions, manifest: dict | None, sources: list[Source]
) -> tuple[list[Source], dict | None]:
    """Each local folder with its exclusions (``--exclude``, kept ones included, then its
    ``.imgsearchignore``), applied by the workers as they list it, and what the manifest keeps.
    A folder in object storage cannot have them read here: exclusions there are refused, rather
    than embedding what they leave out."""
    globs = sticky_exclusions(options, manifest)
    check_globs(globs)
    ignore_files: list[str] = []
    attached = []
    for source in sources:
        if source.kind != "dir":
            attached.append(source)
            continue
        if "://" in source.root:
            if globs:
                raise UserError(f"--exclude: --engine beam applies it to local folders, not {source.root}")
            attached.append(source)
            continue
        rules = matcher(Path(source.root), globs)  # as `scan` reads them; a bad line is said here
        if rules is not None and rules.ignore_file:
            ignore_files.append(rules.ignore_file)
        attached.append(replace(source, exclude=rules.lines if rules else ()))
    return attached, exclude_entry(globs, ignore_files)


def expand_sources(inputs: list[str], stdin=None) -> tuple[list[Source], list[tuple[str, str]]]:
    """Sources to list, and the local paths that name nothing (skipped, as ``scan`` does)."""
    sources: list[Source] = []
    missing: list[tuple[str, str]] = []
    for raw in expand_stdin(inputs, stdin):
        if "://" in raw:
            kind = "dir" if raw.endswith("/") else "glob" if _has_glob(raw) else "file"
            sources.append(Source(raw + "**" if kind == "dir" else raw, kind, raw.rstrip("/")))
            continue
        path = os.path.abspath(os.path.expanduser(raw))
        if os.path.isdir(path):
            sources.append(Source(path.rstrip("/") + "/**", "dir", path))
        elif os.path.lexists(path):
            sources.append(Source(path, "file"))
        elif _has_glob(raw):
            sources.append(Source(path, "glob"))
        else:
            missing.append((raw, "no such file or directory"))
    return sources, missing


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def make_plan(
    sources: list[Source],
    target: Store,
    options: EmbedOptions,
    encoders: Encoders,
    engine: BeamOptions,
    catalog: Metadata | None = None,
) -> Plan:
    """Load the encoders here once (this also makes their LiteRT export, so workers never race to)."""
    o = options
    if o.runtime == "litert" and o.precision == "int8-full":
        from imgsearch.encoders import cheap_id
        from imgsearch.encoders.litert import cached_path

        spec_id = cheap_id("image", o.image_encoder, o.weights)
        if spec_id is None or not cached_path(spec_id, "int8-full").exists():
            raise UserError(
                "--engine beam with --precision int8-full needs the calibrated export: "
                "run `imgsearch embed` with --precision int8-full once locally first"
            )
    specs = encoders.specs()
    # every stage that holds the plan unpickles it in every worker: ship the text columns only
    # (the whole 9,583-row fashion catalog added 2.7 s to each run, bench/scale.py)
    meta = catalog.narrowed(o.text_columns) if catalog else None
    dims = {
        "image": int(specs["image"]["dim"]),
        "text": int(specs["text"]["dim"]),
        "colour": len(colors.PALETTE_NAMES),
    }
    return Plan(
        sources,
        engine.shards,
        os.path.abspath(target.root),  # workers write their shards there, from any directory
        # a shard read without OCR is not complete for a run with it (the key of a run without
        # it is what it was, so shards written before OCR existed are still reused)
        {**encoders.chunk_key(), "auto_tags": o.auto_tags} | ({"ocr": ocr.ENGINE} if o.ocr else {}),
        specs,
        text_source(o),
        o,
        encoders.image.image_size,
        dims,
        meta,
    )


# --- running and merging ----------------------------------------------------------------------------


def _runner_name(engine: BeamOptions) -> str:
    """The runner that will run: the last ``--runner`` after `--` wins over ``--runner R``."""
    found = engine.runner
    for n, arg in enumerate(engine.args):
        if arg.startswith("--runner="):
            found = arg.split("=", 1)[1]
        elif arg == "--runner" and n + 1 < len(engine.args):
            found = engine.args[n + 1]
    return found


def pipeline_options(engine: BeamOptions):
    """Beam's options: this machine's default (one worker process per core), then the user's."""
    from apache_beam.options.pipeline_options import PipelineOptions

    defaults = [f"--runner={engine.runner}"]
    if _runner_name(engine) in LOCAL_RUNNERS:
        defaults += [
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={os.cpu_count() or 1}",
            "--default_sdk_harness_log_level=ERROR",  # worker processes log every stage at INFO
        ]
    try:
        return PipelineOptions([*defaults, *engine.args])
    except SystemExit:  # argparse's way of saying an option value is wrong
        raise UserError(f"bad Beam pipeline options: {' '.join(engine.args)}") from None


def run_pipeline(plan: Plan, engine: BeamOptions) -> dict[str, int]:
    """Run the pipeline to the end; its counters (images embedded, shards and items resumed)."""
    import apache_beam as beam

    from imgsearch.embed.beam import pipeline as beam_pipeline

    with quiet_beam():
        options = pipeline_options(engine)
        runner = None
        if _runner_name(engine) in LOCAL_RUNNERS:
            plan.threads = _threads_per_worker(options)
            runner = _local_runner(options)
        pipeline = beam.Pipeline(runner=runner, options=options)
        beam_pipeline.build(pipeline, plan)
        result = pipeline.run()
        result.wait_until_finish()
    return beam_pipeline.counters(result)


def _threads_per_worker(options) -> int:
    """The cores shared out among the local workers: more interpreter threads than cores is slower."""
    from apache_beam.options.pipeline_options import DirectOptions

    workers = options.view_as(DirectOptions).direct_num_workers or os.cpu_count() or 1
    return max(1, (os.cpu_count() or 1) // workers)


def _local_runner(options):
    """The DirectRunner's batch engine (FnApiRunner) without its Prism attempt. Its worker processes
    get the pipeline options, as the DirectRunner hands them over, and run ``beam_worker``."""
    from apache_beam.options.pipeline_options import DirectOptions
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.transforms.environments import SubprocessSDKEnvironment

    environment = None
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_processing":
        # the runner replaces a given environment only in this mode: ours is the same worker,
        # started through beam_worker; "in_memory" here just means "keep the environment given"
        environment = SubprocessSDKEnvironment.from_command_string(
            f"{sys.executable} -m imgsearch.embed.beam.worker"
        )
        direct.direct_running_mode = "in_memory"
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(default_environment=environment, provision_info=info)


def _result(
    items: list[Item],
    vectors: dict[str, np.ndarray],
    previous: store.Generation | None,
    plan: Plan,
    report: EmbedReport,
    exclude: dict | None,
) -> EmbedResult:
    """The merged shards as the local engine's result: counts against the live generation."""
    if not items:
        first = report.skipped[0] if report.skipped else None
        raise UserError("no usable images: " + (f"{first[0]}: {first[1]}" if first else "nothing found"))
    old = {i.path: i for i in previous.items} if previous else {}
    for item in items:
        before = old.get(item.path)
        if before is None:
            report.added += 1
        elif before.fingerprint() == item.fingerprint() and before.text == item.text:
            report.unchanged += 1
        else:
            report.updated += 1
    report.removed = len(set(old) - {i.path for i in items})
    report.count = len(items)
    roots = covering_roots(x.path for x in items)  # all of them: serve reads only under these
    changed = (
        previous is None
        or bool(report.added or report.updated or report.removed)
        or previous.manifest.get("text_source") != plan.text_source
        or previous.manifest.get("roots") != roots  # a store from before roots were complete
        or previous.manifest.get("exclude") != exclude
    )
    return EmbedResult(report, items, vectors, plan.encoders, plan.text_source, roots, changed, exclude)
