"""Parsers for LLM answers: the translation and the extracted triples.

Real answers are messy. Both parsers accept:

* strict JSON (what our prompts ask for), also inside Markdown code fences or surrounded by prose;
  with the chain-of-thought prompt the *last* JSON value wins, so reasoning may quote examples;
* JSON with typographic quotes (``“subject”: “x”``), trailing commas or Python-style single quotes;
* the paper's line format ``Subject: ... / Relation: ... / Object: ...`` (several triples, numbered
  or not, one per line or all on one line; repeated ``Object:`` lines give several objects);
* surrounding quotes and a sentence-final period on elements (``Object: the mat.``).

Everything that cannot be read raises :class:`ParseError`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class ParseError(ValueError):
    """An LLM answer could not be parsed."""


@dataclass
class ParsedTriple:
    """One triple as answered by the LLM (not yet aligned to the translation)."""

    subject: str
    relation: str
    objects: list[str] = field(default_factory=list)


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_CURLY = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "＂": '"'})
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_QUOTES = "\"'`“”„«»‘’「」『』"
_FINAL = re.compile(r"(?:final\s+answer|answer)\s*[:：]", re.I)


def _fenced_or_whole(text: str) -> list[str]:
    blocks = _FENCE.findall(text)
    return blocks + [text] if blocks else [text]


def _balanced(text: str) -> Iterator[str]:
    """Yield every balanced ``{...}`` / ``[...]`` substring that starts at a top-level bracket."""
    i, n = 0, len(text)
    while i < n:
        if text[i] not in "{[":
            i += 1
            continue
        depth, j, quote = 0, i, None
        while j < n:
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 2
                    continue
                if ch == quote:
                    quote = None
            elif ch == '"':
                quote = '"'
            elif ch in "“”":  # typographic quotes: a string closes on the next ”
                quote = "”"
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    yield text[i : j + 1]
                    break
            j += 1
        i = j + 1 if j < n else i + 1


def _loads(candidate: str) -> Any:
    attempts = [candidate, _TRAILING_COMMA.sub(r"\1", candidate)]
    curly = candidate.translate(_CURLY).replace("‘", "'").replace("’", "'")
    attempts += [curly, _TRAILING_COMMA.sub(r"\1", curly)]
    for a in attempts:
        try:
            return json.loads(a)
        except ValueError:
            pass
    for a in attempts[1::2]:
        try:
            return ast.literal_eval(a)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    raise ParseError("not JSON")


def _repair_brackets(text: str) -> str | None:
    """Fix mismatched or missing closing brackets of the first JSON-looking value (small models
    often write ``[{...}}}`` or stop early); `None` if there is no opening bracket."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    out: list[str] = []
    stack: list[str] = []
    quote = False
    i = min(starts)
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
            out.append(ch)
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            out.append(ch)
        elif ch in "}]":
            if not stack:
                break
            out.append(stack.pop())
            if not stack:
                break
        else:
            out.append(ch)
        i += 1
    if quote:
        out.append('"')
    out.extend(reversed(stack))
    return "".join(out)


def json_values(text: str) -> list[Any]:
    """All JSON values found in ``text`` (code fences first, then the raw text), in order.

    When nothing parses, one repair is tried: closing brackets are matched to the open ones.
    """
    values: list[Any] = []
    for chunk in _fenced_or_whole(text):
        for cand in _balanced(chunk):
            try:
                values.append(_loads(cand))
            except ParseError:
                continue
    if not values:
        for chunk in _fenced_or_whole(text):
            repaired = _repair_brackets(chunk)
            if repaired is None:
                continue
            try:
                values.append(_loads(repaired))
                break
            except ParseError:
                continue
    return values


def clean_element(value: Any) -> str:
    """Normalise one element: join lists, strip quotes, brackets, whitespace and a final period."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = " ".join(clean_element(v) for v in value)
    s = " ".join(str(value).split())
    for _ in range(2):
        s = s.strip().strip(_QUOTES).strip()
        if len(s) > 1 and s[0] in "([<" and s[-1] in ")]>" and s.count(s[0]) == 1:
            s = s[1:-1]
        last = s.split()[-1] if s.split() else ""
        # a sentence-final period, but not an ellipsis or an abbreviation such as "U.S." or "e.g."
        if last.endswith("。") or (last.endswith(".") and "." not in last[:-1]):
            s = s[:-1]
    return s.strip()


# ---------------------------------------------------------------------------------------------
# translation


def _dict_get(d: dict, *names: str) -> Any:
    lower = {str(k).strip().lower(): v for k, v in d.items()}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def parse_translation(text: str) -> str:
    """Extract the translation from an answer (JSON ``{"translation": ...}``, ``Translation:`` or bare text).

    Args:
        text (`str`): the raw answer.

    Raises:
        ParseError: if no translation can be found.
    """
    for value in reversed(json_values(text)):
        if isinstance(value, dict):
            t = _dict_get(value, "translation", "translated", "text", "target")
            if isinstance(t, str) and t.strip():
                return " ".join(t.split())
    markers = list(re.finditer(r"(?:final\s+)?translation\s*[:：]", text, re.I))
    body = text[markers[-1].end() :] if markers else _fenced_or_whole(text)[0]
    lines = [ln.strip() for ln in body.strip().splitlines() if ln.strip()]
    if not markers:
        # drop a lead-in such as "Here is the translation:" and a trailing note in parentheses
        while lines and lines[0].endswith((":", "：")) and len(lines) > 1:
            lines.pop(0)
    if not lines:
        raise ParseError("empty answer")
    out = lines[0].strip().strip(_QUOTES).strip()
    if not out or out.startswith(("{", "[")):
        raise ParseError(f"no translation in {text[:80]!r}")
    return out


# ---------------------------------------------------------------------------------------------
# triples

_SUBJ = ("subject", "subj", "arg0", "head", "主语")
_REL = ("relation", "predicate", "rel", "verb", "谓语")
_OBJ = ("object", "objects", "obj", "args", "arguments", "arg1", "tail", "宾语")


def _triple_from_dict(d: dict) -> ParsedTriple | None:
    subj, rel = _dict_get(d, *_SUBJ), _dict_get(d, *_REL)
    if subj is None and rel is None:
        return None
    obj = _dict_get(d, *_OBJ)
    if obj is None:
        objects: list[str] = []
    elif isinstance(obj, (list, tuple)):
        objects = [clean_element(o) for o in obj]
    else:
        objects = [clean_element(obj)]
    return ParsedTriple(clean_element(subj), clean_element(rel), [o for o in objects if o])


def _triples_from_value(value: Any) -> list[ParsedTriple] | None:
    if isinstance(value, dict):
        inner = _dict_get(value, "triples", "extractions", "triple", "answer", "result")
        if inner is not None:
            return _triples_from_value(inner)
        t = _triple_from_dict(value)
        return [t] if t else None
    if isinstance(value, list):
        if value and all(isinstance(v, str) for v in value) and len(value) == 3:
            return [ParsedTriple(clean_element(value[0]), clean_element(value[1]), [clean_element(value[2])])]
        out: list[ParsedTriple] = []
        for v in value:
            sub = _triples_from_value(v)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


_LINE_KEY = re.compile(
    r"(?:^|(?<=[\s,;|(\[{*\-]))\**\s*(subject|relation|predicate|objects?)\s*\d*\s*\**\s*[:：]\s*\**\s*", re.I
)


def _triples_from_lines(text: str) -> list[ParsedTriple]:
    marks = list(_LINE_KEY.finditer(text))
    triples: list[ParsedTriple] = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        raw = text[m.end() : end]
        raw = raw.split("\n")[0] if "\n" in raw.strip() else raw
        value = clean_element(raw.strip().rstrip(",;|)]}").strip())
        key = m.group(1).lower()
        if key == "subject" or not triples:
            triples.append(ParsedTriple("", "", []))
        cur = triples[-1]
        if key == "subject":
            cur.subject = value
        elif key in ("relation", "predicate"):
            cur.relation = value
        elif value:
            cur.objects.append(value)
    return triples


def parse_triples(text: str) -> list[ParsedTriple]:
    """Extract the list of triples from an annotation answer (see module docstring).

    Args:
        text (`str`): the raw answer.

    Raises:
        ParseError: if neither JSON triples nor ``Subject:/Relation:/Object:`` lines are found.
    """
    for value in reversed(json_values(text)):
        triples = _triples_from_value(value)
        if triples:
            return triples
    finals = list(_FINAL.finditer(text))
    tail = text[finals[-1].end() :] if finals else text
    triples = _triples_from_lines(tail) or _triples_from_lines(text)
    if not triples:
        raise ParseError(f"no triples in {text[:80]!r}")
    return triples
