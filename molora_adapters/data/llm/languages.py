"""Target languages, their scripts and the translation language check.

The check is deliberately simple and dependency-free, so that it is predictable and cheap
enough to run on every translation:

* **Non-Latin scripts** (zh, ja, ko, ar, fa, hi, te, ru, ...): at least half of the letters of the
  translation must belong to the language's Unicode script ranges. Japanese additionally needs
  at least one kana character (a Japanese sentence without particles is vanishingly rare, and this
  is what separates it from Chinese); Chinese must contain no kana.
* **Latin-script languages** (de, es, pt, fr, it, nl, ...): at least half of the letters must be
  Latin, and a stopword / diacritic score of the target language must not be below the English
  score. This catches the usual failure, an answer left in (or switched back to) English, without
  trying to separate close pairs such as es/pt, where a heuristic would reject good translations.

A translation identical to the English sentence is always rejected (see ``validation.py``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# (first, last) code point ranges per script.
_SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "latin": ((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x024F), (0x1E00, 0x1EFF)),
    "han": ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F)),
    "kana": ((0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)),
    "hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF)),
    "arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "devanagari": ((0x0900, 0x097F), (0xA8E0, 0xA8FF)),
    "telugu": ((0x0C00, 0x0C7F),),
    "bengali": ((0x0980, 0x09FF),),
    "tamil": ((0x0B80, 0x0BFF),),
    "cyrillic": ((0x0400, 0x04FF), (0x0500, 0x052F)),
    "greek": ((0x0370, 0x03FF), (0x1F00, 0x1FFF)),
    "hebrew": ((0x0590, 0x05FF),),
    "thai": ((0x0E00, 0x0E7F),),
}


@dataclass(frozen=True)
class Language:
    """A supported target language.

    Args:
        code (`str`): ISO 639-1 code used on the command line and in records.
        name (`str`): English name, used in prompts.
        scripts (`tuple[str, ...]`): scripts (keys of ``_SCRIPTS``) whose letters count as this language.
        unspaced (`bool`, *optional*, defaults to `False`): written without spaces between words (zh, ja);
            such translations are split into characters and spans are matched ignoring spaces.
        stopwords (`frozenset[str]`, *optional*): frequent function words (Latin-script languages).
        diacritics (`str`, *optional*): characters typical of the language (Latin-script languages).
    """

    code: str
    name: str
    scripts: tuple[str, ...]
    unspaced: bool = False
    stopwords: frozenset[str] = frozenset()
    diacritics: str = ""


def _words(s: str) -> frozenset[str]:
    return frozenset(s.split())


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in [
        Language(
            "en",
            "English",
            ("latin",),
            stopwords=_words(
                "the a an of and to in is are was were be been by with for on that this from as at it its "
                "which who has have had not or but their they he she his her will would"
            ),
        ),
        Language(
            "de",
            "German",
            ("latin",),
            diacritics="äöüßÄÖÜ",
            stopwords=_words(
                "der die das den dem des ein eine einer eines einem einen und ist sind war waren wurde wurden "
                "mit von zu zum zur im auf für nicht sich auch als bei nach aus oder wie sie er es ihr sein "
                "seine dass werden hat haben"
            ),
        ),
        Language(
            "es",
            "Spanish",
            ("latin",),
            diacritics="ñáéíóúü¿¡ÑÁÉÍÓÚ",
            stopwords=_words(
                "el la los las un una unos unas y es son fue fueron de del en con por para que se su sus "
                "al como lo le más pero está están ha han sido entre sobre"
            ),
        ),
        Language(
            "pt",
            "Portuguese",
            ("latin",),
            diacritics="ãõçáéíóúâêôàÃÕÇÁÉÍÓÚÂÊÔ",
            stopwords=_words(
                "o a os as um uma uns umas e é são foi foram de do da dos das em no na nos nas com por para "
                "que se seu sua seus suas ao como mais mas está estão tem têm pelo pela entre sobre"
            ),
        ),
        Language(
            "fr",
            "French",
            ("latin",),
            diacritics="éèêëàâçîïôûùœÉÈÊÀÇ",
            stopwords=_words(
                "le la les un une des et est sont était étaient de du en dans avec par pour que qui se sa son "
                "ses au aux comme ne pas plus mais sur il elle ils ont a été"
            ),
        ),
        Language(
            "it",
            "Italian",
            ("latin",),
            diacritics="àèéìòù",
            stopwords=_words(
                "il lo la i gli le un una e è sono era erano di del della dei delle in con per che si suo sua "
                "al alla come non più ma nel nella ha hanno stato"
            ),
        ),
        Language(
            "nl",
            "Dutch",
            ("latin",),
            diacritics="ëïé",
            stopwords=_words(
                "de het een en is zijn was waren van in met voor op dat die te door als niet ook aan bij er "
                "om hij zij wordt werd heeft hebben"
            ),
        ),
        Language("zh", "Chinese", ("han",), unspaced=True),
        Language("ja", "Japanese", ("han", "kana"), unspaced=True),
        Language("ko", "Korean", ("hangul", "han")),
        Language("ar", "Arabic", ("arabic",)),
        Language("fa", "Persian", ("arabic",)),
        Language("hi", "Hindi", ("devanagari",)),
        Language("bn", "Bengali", ("bengali",)),
        Language("ta", "Tamil", ("tamil",)),
        Language("te", "Telugu", ("telugu",)),
        Language("ru", "Russian", ("cyrillic",)),
        Language("uk", "Ukrainian", ("cyrillic",)),
        Language("el", "Greek", ("greek",)),
        Language("he", "Hebrew", ("hebrew",)),
        Language("th", "Thai", ("thai",), unspaced=True),
    ]
}


def get_language(code: str) -> Language:
    """Return the :class:`Language` for ``code`` or raise a `ValueError` listing the supported codes."""
    lang = LANGUAGES.get(code)
    if lang is None:
        raise ValueError(
            f"Unknown language code `{code!r}`; supported: {', '.join(sorted(LANGUAGES))}. "
            "Add one to `molora_adapters.data.llm.languages.LANGUAGES` to extend the list."
        )
    return lang


def parse_language_list(value: str | list[str]) -> list[str]:
    """Parse ``"de,zh, es"`` (or a list) into validated, de-duplicated codes, keeping their order."""
    items = value.split(",") if isinstance(value, str) else list(value)
    codes: list[str] = []
    for raw in items:
        code = raw.strip().lower()
        if not code:
            continue
        get_language(code)
        if code == "en":
            raise ValueError("`langs` must not contain `en`: the source corpus is English already.")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise ValueError(f"`langs` is empty (got `{value!r}`); pass e.g. `de,zh,es`.")
    return codes


def script_of(ch: str) -> str | None:
    """The ``_SCRIPTS`` key of a character, or `None` (digits, punctuation, other scripts)."""
    cp = ord(ch)
    for name, ranges in _SCRIPTS.items():
        for lo, hi in ranges:
            if lo <= cp <= hi:
                return name
    return None


def script_counts(text: str) -> dict[str, int]:
    """Count letters per script; letters of scripts we do not know are counted under ``"other"``."""
    counts: dict[str, int] = {}
    for ch in text:
        if not (ch.isalpha() or unicodedata.category(ch).startswith("M")):
            continue
        s = script_of(ch) or "other"
        counts[s] = counts.get(s, 0) + 1
    return counts


_LATIN_TOKEN = re.compile(r"[^\W\d_]+", re.UNICODE)


def latin_score(text: str, lang: Language) -> float:
    """Stopword hits plus diacritic hits (per 2 characters) of ``lang`` in ``text``."""
    tokens = [t.lower() for t in _LATIN_TOKEN.findall(text)]
    hits = sum(t in lang.stopwords for t in tokens)
    return hits + sum(ch in lang.diacritics for ch in text) / 2


def check_language(text: str, code: str) -> str | None:
    """Return `None` if ``text`` looks like language ``code``, else a short explanation.

    Args:
        text (`str`): the translation.
        code (`str`): the expected language code.
    """
    lang = get_language(code)
    counts = script_counts(text)
    letters = sum(counts.values())
    if letters == 0:
        return "no letters"
    own = sum(counts.get(s, 0) for s in lang.scripts)
    if own / letters < 0.5:
        top = max(counts, key=counts.get)
        return f"{own}/{letters} letters in {'+'.join(lang.scripts)} script (mostly {top})"
    if code == "ja" and counts.get("kana", 0) == 0:
        return "no kana: looks like Chinese, not Japanese"
    if code == "zh" and counts.get("kana", 0) > 0:
        return "contains kana: looks like Japanese, not Chinese"
    if lang.scripts == ("latin",):
        en, target = latin_score(text, LANGUAGES["en"]), latin_score(text, lang)
        if en > target:
            return f"looks like English (English score {en:g} > {lang.name} score {target:g})"
        if target == 0 and len(_LATIN_TOKEN.findall(text)) >= 4:
            return f"no {lang.name} function words or diacritics"
    return None
