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
    )
    parts.append(", ".join(f"{n} {name}" for name, n in changes if n or name in ("added", "unchanged")))
    if report.embedded_per_second:
        parts.append(f"{report.embedded_per_second:.1f} img/s")
    parts.append(f"{report.seconds:.1f} s")
    console.print("; ".join(parts), highlight=False)
    if report.skipped:
        console.print(f"skipped {len(report.skipped)} file(s) (see skipped.tsv):", highlight=False)
        for path, reason in report.skipped[:5]:
            console.print(f"  {path}: {reason}", highlight=False, markup=False)
        if len(report.skipped) > 5:
            console.print(f"  … and {len(report.skipped) - 5} more", highlight=False)
