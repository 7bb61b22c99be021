"""Which script the texts are in, and a warning when the backbone cannot read it.

An English-only backbone scores near chance on Chinese (SetFit on MiniLM: 0.56 on a binary Chinese
review task), and nothing else in the pipeline fails loudly, so fit() checks the training texts.
Only the script is looked at, not the language: it is cheap, needs no model, and CJK text is the
case that goes wrong silently (Latin-script languages at least share MiniLM's word pieces).
"""

from __future__ import annotations

import unicodedata
import warnings
from typing import Iterable

from ..backbones.catalog import BACKBONES, CAUSAL_LM, MULTILINGUAL
from .labeled import DataWarning

# Han (CJK unified ideographs and extension A, compatibility ideographs), kana and Hangul.
_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x2FA1F),  # Extensions B-F and the supplement
)
# Above this share of CJK letters the texts are "mostly CJK": mixed headlines like
# "恒生AH溢指收平 A股对H股折价1.95%" count as Chinese, English with a quoted name does not.
MOSTLY_CJK = 0.5
_SAMPLE = 2000  # texts looked at: enough for a stable fraction, cheap on any data set


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _unspaced(char: str) -> bool:
    """A character next to which no space is written: CJK, or full-width/CJK punctuation ("：", "。")."""
    code = ord(char)
    return is_cjk(char) or 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF


def space_between(before: str, after: str) -> str:
    """What goes between two pieces of text: " " where the script separates words by spaces, else "".

    "Sentiment:" + "great" -> "Sentiment: great"; "情感：" + "正面" -> "情感：正面" (a space there
    would also cost a token: " 正面" is two tokens for Gemma, "正面" one).
    """
    if not before or not after or before[-1].isspace() or after[0].isspace():
        return ""
    return "" if _unspaced(before[-1]) or _unspaced(after[0]) else " "


def cjk_fraction(texts: Iterable[str]) -> float:
    """The share of letters (str.isalpha: ideographs count, digits and punctuation do not) that are CJK."""
    letters = cjk = 0
    for i, text in enumerate(texts):
        if i >= _SAMPLE:
            break
        for char in text:
            if char.isalpha():
                letters += 1
                cjk += is_cjk(char)
    return cjk / letters if letters else 0.0


COMMON = "Common"
# Scripts a piece table keeps whatever the texts hold: digits, punctuation and symbols (Common), and
# Latin, which names, brands, code and URLs bring into text of every language.
ALWAYS_KEPT = frozenset({COMMON, "Latin"})


def script_of(char: str) -> str:
    """The writing system of one character, from its Unicode name: "Latin", "Han", "Hiragana", "Arabic", ...;
    "Common" for everything that is not a letter or a combining mark (digits, punctuation, symbols, emoji)."""
    if unicodedata.category(char)[0] not in "LM":
        return COMMON
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0] if name else ""
    if first in ("CJK", "IDEOGRAPHIC"):
        return "Han"
    if first in ("COMBINING", "MODIFIER", "") or first.startswith(("VARIATION", "KATAKANA-HIRAGANA")):
        return COMMON  # marks and signs shared by several scripts
    return first.title()


def text_scripts(texts: Iterable[str], *, sample: int = _SAMPLE) -> list[str]:
    """The scripts of the letters in (the first `sample` of) `texts`, sorted; Latin and Common always."""
    found = set(ALWAYS_KEPT)
    for i, text in enumerate(texts):
        if i >= sample:
            break
        found.update(script_of(c) for c in set(text))
    return sorted(found)


def warn_if_unreadable(texts: list[str], backbone_name: str, kind: str = "encoder") -> float | None:
    """Warn (DataWarning) when a named English-only backbone gets mostly-CJK texts; the fraction, or None.

    kind: what the method reads ("encoder" or "causal-lm"): the warning names the multilingual
    backbone of that kind. Local folders and hub ids are not judged: fewtune does not know what they
    were trained on.
    """
    spec = BACKBONES.get(str(backbone_name).lower())
    if spec is None or spec.multilingual:
        return None
    fraction = cjk_fraction(texts)
    if fraction > MOSTLY_CJK:
        warnings.warn(
            f"{fraction:.0%} of the letters in the training texts are Chinese/Japanese/Korean, but backbone "
            f"'{spec.name}' is English-only and will be near chance on them; use a multilingual backbone: "
            f"{multilingual_hint(kind)}",
            DataWarning,
            stacklevel=3,
        )
    return fraction


def multilingual_hint(kind: str) -> str:
    """Which multilingual backbone to use instead, for a method that reads `kind`."""
    if kind == CAUSAL_LM:
        return f"--backbone {MULTILINGUAL[CAUSAL_LM]} (methods zero-shot, prompt, icl, finetune)"
    return f"--backbone {MULTILINGUAL['encoder']} (methods setfit, linear-probe, finetune, hybrid)"
