"""The limits are Meta's numbers, counted in UTF-16 code units."""

from __future__ import annotations

import pytest

from whatsapp_api_integration.core import limits
from whatsapp_api_integration.core.limits import fits, utf16_len

pytestmark = pytest.mark.core


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("abc", 3),
        ("ação", 4),  # BMP letters count 1
        ("😀", 2),  # astral characters count 2 (a surrogate pair)
        ("👍🏽", 4),  # emoji + skin-tone modifier: two astral code points
        ("🇧🇷", 4),
        ("\ud800", 1),  # a lone surrogate, possible in a string decoded from JSON
    ],
)
def test_utf16_len_counts_code_units(text: str, units: int) -> None:
    assert utf16_len(text) == units


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a" * 20, 20, True),
        ("a" * 21, 20, False),
        ("😀" * 10, 20, True),
        ("😀" * 10 + "a", 20, False),
        ("😀" * 11, 21, False),
        ("é" * 21, 20, False),
        ("", 0, True),
    ],
)
def test_fits(text: str, limit: int, expected: bool) -> None:
    assert fits(text, limit) is expected


def test_the_numbers_are_metas() -> None:
    # DESIGN §8's table; a change here must be a deliberate one, with its source.
    assert (limits.TEXT_BODY_MAX, limits.INTERACTIVE_BODY_MAX) == (4096, 1024)
    assert (limits.HEADER_TEXT_MAX, limits.FOOTER_TEXT_MAX) == (60, 60)
    assert (limits.REPLY_BUTTONS_MIN, limits.REPLY_BUTTONS_MAX) == (1, 3)
    assert (limits.REPLY_BUTTON_TITLE_MAX, limits.REPLY_BUTTON_ID_MAX) == (20, 256)
    assert limits.LIST_BUTTON_LABEL_MAX == 20
    assert (limits.LIST_SECTIONS_MAX, limits.LIST_ROWS_MAX) == (10, 10)
    assert (limits.LIST_ROW_TITLE_MAX, limits.LIST_ROW_DESCRIPTION_MAX) == (24, 72)
    assert (limits.LIST_ROW_ID_MAX, limits.LIST_SECTION_TITLE_MAX) == (200, 24)
    assert limits.MEDIA_CAPTION_MAX == 1024
