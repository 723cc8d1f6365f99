"""Pick the reply format from an Accept header: JSON unless text/plain is preferred."""

from __future__ import annotations

from enum import Enum


class ReplyFormat(Enum):
    JSON = "application/json"
    TEXT = "text/plain"


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # an unreadable weight must not win
        ranges.append((media.lower(), quality))
    return ranges


def _score(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """(quality, specificity) of the most specific range matching media_type."""
    kind = media_type.split("/")[0]
    best: tuple[float, int] = (0.0, -1)
    for media, quality in ranges:
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(media, -1)
        if specificity > best[1]:
            best = (quality, specificity)
    return best


def reply_format(accept: str | None) -> ReplyFormat:
    """text/plain only when the client ranks it above JSON; JSON for no header or a tie.

    A header that accepts neither still gets JSON: RFC 9110 allows answering the
    default representation rather than 406.
    """
    if not accept:
        return ReplyFormat.JSON
    ranges = _media_ranges(accept)
    text = _score(ReplyFormat.TEXT.value, ranges)
    json = _score(ReplyFormat.JSON.value, ranges)
    return ReplyFormat.TEXT if text[0] > 0 and text > json else ReplyFormat.JSON
