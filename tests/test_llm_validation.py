"""Language check, tokenisation, span alignment and prompt templates."""

from __future__ import annotations

import json

import pytest

from molora_adapters.data.llm.languages import check_language, parse_language_list
from molora_adapters.data.llm.parsing import ParsedTriple
from molora_adapters.data.llm.prompts import MT4CROSSOIE, PROMPTS, PromptTemplate, format_triples, load_prompt
from molora_adapters.data.llm.validation import (
    RejectReason,
    ValidationError,
    align_triples,
    check_translation,
    find_span,
    tokenize,
)

GOOD = [
    ("Die Katze saß auf der Matte.", "de"),
    ("El gato se sentó en la alfombra.", "es"),
    ("O gato sentou-se no tapete.", "pt"),
    ("Le chat était assis sur le tapis.", "fr"),
    ("猫坐在垫子上。", "zh"),
    ("猫はマットの上に座った。", "ja"),
    ("جلست القطة على الحصيرة.", "ar"),
    ("बिल्ली चटाई पर बैठी।", "hi"),
    ("పిల్లి చాప మీద కూర్చుంది.", "te"),
    ("Кошка села на коврик.", "ru"),
    ("고양이가 매트 위에 앉았다.", "ko"),
]
BAD = [
    ("The cat sat on the mat.", "de", "English"),
    ("The cat sat on the mat.", "es", "English"),
    ("猫坐在垫子上。", "ja", "kana"),
    ("猫はマットの上に座った。", "zh", "kana"),
    ("Die Katze saß auf der Matte.", "zh", "script"),
    ("Кошка села на коврик.", "ar", "script"),
    ("1898 - 2016", "de", "no letters"),
]


@pytest.mark.parametrize("text,lang", GOOD)
def test_language_check_accepts(text, lang):
    assert check_language(text, lang) is None


@pytest.mark.parametrize("text,lang,why", BAD)
def test_language_check_rejects(text, lang, why):
    problem = check_language(text, lang)
    assert problem is not None and why.lower() in problem.lower()


def test_language_list_errors():
    assert parse_language_list("de, zh,de,ES") == ["de", "zh", "es"]
    with pytest.raises(ValueError, match="Unknown language code `'xx'`"):
        parse_language_list("de,xx")
    with pytest.raises(ValueError, match="must not contain `en`"):
        parse_language_list("en")
    with pytest.raises(ValueError, match="empty"):
        parse_language_list(" , ")


@pytest.mark.parametrize(
    "text,lang,words",
    [
        ("Die Katze saß auf der Matte.", "de", ["Die", "Katze", "saß", "auf", "der", "Matte", "."]),
        ("«Hola», dijo él.", "es", ["«", "Hola", "»", ",", "dijo", "él", "."]),
        ("U.S.-based firms (e.g. IBM)", "en", ["U.S.-based", "firms", "(", "e.g", ".", "IBM", ")"]),
        ("बिल्ली चटाई पर बैठी।", "hi", ["बिल्ली", "चटाई", "पर", "बैठी", "।"]),
        (
            "玛丽·居里于1898年发现了 iPhone。",
            "zh",
            ["玛", "丽", "·", "居", "里", "于", "1898", "年", "发", "现", "了", "iPhone", "。"],
        ),
        ("猫 は マット", "ja", ["猫", "は", "マ", "ッ", "ト"]),
    ],
)
def test_tokenize(text, lang, words):
    toks = tokenize(text, lang)
    assert [t.text for t in toks] == words
    assert all(text[t.start : t.end] == t.text for t in toks)


def test_find_span_prefers_unused_occurrence():
    words = "el comité aprobó el presupuesto el lunes".split()
    assert find_span(words, ["El"]) == [0]
    assert find_span(words, ["el"], used={0}) == [3]
    assert find_span(words, ["el", "lunes"]) == [5, 6]
    assert find_span(words, ["el", "martes"]) is None
    assert find_span(words, []) is None


def test_align_cjk_spacing_and_positions():
    words, tuples = align_triples(
        "玛丽·居里于1898年发现了镭。",
        "zh",
        [ParsedTriple("玛丽 · 居里", "发现 了", ["镭", "于 1898 年"])],
        [2],
    )
    t = tuples[0]
    assert (t.arg0, t.relation, t.args) == ("玛丽·居里", "发现了", ["镭", "于1898年"])
    assert (t.arg0_pos, t.relation_pos, t.args_pos) == ([0, 1, 2, 3, 4], [8, 9, 10], [[11], [5, 6, 7]])
    assert "".join(words[i] for i in t.args_pos[1]) == "于1898年"


def test_align_keeps_translation_casing():
    _, (t,) = align_triples(
        "Die Katze saß auf der Matte.", "de", [ParsedTriple("die katze", "saß auf", ["der Matte."])], [1]
    )
    assert (t.arg0, t.arg0_pos, t.args, t.args_pos) == ("Die Katze", [0, 1], ["der Matte"], [[4, 5]])


@pytest.mark.parametrize(
    "triples,n_objects,reason",
    [
        ([ParsedTriple("Die Katze", "saß", ["auf der Matte"])], [1, 1], RejectReason.COUNT_MISMATCH),
        ([ParsedTriple("Die Katze", "saß", [])], [1], RejectReason.COUNT_MISMATCH),
        ([ParsedTriple("", "saß", ["auf der Matte"])], [1], RejectReason.EMPTY_ELEMENT),
        ([ParsedTriple("Die Katze", "saß auf", ["die Matte"])], [1], RejectReason.NOT_A_SPAN),
        ([ParsedTriple("Katze Die", "saß", ["Matte"])], [1], RejectReason.NOT_A_SPAN),
    ],
)
def test_align_rejects(triples, n_objects, reason):
    with pytest.raises(ValidationError) as e:
        align_triples("Die Katze saß auf der Matte.", "de", triples, n_objects)
    assert e.value.reason is reason and e.value.detail


def test_check_translation():
    check_translation("The cat sat.", "Die Katze saß.", "de")
    for text, reason in [
        ("", RejectReason.TRANSLATION_PARSE),
        ("The  cat sat.", RejectReason.UNTRANSLATED),
        ("The dog sat on the mat.", RejectReason.WRONG_LANGUAGE),
    ]:
        with pytest.raises(ValidationError) as e:
            check_translation("The cat sat.", text, "de")
        assert e.value.reason is reason


def test_prompts_builtin_and_ids():
    assert PROMPTS.names() == ["mt4crossoie", "mt4crossoie-cot"]
    ids = {PROMPTS.get(n).prompt_id for n in PROMPTS.names()}
    assert len(ids) == 2 and all(i.startswith("mt4crossoie") for i in ids)
    msgs = MT4CROSSOIE.annotate_messages(
        "The cat sat.",
        "Die Katze saß.",
        format_triples(
            [
                {"arg0": "The cat", "relation": "sat", "args": []},
                {"arg0": "A", "relation": "b", "args": ["c", "d"]},
            ]
        ),
        "German",
    )
    user = msgs[1]["content"]
    assert '{"subject": "The cat", "relation": "sat", "object": ""}' in user
    assert '{"subject": "A", "relation": "b", "object": ["c", "d"]}' in user
    assert (
        "German translation: Die Katze saß." in user and "information extraction expert" in msgs[0]["content"]
    )


def test_prompt_override_from_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps({"name": "mine", "version": "3", "translate_user": "To {language}: {sentence}"})
    )
    p = load_prompt(str(path))
    assert p.translate_messages("Hi.", "German")[1]["content"] == "To German: Hi."
    assert p.annotate_user == MT4CROSSOIE.annotate_user
    assert p.prompt_id.startswith("mine@3+") and p.prompt_id != MT4CROSSOIE.prompt_id
    path.write_text(json.dumps({"name": "mine", "version": "3", "translate_user": "To {lang}: {sentence}"}))
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \['lang'\]"):
        load_prompt(str(path))
    path.write_text(
        json.dumps({"name": "mine", "version": "3", "translate_user": "Translate into {language}."})
    )
    with pytest.raises(ValueError, match="must contain \\['sentence'\\]"):
        load_prompt(str(path))
    path.write_text(json.dumps({"translate_user": "To {language}: {sentence}"}))
    with pytest.raises(ValueError, match="must set `name` and `version`"):
        load_prompt(str(path))
    with pytest.raises(ValueError, match="neither a registered template"):
        load_prompt("no-such-prompt")
    with pytest.raises(ValueError, match="`translate_system`"):
        PromptTemplate(**{**MT4CROSSOIE.__dict__, "translate_system": " "})
