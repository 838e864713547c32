"""Splitting and shortening text: at the best boundary, never inside a cluster."""

from __future__ import annotations

import pytest

from whatsapp_api_integration.core.limits import utf16_len
from whatsapp_api_integration.core.text import is_boundary, shorten, split_text

pytestmark = pytest.mark.core


def test_a_text_that_fits_is_returned_untouched() -> None:
    text = "  Olá!  \n"
    assert split_text(text, 4096) == [text]


def test_blank_text_gives_no_parts() -> None:
    assert split_text(" \n\t ", 4096) == []
    assert split_text("", 4096) == []


def test_splits_at_the_last_paragraph_break() -> None:
    text = "Um. Dois.\n\nTrês. Quatro.\n \nCinco seis sete"
    assert split_text(text, 30) == ["Um. Dois.\n\nTrês. Quatro.", "Cinco seis sete"]


def test_else_at_the_last_sentence_end() -> None:
    text = "Primeira frase. Segunda frase! Terceira frase sem fim"
    assert split_text(text, 35) == ["Primeira frase. Segunda frase!", "Terceira frase sem fim"]


def test_sentence_end_with_closing_quote() -> None:
    assert split_text('Ele disse "sim." E saiu correndo', 20) == [
        'Ele disse "sim."',
        "E saiu correndo",
    ]


def test_else_at_the_last_space() -> None:
    assert split_text("uma duas três quatro cinco", 14) == ["uma duas três", "quatro cinco"]


def test_else_at_a_character_boundary() -> None:
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_a_period_inside_a_word_is_not_a_sentence_end() -> None:
    # "3.14" and "e.g" have no space after the period: the cut falls at the last space
    assert split_text("pi vale 3.14159 aproximadamente", 20) == [
        "pi vale 3.14159",
        "aproximadamente",
    ]


def test_never_splits_a_surrogate_pair() -> None:
    assert split_text("a" + "😀" * 3, 4) == ["a😀", "😀😀"]


@pytest.mark.parametrize(
    ("cluster", "limit"),
    [
        ("👩‍💻", 6),  # ZWJ sequence, 5 units
        ("👍🏽", 5),  # skin-tone modifier, 4 units
        ("🇧🇷", 5),  # regional-indicator pair, 4 units
        ("❤️", 3),  # variation selector
        ("é", 3),  # e + combining acute
        ("🏴󠁧󠁢󠁳󠁣󠁴󠁿", 15),  # subdivision flag: tag sequence, 14 units
    ],
)
def test_never_splits_a_grapheme_cluster(cluster: str, limit: int) -> None:
    parts = split_text(cluster * 5, limit)
    assert "".join(parts) == cluster * 5
    for part in parts:
        assert utf16_len(part) <= limit
        assert len(part) % len(cluster) == 0
        assert part == cluster * (len(part) // len(cluster))


def test_regional_indicators_pair_from_the_start_of_the_run() -> None:
    flags = "🇧🇷🇺🇸🇵🇹"
    assert split_text(flags, 9) == ["🇧🇷🇺🇸", "🇵🇹"]
    assert not is_boundary(flags, 1)  # inside 🇧🇷
    assert is_boundary(flags, 2)  # between 🇧🇷 and 🇺🇸
    assert not is_boundary(flags, 3)


def test_crlf_stays_together() -> None:
    assert not is_boundary("a\r\nb", 2)
    assert is_boundary("a\r\nb", 1)
    assert is_boundary("a\r\nb", 3)


def test_zwj_before_a_letter_is_a_boundary() -> None:
    # UAX #29 only joins pictographics after a ZWJ
    assert is_boundary("a\u200db", 2)
    assert not is_boundary("a\u200db", 1)


def test_a_surrogate_pair_held_as_two_code_points_stays_whole() -> None:
    pair = "\ud83d\ude00"  # 😀 decoded with "surrogatepass"
    assert not is_boundary("a" + pair, 2)


def test_a_cluster_longer_than_the_limit_is_cut_at_code_points() -> None:
    text = "a" + "\u0301" * 9
    parts = split_text(text, 4)
    assert "".join(parts) == text
    assert all(utf16_len(part) <= 4 for part in parts)


def test_whitespace_at_the_cut_is_dropped_but_a_space_carrying_a_mark_is_kept() -> None:
    assert split_text("abc \u0301def", 4) == ["abc", " \u0301de", "f"]


def test_leading_whitespace_longer_than_the_limit_is_dropped() -> None:
    assert split_text(" " * 10 + "abc", 5) == ["abc"]


def test_parts_have_no_whitespace_at_the_cuts() -> None:
    parts = split_text("palavra " * 1000, 4096)
    assert len(parts) == 2
    assert all(part == part.strip() for part in parts[:-1])
    assert parts[1].startswith("palavra")


def test_split_counts_utf16_units() -> None:
    text = "😀" * 3000  # 6,000 units in 3,000 code points
    parts = split_text(text, 4096)
    assert [utf16_len(part) for part in parts] == [4096, 6000 - 4096]


def test_limit_must_fit_an_astral_character() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_text("abc", 1)


def test_shorten_keeps_what_fits() -> None:
    assert shorten("Sim", 20) == "Sim"
    assert shorten("a" * 20, 20) == "a" * 20


def test_shorten_at_a_word_boundary_with_an_ellipsis() -> None:
    assert shorten("Prefiro não dizer nada sobre isso", 20) == "Prefiro não dizer…"


def test_shorten_drops_a_dangling_comma() -> None:
    assert shorten("Sim, claro, com certeza", 12) == "Sim, claro…"


def test_shorten_a_long_word_at_a_character_boundary() -> None:
    assert shorten("Supercalifragilisticexpialidocious", 20) == "Supercalifragilisti…"


def test_shorten_ignores_a_word_boundary_that_would_lose_most_of_the_room() -> None:
    assert shorten("A Supercalifragilisticexpialidocious", 20) == "A Supercalifragilis…"


def test_shorten_keeps_clusters_whole() -> None:
    short = shorten("👩‍💻" * 10, 12)
    assert short == "👩‍💻" * 2 + "…"
    assert utf16_len(short) <= 12


def test_shorten_needs_room() -> None:
    with pytest.raises(ValueError, match="no room"):
        shorten("abc", 1)


def test_shorten_never_cuts_a_crlf_at_a_word_boundary() -> None:
    assert shorten("\r\n\r\n\r\n", 4) == "\r\n…"
