"""Versioned prompt templates for the two stages: translate, then annotate.

Two built-in variants (both in our own wording):

* ``mt4crossoie`` — the paper's two prompts: a translator prompt, then an "information extraction
  expert" prompt that shows the English sentence and triples and asks for the matching triples of
  the translation, as contiguous spans;
* ``mt4crossoie-cot`` — the same task with a chain-of-thought instruction: the model reasons first
  and ends with the JSON answer (the parser takes the last JSON value).

A template's :attr:`PromptTemplate.prompt_id` (``name@version+hash``) is part of every cache key
and of every record's provenance, so editing a template can never silently reuse answers that were
produced by another wording. Users override templates with a JSON file holding the fields of
:class:`PromptTemplate` (see :func:`load_prompt`), or register new ones with :func:`register_prompt`.

Placeholders: ``{language}`` (English name of the target language), ``{sentence}`` (English),
``{translation}``, ``{triples}`` (the English triples as JSON, one per line).
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ...registry import Registry

Message = dict[str, str]

_FIELDS_PLACEHOLDERS = {
    "translate_system": set(),
    "translate_user": {"language", "sentence"},
    "annotate_system": set(),
    "annotate_user": {"language", "sentence", "translation", "triples"},
}


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class PromptTemplate:
    """The four messages of the two-stage prompt.

    Args:
        name (`str`): template name (``mt4crossoie``, ``mt4crossoie-cot`` or your own).
        version (`str`): bump it whenever the wording changes.
        translate_system (`str`): system message of the translation stage.
        translate_user (`str`): user message of the translation stage; uses ``{language}``, ``{sentence}``.
        annotate_system (`str`): system message of the annotation stage.
        annotate_user (`str`): user message of the annotation stage; uses ``{language}``, ``{sentence}``,
            ``{translation}`` and ``{triples}``.
    """

    name: str
    version: str
    translate_system: str
    translate_user: str
    annotate_system: str
    annotate_user: str

    def __post_init__(self) -> None:
        for f, allowed in _FIELDS_PLACEHOLDERS.items():
            value = getattr(self, f)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"`{f}` of prompt `{self.name}` must be a non-empty string, got {value!r}.")
            try:
                used = _placeholders(value)
            except ValueError as e:
                raise ValueError(f"`{f}` of prompt `{self.name}` is not a valid format string: {e}") from None
            unknown = used - allowed
            if unknown:
                raise ValueError(
                    f"`{f}` of prompt `{self.name}` uses unknown placeholder(s) {sorted(unknown)}; "
                    f"allowed: {sorted(allowed) or 'none'} (write literal braces as '{{{{' and '}}}}')."
                )
        for f in ("translate_user", "annotate_user"):
            missing = _FIELDS_PLACEHOLDERS[f] - _placeholders(getattr(self, f)) - {"language"}
            if missing:
                raise ValueError(f"`{f}` of prompt `{self.name}` must contain {sorted(missing)}.")

    @property
    def prompt_id(self) -> str:
        """``name@version+hash8``: identifies the exact wording (part of cache keys and provenance)."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}@{self.version}+{digest}"

    def translate_messages(self, sentence: str, language: str) -> list[Message]:
        """Chat messages asking to translate ``sentence`` into ``language`` (an English name)."""
        return [
            {"role": "system", "content": self.translate_system},
            {"role": "user", "content": self.translate_user.format(sentence=sentence, language=language)},
        ]

    def annotate_messages(
        self, sentence: str, translation: str, triples: str, language: str
    ) -> list[Message]:
        """Chat messages asking for the triples of ``translation`` matching the English ``triples``."""
        user = self.annotate_user.format(
            sentence=sentence, translation=translation, triples=triples, language=language
        )
        return [{"role": "system", "content": self.annotate_system}, {"role": "user", "content": user}]


_TRANSLATE_SYSTEM = (
    "You are a professional translator. You translate English sentences faithfully and fluently, "
    "keeping every piece of information and adding nothing."
)
_TRANSLATE_USER = (
    "Translate the following English sentence into {language}.\n"
    "English: {sentence}\n"
    'Reply with JSON only, in the form {{"translation": "..."}}.'
)
_ANNOTATE_SYSTEM = (
    "You are an information extraction expert. You find, in a translated sentence, the exact words "
    "that express each fact of the original sentence."
)
_ANNOTATE_USER = (
    "English sentence: {sentence}\n"
    "Its triples (subject, relation, object):\n{triples}\n\n"
    "{language} translation: {translation}\n\n"
    "For each English triple, in the same order, give the matching triple of the {language} translation. "
    "Every subject, relation and object must be copied exactly from the {language} translation as one "
    "contiguous piece of text: do not reorder, inflect, add or drop words. Keep the same number of "
    "objects as the English triple.\n"
    'Reply with JSON only: {{"triples": [{{"subject": "...", "relation": "...", "object": "..."}}]}}.'
)
_COT_SUFFIX = (
    "\n\nFirst think step by step: for each English element, find the words of the translation that "
    "express it and check that they appear there contiguously, exactly as written. Then write a line "
    '"Answer:" followed by the JSON.'
)

MT4CROSSOIE = PromptTemplate(
    name="mt4crossoie",
    version="1",
    translate_system=_TRANSLATE_SYSTEM,
    translate_user=_TRANSLATE_USER,
    annotate_system=_ANNOTATE_SYSTEM,
    annotate_user=_ANNOTATE_USER,
)

MT4CROSSOIE_COT = PromptTemplate(
    name="mt4crossoie-cot",
    version="1",
    translate_system=_TRANSLATE_SYSTEM,
    translate_user=(
        "Translate the following English sentence into {language}.\n"
        "English: {sentence}\n"
        "First note any names, numbers and idioms that need care, briefly. Then write a line "
        '"Answer:" followed by JSON of the form {{"translation": "..."}}.'
    ),
    annotate_system=_ANNOTATE_SYSTEM,
    annotate_user=_ANNOTATE_USER.replace("Reply with JSON only: ", "The JSON has the form ") + _COT_SUFFIX,
)

PROMPTS: Registry[PromptTemplate] = Registry("prompt template")


def register_prompt(template: PromptTemplate, *, overwrite: bool = False) -> PromptTemplate:
    """Register ``template`` under its name (duplicates raise unless ``overwrite=True``).

    Args:
        template (`PromptTemplate`): the template.
        overwrite (`bool`, *optional*, defaults to `False`): replace a template of the same name.
    """
    return PROMPTS.register(template.name, template, overwrite=overwrite)


register_prompt(MT4CROSSOIE)
register_prompt(MT4CROSSOIE_COT)


def load_prompt(name_or_path: str | PromptTemplate | dict) -> PromptTemplate:
    """Return a registered template by name, or read one from a JSON file.

    The JSON file holds the fields of :class:`PromptTemplate`; missing message fields are taken from
    the template named by its optional ``"base"`` key (default ``mt4crossoie``).

    Args:
        name_or_path (`str`, `PromptTemplate` or `dict`): a registered name, a path to a JSON file, a template,
            or a template's fields as a dict (``dataclasses.asdict`` of one, e.g. inside a saved
            ``AnnotateConfig``).
    """
    if isinstance(name_or_path, PromptTemplate):
        return name_or_path
    if isinstance(name_or_path, dict):
        known = {f.name for f in fields(PromptTemplate)}
        if set(name_or_path) != known:
            raise ValueError(
                f"`prompt` as a dict needs exactly the fields {sorted(known)}, got {sorted(name_or_path)}."
            )
        return PromptTemplate(**name_or_path)
    if name_or_path in PROMPTS:
        return PROMPTS.get(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(
            f"`prompt` {name_or_path!r} is neither a registered template ({', '.join(PROMPTS.names())}) "
            "nor an existing JSON file."
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"Prompt file {path} must hold a JSON object with the fields of `PromptTemplate`.")
    base = PROMPTS.get(data.pop("base", "mt4crossoie"))
    known = {f.name for f in fields(PromptTemplate)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(
            f"Prompt file {path} has unknown field(s) {sorted(unknown)}; allowed: {sorted(known)}."
        )
    if "name" not in data or "version" not in data:
        raise ValueError(f"Prompt file {path} must set `name` and `version` so its answers are cached apart.")
    return PromptTemplate(**{**asdict(base), **data})


def format_triples(extractions: list[dict]) -> str:
    """Render English extractions as the JSON lines shown in the annotation prompt.

    An extraction with one argument shows ``"object": "..."``; with several, a list; with none, ``""``.
    """
    lines = []
    for ex in extractions:
        args = [a for a in ex.get("args") or [] if a]
        obj: str | list[str] = args[0] if len(args) == 1 else (args if args else "")
        lines.append(
            json.dumps({"subject": ex["arg0"], "relation": ex["relation"], "object": obj}, ensure_ascii=False)
        )
    return "\n".join(lines)
