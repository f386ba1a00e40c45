"""One report file, several scripts: each owns a ``## `` section of it and rewrites
only that one (docs/results_prior.md: dev/prior/shifted.py owns the top, the
regularisation study its "Regularised outlines")."""

from __future__ import annotations

from pathlib import Path


def split_section(text: str, heading: str) -> tuple[str, str, str]:
    """``text`` around the section ``## heading``: before it, the section (heading line
    to the next ``## `` heading or the end), after it; ``(text, "", "")`` when absent."""
    marker = f"## {heading}\n"
    if text.startswith(marker):
        start = 0
    else:
        found = text.find("\n" + marker)
        if found < 0:
            return text, "", ""
        start = found + 1
    end = text.find("\n## ", start + len(marker))
    end = len(text) if end < 0 else end + 1
    return text[:start], text[start:end], text[end:]


def write_section(path: Path, heading: str, body: str) -> None:
    """Put ``## heading`` with ``body`` into ``path`` in place of its old version (at the
    end when it had none), leaving the rest of the file as it was."""
    text = path.read_text() if path.exists() else ""
    before, _, after = split_section(text, heading)
    section = f"## {heading}\n\n{body.strip()}\n"
    if before and not before.endswith("\n\n"):
        before = before.rstrip("\n") + "\n\n"
    if after:
        section += "\n"
    path.write_text(before + section + after)


def kept_sections(path: Path, headings: list[str]) -> str:
    """The named sections of ``path`` as they stand (for a script that rewrites the
    rest of the file), or ""."""
    text = path.read_text() if path.exists() else ""
    parts = [split_section(text, h)[1].strip() for h in headings]
    return "\n\n".join(p for p in parts if p)


def session_headings(path: Path) -> list[str]:
    """The headings of ``path``'s hand-written session sections (``## Session N: ...``),
    which a script that rewrites the rest of the file keeps (session 41: a rerun of the
    top of docs/results_prior.md had dropped session 40's)."""
    text = path.read_text() if path.exists() else ""
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## Session ")]
