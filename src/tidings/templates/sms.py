"""How long an SMS is in segments, the way mobile networks count it.

A message that fits the GSM 03.38 alphabet is sent as GSM-7: 160 septets in a single message,
153 per part once it is split (each part carries a 7-septet header). Characters of the GSM
extension table (``€ [ ] { } \\ ^ ~ |`` and form feed) take two septets (an escape and the
character). Any character outside GSM-7 switches the whole message to UCS-2: 70 UTF-16 code
units in a single message, 67 per part; characters outside the Basic Multilingual Plane (most
emoji) are two code units. Networks do not split an escape pair or a surrogate pair across
parts, so parts are packed greedily rather than by division.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

MAX_SEGMENTS = 3
"""Longer messages are still sent, but cost more and arrive in pieces on some phones."""

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM_ALL = GSM_BASIC | GSM_EXTENSION

_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_PART = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True, slots=True)
class SmsLength:
    """``characters`` as people count them; ``units`` as the network does (septets for
    GSM-7, UTF-16 code units for UCS-2)."""

    encoding: Encoding
    characters: int
    units: int
    segments: int

    @property
    def warning(self) -> str | None:
        if self.segments <= MAX_SEGMENTS:
            return None
        return (
            f"this SMS is {self.segments} segments ({self.characters} characters, {self.encoding});"
            f" keep it to {MAX_SEGMENTS} or fewer"
        )


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if _GSM_ALL.issuperset(text) else "UCS-2"


def _unit_widths(text: str, encoding: Encoding) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_length(text: str) -> SmsLength:
    """Count ``text`` in characters, network units and segments."""
    encoding = encoding_of(text)
    widths = _unit_widths(text, encoding)
    units = sum(widths)
    if units == 0:
        return SmsLength(encoding, 0, 0, 0)
    if units <= _SINGLE[encoding]:
        return SmsLength(encoding, len(text), units, 1)
    per_part = _PART[encoding]
    segments, used = 1, 0
    for width in widths:
        # A two-unit character that does not fit starts the next part whole.
        if used + width > per_part:
            segments += 1
            used = 0
        used += width
    return SmsLength(encoding, len(text), units, segments)
