"""How texts and probabilities read where a person reads them: ``kgpt ask`` on a
terminal and the analysis report in Markdown show them the same way."""

from __future__ import annotations

import json


def show(text: str) -> str:
    """Text as it reads, quoted where plain text would hide something (an empty text,
    edge spaces, a newline)."""
    plain = text and text == text.strip() and text.isprintable()
    return text if plain else quoted(text)


def quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def probability(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"
