"""SMS length in segments: GSM-7 septets (extension characters count twice) or UCS-2 units."""

from __future__ import annotations

import pytest

from tidings.templates.sms import GSM_BASIC, GSM_EXTENSION, SmsLength, encoding_of, sms_length


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SmsLength("GSM-7", 0, 0, 0)),
        ("Hello", SmsLength("GSM-7", 5, 5, 1)),
        ("a" * 160, SmsLength("GSM-7", 160, 160, 1)),
        ("a" * 161, SmsLength("GSM-7", 161, 161, 2)),
        ("a" * 306, SmsLength("GSM-7", 306, 306, 2)),
        ("a" * 307, SmsLength("GSM-7", 307, 307, 3)),
        ("a" * 459, SmsLength("GSM-7", 459, 459, 3)),
        ("a" * 460, SmsLength("GSM-7", 460, 460, 4)),
        ("line one\nline two", SmsLength("GSM-7", 17, 17, 1)),
    ],
)
def test_gsm_messages_are_160_septets_single_and_153_per_part(
    text: str, expected: SmsLength
) -> None:
    assert sms_length(text) == expected


@pytest.mark.parametrize("char", ["€", "[", "]", "{", "}", "\\", "^", "~", "|", "\f"])
def test_extension_characters_stay_gsm_but_take_two_septets(char: str) -> None:
    assert sms_length(char) == SmsLength("GSM-7", 1, 2, 1)


def test_euro_signs_fill_a_single_message_at_eighty() -> None:
    assert sms_length("€" * 80) == SmsLength("GSM-7", 80, 160, 1)
    assert sms_length("€" * 81) == SmsLength("GSM-7", 81, 162, 2)


def test_a_bracket_costs_two_septets_towards_the_limit() -> None:
    assert sms_length("[" + "a" * 158).segments == 1  # 160 septets
    assert sms_length("[" + "a" * 159).segments == 2  # 161 septets


def test_an_escape_pair_is_not_split_across_parts() -> None:
    # 306 septets would be 2 parts by division, but the € cannot straddle parts 1 and 2.
    text = "a" * 152 + "€" + "a" * 152
    assert sms_length(text) == SmsLength("GSM-7", 305, 306, 3)


@pytest.mark.parametrize("char", ["é", "è", "à", "Ñ", "ß", "Δ", "£", "¥", "§", "¿", "@"])
def test_gsm_basic_characters_beyond_ascii_are_gsm(char: str) -> None:
    assert encoding_of(f"Café {char}") == "GSM-7"


@pytest.mark.parametrize("char", ["á", "ç", "—", "\u2019", "ł", "Ж", "中"])
def test_any_character_outside_gsm_makes_the_message_ucs2(char: str) -> None:
    assert sms_length(f"Hello {char}").encoding == "UCS-2"


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("Ж" * 70, 70, 1),
        ("Ж" * 71, 71, 2),
        ("Ж" * 134, 134, 2),
        ("Ж" * 135, 135, 3),
        ("Ж" * 201, 201, 3),
        ("Ж" * 202, 202, 4),
    ],
)
def test_ucs2_messages_are_70_units_single_and_67_per_part(
    text: str, units: int, segments: int
) -> None:
    assert sms_length(text) == SmsLength("UCS-2", len(text), units, segments)


def test_an_emoji_is_two_utf16_units() -> None:
    assert sms_length("😀") == SmsLength("UCS-2", 1, 2, 1)
    assert sms_length("Hi 😀") == SmsLength("UCS-2", 4, 5, 1)
    assert sms_length("😀" * 35) == SmsLength("UCS-2", 35, 70, 1)
    assert sms_length("😀" * 36) == SmsLength("UCS-2", 36, 72, 2)


def test_a_surrogate_pair_is_not_split_across_parts() -> None:
    text = "Ж" * 66 + "😀" + "Ж" * 66  # 134 units: 2 parts by division, 3 when packed
    assert sms_length(text) == SmsLength("UCS-2", 133, 134, 3)


def test_the_gsm_tables_have_the_standard_sizes() -> None:
    # 128 code points less the escape (0x1B), which is not a character of its own.
    assert len(GSM_BASIC) == 127
    assert len(GSM_EXTENSION) == 10
    assert not GSM_BASIC & GSM_EXTENSION


def test_over_three_segments_is_warned_about() -> None:
    assert sms_length("a" * 459).warning is None
    warning = sms_length("a" * 460).warning
    assert warning is not None
    assert "4 segments" in warning
    assert "3 or fewer" in warning
