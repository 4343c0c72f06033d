"""The answer parsers on real-world messy LLM outputs."""

from __future__ import annotations

import pytest

from molora_adapters.data.llm.parsing import (
    ParsedTriple,
    ParseError,
    clean_element,
    parse_translation,
    parse_triples,
)

T = ParsedTriple

TRIPLE_CASES = [
    # strict JSON
    (
        '{"triples": [{"subject": "Die Katze", "relation": "saß auf", "object": "der Matte"}]}',
        [T("Die Katze", "saß auf", ["der Matte"])],
    ),
    # code fence + prose before and after
    (
        'Sure! Here are the triples:\n```json\n{"triples": [{"subject": "A", "relation": "b", "object": "C"}]}\n```\n'
        "Let me know if you need anything else.",
        [T("A", "b", ["C"])],
    ),
    # fence without language tag, bare list, several objects
    (
        '```\n[{"subject": "Marie Curie", "relation": "entdeckte", "object": ["das Radium", "1898"]}]\n```',
        [T("Marie Curie", "entdeckte", ["das Radium", "1898"])],
    ),
    # curly quotes everywhere and a trailing comma
    (
        "{“triples”: [{“subject”: “Marie Curie”, “relation”: “descubrió”, “object”: “el radio”,},]}",
        [T("Marie Curie", "descubrió", ["el radio"])],
    ),
    # Python-style single quotes
    (
        "{'subject': 'Berlin', 'relation': 'ist', 'object': 'die Hauptstadt'}",
        [T("Berlin", "ist", ["die Hauptstadt"])],
    ),
    # the paper's line format, with trailing periods and quotes
    (
        'Subject: "Die Katze"\nRelation: saß auf\nObject: der Matte.',
        [T("Die Katze", "saß auf", ["der Matte"])],
    ),
    # several triples, numbered, bold markdown keys
    (
        "1. **Subject:** A\n   **Relation:** b\n   **Object:** C\n2. **Subject:** D\n   **Relation:** e\n   **Object:** F.",
        [T("A", "b", ["C"]), T("D", "e", ["F"])],
    ),
    # one line per triple
    ("(Subject: 猫, Relation: 坐在, Object: 垫子上)", [T("猫", "坐在", ["垫子上"])]),
    # CJK spacing and full-width colon, repeated Object lines
    (
        "Subject：玛丽·居里\nRelation：发现了\nObject：镭\nObject：于 1898 年。",
        [T("玛丽·居里", "发现了", ["镭", "于 1898 年"])],
    ),
    # chain of thought: the last JSON wins, earlier reasoning quotes another JSON
    (
        'The English subject {"subject": "The cat"} maps to "Die Katze".\nAnswer: {"triples": [{"subject": '
        '"Die Katze", "relation": "saß auf", "object": "der Matte"}]}',
        [T("Die Katze", "saß auf", ["der Matte"])],
    ),
    # chain of thought in line format after "Answer:"
    (
        "Subject: the cat is Die Katze, relation is saß.\nAnswer:\nSubject: Die Katze\nRelation: saß auf\nObject: der Matte",
        [T("Die Katze", "saß auf", ["der Matte"])],
    ),
    # no object
    ('{"subject": "Er", "relation": "ging", "object": ""}', [T("Er", "ging", [])]),
    # SmolLM2-135M's real answer: mismatched closing brackets
    (
        '{"triples": [{"subject": "Marie Curie", "relation": "discovered", "object": "1898er Radium"}}}',
        [T("Marie Curie", "discovered", ["1898er Radium"])],
    ),
    # cut off by the token limit: the complete triples survive (the count check rejects it later)
    (
        '```json\n{"triples": [{"subject": "A", "relation": "b", "object": "C"}, {"subject": "D", "relat',
        [T("A", "b", ["C"])],
    ),
    ('{"triples": [{"subject": "A", "relation": "b", "object": "C"', [T("A", "b", ["C"])]),
    # a list triple
    ('["Wasser", "kocht bei", "100 Grad"]', [T("Wasser", "kocht bei", ["100 Grad"])]),
]


@pytest.mark.parametrize("text,expected", TRIPLE_CASES)
def test_parse_triples(text, expected):
    assert parse_triples(text) == expected


@pytest.mark.parametrize("text", ["", "I'm sorry, I can't help with that.", '{"foo": 1}', "```\n```"])
def test_parse_triples_rejects(text):
    with pytest.raises(ParseError):
        parse_triples(text)


TRANSLATION_CASES = [
    ('{"translation": "Die Katze saß auf der Matte."}', "Die Katze saß auf der Matte."),
    ('```json\n{"translation": "猫坐在垫子上。"}\n```', "猫坐在垫子上。"),
    ("Here is the translation:\n\n“El gato se sentó en la alfombra.”", "El gato se sentó en la alfombra."),
    (
        "Translation: O gato sentou-se no tapete.\n\nNote: 'sentou-se' is reflexive.",
        "O gato sentou-se no tapete.",
    ),
    ("Die Katze saß auf der Matte.", "Die Katze saß auf der Matte."),
    (
        "Names are kept.\nAnswer: {“translation”: “Marie Curie entdeckte 1898 das Radium.”}",
        "Marie Curie entdeckte 1898 das Radium.",
    ),
    ('{"translation": "Die  Katze\\n saß."}', "Die Katze saß."),
]


@pytest.mark.parametrize("text,expected", TRANSLATION_CASES)
def test_parse_translation(text, expected):
    assert parse_translation(text) == expected


@pytest.mark.parametrize("text", ["", "   \n", '{"foo": "bar"}'])
def test_parse_translation_rejects(text):
    with pytest.raises(ParseError):
        parse_translation(text)


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("der Matte.", "der Matte"),
        ("“Die Katze”", "Die Katze"),
        ("垫子上。", "垫子上"),
        ("U.S.", "U.S."),
        ("etc...", "etc..."),
        ("(the mat)", "the mat"),
        ("  a   b  ", "a b"),
        (None, ""),
        (["a", "b"], "a b"),
    ],
)
def test_clean_element(raw, clean):
    assert clean_element(raw) == clean
