"""The on-disk format of embeddings and indexes: the one module that reads and writes it.

A store is a directory (``FOLDER/.imgsearch`` for ``imgsearch index FOLDER``)::

    DIR/
      CURRENT              name of the live generation ("gen-000007"); replaced atomically
      gen-000007/          one immutable generation
        manifest.json      format, version, count, encoders (id, name, dim, runtime, precision),
                           text_source (catalog path and columns), roots, and one entry per space:
                           {"file": "image.npy", "dim": 1280, "index": {method, file, trees, rows,
                           count, dim}, "head": "photo.json"}
        items.idx.npy      (n + 1,) int64 byte offsets of the lines of items.jsonl (queries parse
                           only the items they return)
        items.jsonl        one item per line: id, path, size, mtime, text, tags, the duplicate
                           signature: sha256, phash, thumb, centre (see imgsearch/dups/), and exif
                           (taken, camera, lens, gps, place: imgsearch/files/exif.py; absent in older
                           stores, read on their next index); ASCII JSON, so
                           file names that are not valid UTF-8 round-trip as escapes
        image.npy          (n, d_image) float32, L2-normalised (spaces: see imgsearch/spaces.py)
        text.npy           (n, d_text) float32, zero rows for items with no text
        text.present.npy   (n,) bool: the rows that hold a vector (only for spaces with empty rows)
        photo.bias.npy     (n, banks) float32: each item's hubness biases, one per query bank of
                           the head (imgsearch/search/hubness.py; only spaces of heads with a query bank)
        colour.npy         (n, len(PALETTE)) foreground share per colour name
        aligned.npy, metric.npy, photo.npy
                           head outputs, one row per item
        aligned.npz + aligned.json, ...
                           the head itself (weights + its own manifest, see imgsearch/encoders/heads.py)
        *.ann              Annoy indexes of the indexed spaces (large collections only); a sharded
                           one is a file per contiguous slice of the rows (image-03-of-16.ann),
                           listed with its rows in the manifest ("index": {"parts": [{file,
                           start, stop, size, sha256}, ...]}; imgsearch/indexing/ann.py searches and
                           merges them; the size is checked at every open, the sha256 by `index`)
        classes.ids.npy, classes.vals.npy
                           each item's top ImageNet classes as sparse rows (the classes space):
                           (n, 5) int32 class ids and float32 sqrt-probabilities
        dups.npz           duplicate candidates: pairs of rows, their features and the
                           exact-duplicate pairs (imgsearch/dups/: `dups` only scores them);
                           written with the indexes, the manifest's "dups" entry names it
        lexical.sqlite     SQLite FTS5 table of the item texts (the lexical space, BM25; see
                           imgsearch/search/lexical.py); the manifest's "lexical" entry names it
        ocr.sqlite         the same for the words read off the photos (`index --ocr`, the ocr
                           space, imgsearch/embed/ocr.py); the manifest's "ocr" entry names it
        calibration.npz    the calibration sample (fusion.calibration_sample): its rows, and their
                           vectors in each space and class rows, read at once by a query
        skipped.tsv        path <TAB> reason, for files that could not be used
      partial/             chunks of an unfinished embedding run, reused by the next run
      shards/shard-00003-of-00008/
                           one shard of `embed --engine beam`: a store of its own plus shard.json
                           (encoder key, digest of its inputs, count); written whole, by a rename
      lock                 held by the one process that writes
      .imgsearch-store     marker: this directory is a store; its CURRENT and lock are the store's
      .imgsearch-owned     marker in each directory the store made (gen-*, partial/, shards/): the
                           directory and everything in it are the store's to rewrite or remove

The store removes or rewrites only what it can prove it made: a root-level directory carrying
.imgsearch-owned (written before the directory appears under its name), and CURRENT and lock
of a directory carrying .imgsearch-store. Anything else that stands where the store has to write
(a user's ``partial/`` or ``lock`` in ``--out``) is refused with one line, never touched; a
user's ``gen-2019/`` is simply left alone. Stores written before the markers are recognised by
their own CURRENT and manifest and adopted once (``Store.claim``).

Writers build a complete new generation beside the live one and then replace CURRENT, once
per run, so a reader sees the old store or the new one, never a mix. The previous generation
is kept so a reader that has just read CURRENT can still open it. A manifest names the
encoders by id; a store written by other encoders or by an unknown format version is refused,
and so is anything that does not check out (a file name that leaves the store, an array of the
wrong shape or type, a truncated item list): a damaged store is never half-read.
"""

from imgsearch.store.chunks import (
    chunk_name,
    clear_chunks,
    load_chunks,
    next_chunk_number,
    save_chunk,
)
from imgsearch.store.find import (
    default_store,
    find_store,
)
from imgsearch.store.format import (
    CURRENT,
    FORMAT,
    LOCK,
    LOG,
    OWNED_MARK,
    PARTIAL,
    ROOT_NAMES,
    SHARDS,
    STORE_DIRNAME,
    STORE_MARK,
    VERSION,
    CalibrationSample,
    DamagedStore,
    Generation,
    GenerationWriter,
    Item,
    LazyItems,
    Store,
    check_encoders,
    check_manifest,
    generation_name,
    is_owned,
    make_owned_dir,
    new_manifest,
    read_generation,
    write_generation,
)
from imgsearch.store.log import FeedbackLog, Record
from imgsearch.store.shards import (
    SHARD_META,
    complete_shard,
    prepare_shards,
    read_shards,
    shard_dir,
    write_shard,
)

__all__ = [
    "CURRENT",
    "FORMAT",
    "LOCK",
    "LOG",
    "OWNED_MARK",
    "PARTIAL",
    "ROOT_NAMES",
    "SHARDS",
    "SHARD_META",
    "STORE_DIRNAME",
    "STORE_MARK",
    "VERSION",
    "CalibrationSample",
    "DamagedStore",
    "FeedbackLog",
    "Generation",
    "GenerationWriter",
    "Item",
    "LazyItems",
    "Record",
    "Store",
    "check_encoders",
    "check_manifest",
    "chunk_name",
    "clear_chunks",
    "complete_shard",
    "default_store",
    "find_store",
    "generation_name",
    "is_owned",
    "load_chunks",
    "make_owned_dir",
    "new_manifest",
    "next_chunk_number",
    "prepare_shards",
    "read_generation",
    "read_shards",
    "save_chunk",
    "shard_dir",
    "write_generation",
    "write_shard",
]
