"""Shared benchmark helpers."""
from __future__ import annotations


def table(rows: list[list], header: list[str]) -> str:
    """A plain-text table (medians and ratios are printed with it)."""
    cols = [header, *[[str(c) for c in r] for r in rows]]
    width = [max(len(r[i]) for r in cols) for i in range(len(header))]
    lines = [" | ".join(c.ljust(width[i]) for i, c in enumerate(r)) for r in cols]
    lines.insert(1, "-+-".join("-" * w for w in width))
    return "\n".join(lines)
