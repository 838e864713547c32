"""Splitting and shortening text to WhatsApp's limits without breaking what the user sees.

Lengths are UTF-16 code units (see `limits`). A cut never falls inside a surrogate pair or a
grapheme cluster, so an emoji, a flag or a letter with its accents always stays whole.

Grapheme clusters are approximated with the standard library only (no `regex` module). The
rules of Unicode's UAX #29 that are kept:

- CR LF stays together; a cut may always fall before or after another control character;
- no cut before an extending character: combining marks (categories Mn, Me, Mc), ZERO WIDTH
  JOINER and NON-JOINER, variation selectors (they are Mn), emoji skin-tone modifiers
  (U+1F3FB-1F3FF) and tag characters (U+E0020-E007F, used by subdivision flags);
- no cut after a ZERO WIDTH JOINER followed by a pictographic character (category So, or the
  emoji blocks U+1F000-1FAFF), so ZWJ sequences such as 👩‍💻 stay whole;
- regional indicators pair up into flags (🇧🇷), counted from the start of the run;
- a surrogate pair held as two code points (text decoded with "surrogatepass") stays whole.

Not modelled: Hangul jamo sequences (precomposed syllables, which is what modern text uses,
are single code points), prepended concatenation marks and Indic conjunct rules. Where the
approximation is wrong it only ever moves a cut to a neighbouring code point; it never loses
text. A single cluster longer than the limit (thousands of stacked combining marks) is cut at
a code point, the only way left to respect the limit.
"""

from __future__ import annotations

import re
import unicodedata

from whatsapp_api_integration.core.limits import fits, utf16_len

ELLIPSIS = "…"

_ZWJ = 0x200D
_ZWNJ = 0x200C
_CR_LF_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_EXTEND_CATEGORIES = frozenset({"Mn", "Me", "Mc"})

# A paragraph break: a line holding nothing but whitespace.
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
# A sentence end: terminal punctuation (with closing quotes or brackets) before whitespace;
# the CJK full stops need no whitespace after them.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|[。！？]+")
# Trailing characters that look odd before an ellipsis ("Sim, …").
_DANGLING = " \t\n\r,;:-–—"


def _is_extend(code: int, char: str) -> bool:
    return (
        unicodedata.category(char) in _EXTEND_CATEGORIES
        or code in (_ZWJ, _ZWNJ)
        or 0x1F3FB <= code <= 0x1F3FF
        or 0xE0020 <= code <= 0xE007F
    )


def _is_control(code: int, char: str) -> bool:
    category = unicodedata.category(char)
    if category in _CR_LF_CONTROL_CATEGORIES:
        return True
    # Format characters are controls, except the joiners and tags, which extend.
    return category == "Cf" and code not in (_ZWJ, _ZWNJ) and not 0xE0020 <= code <= 0xE007F


def _is_pictographic(code: int, char: str) -> bool:
    return 0x1F000 <= code <= 0x1FAFF or unicodedata.category(char) == "So"


def _is_regional_indicator(code: int) -> bool:
    return 0x1F1E6 <= code <= 0x1F1FF


def is_boundary(text: str, index: int) -> bool:
    """Whether a cut between `text[index - 1]` and `text[index]` keeps every cluster whole.

    The ends of the text are boundaries. See the module docstring for the rules.
    """
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if before.isascii() and after.isascii():  # the common case, decided cheaply
        return not (before == "\r" and after == "\n")
    code_before, code_after = ord(before), ord(after)
    if 0xD800 <= code_before <= 0xDBFF and 0xDC00 <= code_after <= 0xDFFF:
        return False
    if before == "\r" and after == "\n":
        return False
    if _is_control(code_before, before) or _is_control(code_after, after):
        return True
    if _is_extend(code_after, after):
        return False
    if code_before == _ZWJ and _is_pictographic(code_after, after):
        return False
    if _is_regional_indicator(code_before) and _is_regional_indicator(code_after):
        run = 0  # regional indicators before `index`, back to the start of their run
        position = index - 1
        while position >= 0 and _is_regional_indicator(ord(text[position])):
            run += 1
            position -= 1
        return run % 2 == 0
    return True


def _prefix_end(text: str, limit: int) -> int:
    """The largest index i such that text[:i] fits in `limit` UTF-16 code units."""
    if text.isascii():
        return min(len(text), limit)
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _boundary_at_or_before(text: str, index: int) -> int:
    """The last cluster boundary in 1..index, or 0 when the first cluster reaches past it."""
    while index > 0 and not is_boundary(text, index):
        index -= 1
    return index


def _skip_space(text: str, index: int) -> int:
    """Move past whitespace, stopping before a space that carries a combining mark."""
    while index < len(text) and text[index].isspace():
        index += 1
    if 0 < index < len(text) and not is_boundary(text, index):
        index -= 1  # " \u0301": the space is the base of the next cluster, keep it
    return index


def _find_cut(text: str, limit: int) -> tuple[int, int]:
    """Where to split a text longer than `limit`: (end of the first part, start of the rest).

    The first part is text[:end] with no trailing whitespace and fits the limit; the
    whitespace between end and start is what is dropped at the cut.
    """
    end = _prefix_end(text, limit)
    content_start = len(text) - len(text.lstrip())  # a part must hold more than whitespace

    def candidate(cut: int, resume: int) -> tuple[int, int] | None:
        left = len(text[:cut].rstrip())
        if left <= content_start or not is_boundary(text, left):
            return None
        return left, _skip_space(text, resume)

    for match in reversed(list(_PARAGRAPH_BREAK.finditer(text, 0, end))):
        found = candidate(match.start(), match.end())
        if found:
            return found
    for match in reversed(list(_SENTENCE_END.finditer(text, 0, min(len(text), end + 1)))):
        if match.end() <= end:
            found = candidate(match.end(), match.end())
            if found:
                return found
    for index in range(end - 1, content_start, -1):
        if text[index].isspace():
            found = candidate(index, index)
            if found:
                return found
    cut = _boundary_at_or_before(text, end)
    if cut == 0:  # one cluster longer than the limit: cut it at a code point
        cut = max(end, 1)
    return cut, cut


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into parts of at most `limit` UTF-16 code units, losing nothing.

    Each cut falls at the last paragraph break before the limit, else the last sentence end,
    else the last space, else the last grapheme-cluster boundary. Whitespace at a cut is
    dropped, so ''.join(parts) is the text without it; parts holding only whitespace are left
    out, and a text that is only whitespace gives no parts. A text that fits is returned as
    is, untouched.
    """
    if limit < 2:
        raise ValueError("the limit must leave room for one astral character (2 units)")
    parts: list[str] = []
    rest = text
    while not fits(rest, limit):
        end, resume = _find_cut(rest, limit)
        part = rest[:end]
        if part.strip():
            parts.append(part)
        rest = rest[resume:]
    if rest.strip():
        parts.append(rest)
    return parts


def shorten(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` if it fits `limit` UTF-16 code units, else a prefix and `ellipsis` that fit.

    The prefix ends at a word boundary when one keeps at least half the room, else at a
    grapheme-cluster boundary; a trailing comma, colon or dash before the ellipsis goes.
    """
    if fits(text, limit):
        return text
    budget = limit - utf16_len(ellipsis)
    if budget < 1:
        raise ValueError(f"a limit of {limit} leaves no room for text before {ellipsis!r}")
    end = _prefix_end(text, budget)
    cut = 0
    for index in range(end, 0, -1):
        if (
            text[index].isspace()
            and utf16_len(text[:index]) * 2 >= budget
            and is_boundary(text, index)
        ):
            cut = index
            break
    if not cut:
        cut = _boundary_at_or_before(text, end) or end
    prefix = text[:cut].rstrip(_DANGLING) or text[:cut]
    if not is_boundary(text, len(prefix)):  # rstrip stopped inside a cluster (" \u0301,")
        prefix = text[:cut]
    return prefix + ellipsis
