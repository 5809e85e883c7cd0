"""Output for people (rich tables) and for pipes (paths, JSON lines, TSV)."""

from __future__ import annotations

from rich.console import Console


def print_embed_report(console: Console, report) -> None:
    parts = [f"{report.count} items in {report.store}"]
    changes = (
        ("added", report.added),
        ("updated", report.updated),
        ("removed", report.removed),
        ("unchanged", report.unchanged),
        ("resumed", report.resumed),
        ("excluded", report.excluded),
    )
    parts.append(", ".join(f"{n} {name}" for name, n in changes if n or name in ("added", "unchanged")))
    if report.embedded_per_second:
        parts.append(f"{report.embedded_per_second:.1f} img/s")
    parts.append(f"{report.seconds:.1f} s")
    console.print("; ".join(parts), highlight=False)
    if report.skipped:
        console.print(f"skipped {len(report.skipped)} file(s) (see skipped.tsv):", highlight=False)
        for path, reason in report.skipped[:5]:
            console.print(f"  {display(path)}: {reason}", highlight=False, markup=False)
        if len(report.skipped) > 5:
            console.print(f"  … and {len(report.skipped) - 5} more", highlight=False)


FORMATS = ("table", "paths", "json", "tsv")


def display(text: str) -> str:
    """Text for people: bytes of a file name that are not UTF-8 shown as U+FFFD, never an error."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def display_path(path: str) -> str:
    """A path for people: relative when below the current directory, shown safely (``display``)."""
    import os

    rel = os.path.relpath(path)
    return display(path if rel.startswith("..") else rel)


def write_paths(paths: list[str], out, *, nul: bool = False) -> int:
    """Paths for pipes, byte-exact (names that are not UTF-8 come out as the bytes on disk).

    One per line, or NUL-terminated with ``nul`` (for ``xargs -0``). A name holding a line
    break cannot be one line: it is written as a quoted JSON string instead. Returns how many
    names were quoted, so the caller can suggest ``-0``.
    """
    import json
    import os

    quoted = 0
    chunks = []
    for path in paths:
        if nul:
            chunks.append(os.fsencode(path) + b"\0")
        elif "\n" in path or "\r" in path:
            quoted += 1
            chunks.append(json.dumps(path).encode("ascii") + b"\n")
        else:
            chunks.append(os.fsencode(path) + b"\n")
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        out.write(b"".join(chunks).decode("utf-8", "surrogateescape"))
    else:
        out.flush()
        buffer.write(b"".join(chunks))
        buffer.flush()
    return quoted


def render_hits(hits: list, fmt: str, out, *, nul: bool = False) -> int:
    """Write ``hits`` to the text stream ``out`` in one of ``FORMATS``; returns names quoted."""
    import json

    if fmt == "none":  # already shown (query --preview)
        return 0
    if fmt == "paths" or nul:
        return write_paths([h.item.path for h in hits], out, nul=nul)
    if fmt == "json":
        out.writelines(json.dumps(h.to_json(), ensure_ascii=False) + "\n" for h in hits)
    elif fmt == "tsv":
        for h in hits:
            text = (h.item.text or "").replace("\t", " ").replace("\n", " ")
            path = display(h.item.path).replace("\t", " ").replace("\n", " ")
            out.write(f"{h.rank}\t{h.score:.4f}\t{path}\t{text}\n")
    else:
        print_table(hits, Console(file=out) if out is not None else Console())
    return 0


def render_groups(gen, groups: list, fmt: str, out, *, nul: bool = False, copies: bool = False) -> int:
    """Duplicate groups (``dups.Group``) to ``out``: JSON lines, paths (a group per line,
    tab-separated; with ``nul`` each path NUL-ended and each group one more NUL), or a table.
    ``copies``: only the paths after each group's first (what a delete pipeline removes), as
    ``write_paths`` writes them. Returns how many names were written as JSON strings."""
    import json

    if copies:
        return write_paths([gen.items[r].path for g in groups for r in g.rows[1:]], out, nul=nul)
    if fmt == "json":
        for n, g in enumerate(groups, start=1):
            paths = [gen.items[r].path for r in g.rows]
            ids = [gen.items[r].id for r in g.rows]
            line = {"group": n, "paths": paths, "ids": ids, "similarity": g.similarity}
            out.write(json.dumps(line) + "\n")
    elif fmt == "paths":
        return _write_group_paths([[gen.items[r].path for r in g.rows] for g in groups], out, nul)
    else:
        print_groups(gen, groups, Console(file=out))
    return 0


def _write_group_paths(groups: list[list[str]], out, nul: bool) -> int:
    """A group per line, tab-separated, byte-exact; with ``nul`` each path NUL-ended and each
    group one more NUL. On a line, a name holding a tab or a line break would split it (and
    `cut -f2-` would hand a piece of the name to the next command): it is written as a JSON
    string instead. Returns how many were."""
    import json
    import os

    quoted = 0

    def field(path: str) -> bytes:
        nonlocal quoted
        if nul or not any(c in path for c in "\t\n\r"):
            return os.fsencode(path)
        quoted += 1
        return json.dumps(path).encode("ascii")

    if nul:
        data = b"".join(b"".join(field(p) + b"\0" for p in paths) + b"\0" for paths in groups)
    else:
        data = b"".join(b"\t".join(field(p) for p in paths) + b"\n" for paths in groups)
    out.flush()
    out.buffer.write(data)
    out.buffer.flush()
    return quoted


def print_groups(gen, groups: list, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold")
    for name, justify in (("group", "right"), ("score", "right"), ("size", "right"), ("path", "left")):
        table.add_column(name, justify=justify, overflow="fold" if name == "path" else "ellipsis")
    for n, g in enumerate(groups, start=1):
        for k, (r, s) in enumerate(zip(g.rows, g.similarity, strict=True)):
            item = gen.items[r]
            path = Text(display_path(item.path))  # a file name like "[red].jpg" is not markup
            table.add_row(str(n) if k == 0 else "", f"{s:.2f}", f"{item.size:,}", path)
        table.add_section()
    console.print(table)


def print_table(hits: list, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text  # cells as plain text: a title like "[red] bag" is not markup

    # per-space columns are short (a z-score under the space's name) and the item text is cut with
    # an ellipsis, so the path keeps its room on an 80-column terminal
    table = Table(
        show_edge=False, header_style="bold", caption="per-space columns: z-scores", caption_style="dim"
    )
    table.add_column("#", justify="right")
    table.add_column("score", justify="right", min_width=5)
    table.add_column("path", overflow="fold", min_width=18, ratio=3)
    spaces = list(hits[0].z) if hits else []
    for space in spaces:
        table.add_column(space[:7], justify="right", style="dim", min_width=5)
    table.add_column("item text", overflow="ellipsis", no_wrap=True, ratio=2, max_width=60)
    for h in hits:
        table.add_row(
            str(h.rank),
            f"{h.score:.2f}",
            Text(display_path(h.item.path)),
            *(f"{h.z[s]:.1f}" for s in spaces),
            Text(h.item.text or ""),
        )
    console.print(table)


def print_metrics(console: Console, title: str, metrics) -> None:
    from rich.table import Table

    ks = sorted(next(iter(metrics.values.values())))
    table = Table(title=f"{title} ({metrics.queries} queries)", show_edge=False, header_style="bold")
    table.add_column("metric")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    for name, per_k in metrics.values.items():
        table.add_row(name, *(f"{per_k[k]:.3f}" for k in ks))
    console.print(table)
