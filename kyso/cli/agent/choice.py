"""The choice prompt: which documents to sign, typed as a person types it.

Accepted (with or without Vietnamese diacritics, any case): ``tất cả`` / ``tat ca`` / ``all`` /
``a``; ``không`` / ``khong`` / ``none`` / ``n`` / ``q`` / an empty line; ``xem`` / ``view`` /
``v`` (the preview page, when the agent offers one); numbers and ranges separated by commas or
spaces (``1,3-5``, ``1 3 5``, ``2–4``). Anything else is explained and asked again.
"""

from __future__ import annotations

import re

from kyso.cli.text import Language, fold, say

__all__ = ["ALL", "NONE", "VIEW", "Answer", "parse_answer", "parse_choice"]

ALL = "all"
NONE = "none"
VIEW = "view"
Answer = list[int] | str

_ALL = {"tat ca", "tatca", "tc", "all", "a", "ca", "het", "tat"}
_NONE = {"", "khong", "k", "none", "n", "q", "quit", "thoat", "no"}
_VIEW = {"xem", "x", "view", "v", "preview"}


def parse_choice(text: str, count: int, lang: Language = "en") -> list[int]:
    """0-based indexes from ``1,3-5`` (each once, in the order given); ValueError otherwise."""
    chosen: list[int] = []
    cleaned = text.replace("–", "-").replace("—", "-")
    cleaned = re.sub(r"\s*-\s*", "-", cleaned.strip())
    parts = [p for p in re.split(r"[,;\s]+", cleaned) if p]
    if not parts:
        raise ValueError(say("agent.bad_choice", lang, part=text, count=count))
    for part in parts:
        first, _, last = part.partition("-")
        if not first.isdigit() or not (last.isdigit() or last == ""):
            raise ValueError(say("agent.bad_choice", lang, part=part, count=count))
        low, high = int(first), int(last or first)
        if not 1 <= low <= high <= count:
            raise ValueError(say("agent.bad_choice", lang, part=part, count=count))
        chosen.extend(i - 1 for i in range(low, high + 1) if i - 1 not in chosen)
    return chosen


def parse_answer(text: str, count: int, lang: Language = "vi") -> Answer:
    """ALL, NONE, VIEW or the chosen indexes; ValueError (its text says what to type)."""
    folded = fold(text)
    if folded in _ALL:
        return ALL
    if folded in _NONE:
        return NONE
    if folded in _VIEW:
        return VIEW
    try:
        return parse_choice(folded, count, lang)
    except ValueError:
        if any(c.isalpha() for c in folded):  # words: say what was typed, as typed
            raise ValueError(
                say("agent.bad_choice", lang, part=text.strip(), count=count)
            ) from None
        raise
