"""Gold loaders, readers/writers round trips, the registries, `evaluate` metrics, Trainer and CLI."""

from __future__ import annotations

import gzip
import json
import warnings
from dataclasses import dataclass, field

import pytest
from benchmarks_utils import BENCH_DATA, gunzip_to, write_lines

from molora_adapters.data.schema import OIE_FEATURES
from molora_adapters.oie.benchmarks import (
    SCORERS,
    ExtractionRow,
    load_benchmark,
    normalize_key,
    read_benchie,
    read_jsonl,
    read_predictions,
    read_tabbed,
    register_scorer,
    rows_from_extractions,
    score,
    score_extractions,
    write_benchie,
    write_jsonl,
    write_tabbed,
)


@pytest.mark.parametrize(
    "name, lang, kwargs, n_sentences, n_tuples",
    [
        ("carb", "en", {}, 634, 2715),
        ("carb", "en", {"split": "dev"}, 638, 2548),
        pytest.param("carb", "zh", {}, 4721, 12629, marks=pytest.mark.slow),
        ("carb", "hi", {}, 298, 931),
        ("carb", "te", {}, 302, 877),
        ("carb", "es", {}, 595, 1496),
        ("carb", "pt", {}, 594, 1496),
        ("reoie2016", "en", {}, 595, 1508),
        ("reoie2016", "en", {"binary": True}, 595, 1508),
        ("reoie2016", "es", {}, 595, 1496),
        ("reoie2016", "pt", {"binary": True}, 594, 1503),
        pytest.param("benchie", "en", {}, 300, 8150, marks=pytest.mark.slow),
        ("benchie", "de", {}, 300, 2446),
        ("benchie", "zh", {}, 300, 1368),
        ("oie2016", "en", {}, 603, 1730),
        ("oie2016", "en", {"split": "dev"}, 582, 1672),
    ],
)
def test_load_benchmark(name, lang, kwargs, n_sentences, n_tuples):
    ds = load_benchmark(name, lang, **kwargs)
    assert ds.features == OIE_FEATURES
    assert len(ds) == n_sentences and sum(len(e) for e in ds["extractions"]) == n_tuples
    assert set(ds["language"]) == {lang}
    assert json.loads(ds[0]["meta"])["source"]


def test_load_benchmark_record_content():
    ds = load_benchmark("reoie2016", "en")
    rec = ds[0]
    assert rec["sentence"].startswith("Few people in the advertising business")
    ext = rec["extractions"][0]
    assert ext["arg0"] == "Few people in the advertising business" and ext["arg0_pos"] == [0, 1, 2, 3, 4, 5]
    assert [rec["words"][i] for i in ext["relation_pos"]] == ext["relation"].split()
    carb = load_benchmark("carb", "en")
    ctx = [e["context"] for r in carb for e in r["extractions"] if e["context"]]
    assert len(ctx) == 89 and not any(c.startswith("C: ") for c in ctx)


def test_unknown_gold_names_the_fix():
    with pytest.raises(ValueError, match="Shipped: carb/en/dev/full"):
        load_benchmark("carb", "fr")
    with pytest.raises(KeyError, match="Available: benchie, carb"):
        load_benchmark("nope")


def test_registries_reject_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_scorer("carb", lambda rows, **kw: {})
    assert {"benchie", "carb", "oie2016", "reoie2016"} <= set(SCORERS.names())


@dataclass
class _Ext:  # duck-typed like molora_adapters.oie.Extraction
    sentence: str
    relation: str
    arg0: str
    args: list[str] = field(default_factory=list)
    confidence: float = 1.0


def test_rows_from_every_shape():
    expected = [ExtractionRow("S a b .", "a", ("S", "b"), 0.5), ExtractionRow("T c .", "c", ("T",), 1.0)]
    exts = {
        "S a b .": [{"arg0": "S", "relation": "a", "args": ["b"], "confidence": 0.5}],
        "T c .": [{"arg0": "T", "relation": "c", "args": []}],
    }
    shapes = [
        exts,
        list(exts.items()),
        [{"sentence": s, "extractions": e} for s, e in exts.items()],
        [_Ext("S a b .", "a", "S", ["b"], 0.5), _Ext("T c .", "c", "T")],
    ]
    for shape in shapes:
        assert [r[:4] for r in rows_from_extractions(shape)] == [r[:4] for r in expected]
    with pytest.raises(ValueError, match=r"<predictions>\[0\]"):
        rows_from_extractions([42])


def test_writers_round_trip(tmp_path):
    rows = [
        ExtractionRow("He ran home .", "ran", ("He", "home"), 0.123456789012345),
        ExtractionRow("He ran home .", "ran to", ("He", "home", "at\tnight"), 1.0),
        ExtractionRow("他 跑 了 。", "跑", ("他",), 0.5),
    ]
    write_tabbed(tmp_path / "p.tsv", rows)
    back = read_tabbed(tmp_path / "p.tsv")
    assert [r[:4] for r in back] == [
        r._replace(args=tuple(a.replace("\t", " ") for a in r.args))[:4] for r in rows
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    assert [r[:4] for r in read_jsonl(tmp_path / "p.jsonl")] == [r[:4] for r in rows]
    write_benchie(tmp_path / "p.txt", rows, sent_ids={"He ran home.": "7"})
    assert [(r.sent_id, r.args, r.relation) for r in read_benchie(tmp_path / "p.txt")] == [
        ("7", ("He", "home"), "ran"),
        ("7", ("He", "home at night"), "ran to"),
        ("1", ("他", ""), "跑"),
    ]
    assert oct((tmp_path / "p.tsv").stat().st_mode & 0o777) != "0o600"


def test_read_predictions_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_predictions(tmp_path / "missing.tsv")
    p = write_lines(tmp_path / "p.tsv", ["a\t1\tb"])
    with pytest.raises(ValueError, match="`format`"):
        read_predictions(p, "xml")
    bad = write_lines(tmp_path / "bad.jsonl", ['{"sentence": "x", "extractions": []}', "{oops"])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON"):
        read_jsonl(bad)
    o4 = write_lines(
        tmp_path / "o4.txt", ["0.9\t\tSimpleArgument(he)\tRelation(ran,List([3, 6)))\tX\the ran"]
    )
    with pytest.raises(ValueError, match=r"o4\.txt:1: .*OpenIE-4"):
        read_predictions(o4, "openie4")


def test_benchie_format_cannot_score_sentence_benchmarks(tmp_path):
    with pytest.raises(ValueError, match="only carries sentence ids"):
        score("carb", BENCH_DATA / "m2oie_en_explicit.txt", format="benchie")


def _benchie_records(lang):
    ds = load_benchmark("benchie", lang)
    id2sent = {json.loads(m)["sent_id"]: s for m, s in zip(ds["meta"], ds["sentence"], strict=False)}
    records: dict[str, list] = {}
    for r in read_benchie(BENCH_DATA / f"m2oie_{lang}_explicit.txt"):
        records.setdefault(r.sent_id, []).append(
            {"arg0": r.args[0], "relation": r.relation, "args": [r.args[1]], "confidence": 1.0}
        )
    return [{"sentence": id2sent[k], "extractions": v} for k, v in records.items()]


def test_evaluate_load_shipped_metric_script():
    import evaluate

    from molora_adapters.oie.benchmarks.metric import metric_path

    metric = evaluate.load(metric_path("benchie"), config_name="de")
    res = metric.compute(predictions=_benchie_records("de"))
    assert (round(res["precision"], 4), round(res["recall"], 4), round(res["f1"], 4)) == (
        0.0895,
        0.0258,
        0.04,
    )
    carb = evaluate.load(metric_path("carb"))
    preds = [
        {
            "sentence": "He ran home .",
            "extractions": [{"arg0": "He", "relation": "ran", "args": ["home"], "confidence": 0.9}],
        }
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert carb.compute(predictions=preds) == {
            k: v for k, v in score_extractions("carb", preds).items() if k != "curve"
        }


@pytest.mark.slow
def test_trainer_compute_metrics(tmp_path):
    import torch
    from transformers import Trainer, TrainingArguments

    from molora_adapters.oie.benchmarks.metric import make_compute_metrics

    records = _benchie_records("en")

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, idx, labels=None):
            logits = idx.float().unsqueeze(-1) + self.w
            return {"loss": (logits**2).mean(), "logits": logits}

    eval_ds = [{"idx": i, "labels": i} for i in range(len(records))]

    def decode(eval_prediction):  # a real pipeline decodes tags into extractions here
        return [records[int(i)] for i in eval_prediction.label_ids]

    args = TrainingArguments(
        output_dir=str(tmp_path), report_to=[], use_cpu=True, per_device_eval_batch_size=64
    )
    trainer = Trainer(
        model=Toy(),
        args=args,
        eval_dataset=eval_ds,
        compute_metrics=make_compute_metrics("benchie", decode, lang="en"),
    )
    metrics = trainer.evaluate()
    assert round(metrics["eval_precision"], 4) == 0.3924 and round(metrics["eval_f1"], 4) == 0.2281


def test_cli_compares_files_and_writes_json_and_png(tmp_path, capsys):
    from molora_adapters.cli import main

    o4 = gunzip_to(BENCH_DATA / "openie4_output.txt.gz", tmp_path / "openie4.txt")
    out = tmp_path / "res" / "scores.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(
            [
                "evaluate",
                "--benchmark",
                "carb",
                "--format",
                "openie4",
                str(o4),
                str(o4),
                "--label",
                "a",
                "--label",
                "b",
                "--json",
                str(out),
            ]
        )
    assert rc == 0
    text = capsys.readouterr().out
    assert "0.5526  0.4372  0.4882   0.272" in text
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"a", "b"} and data["results"]["a"]["auc"] == 0.272
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dat = tmp_path / "OpenIE-4.dat"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(
                [
                    "evaluate",
                    "--benchmark",
                    "carb",
                    "--format",
                    "openie4",
                    str(o4),
                    "--dat",
                    str(dat),
                    "--no-plot",
                ]
            )
            == 0
        )
    assert dat.read_bytes() == gzip.decompress((BENCH_DATA / "OpenIE-4.dat.gz").read_bytes())


def test_cli_benchie_and_bad_input(tmp_path, capsys):
    from molora_adapters.cli import main

    assert (
        main(
            [
                "evaluate",
                "--benchmark",
                "benchie",
                "--lang",
                "zh",
                "--format",
                "benchie",
                str(BENCH_DATA / "m2oie_zh_explicit.txt"),
                "--no-plot",
            ]
        )
        == 0
    )
    assert "0.1756  0.1026  0.1295" in capsys.readouterr().out
    bad = write_lines(tmp_path / "bad.tsv", ["s\tx\tr\ta"])
    assert main(["evaluate", "--benchmark", "carb", str(bad)]) == 2
    assert "bad.tsv:1" in capsys.readouterr().err


def test_scoring_benchmark_records_uses_their_sent_ids():
    ds = load_benchmark("benchie", "de")
    res = score_extractions("benchie", ds, lang="de")
    # a gold triple used as a prediction hits a synset when it has no optional [tokens]; a triple repeated
    # in two synsets marks only the first (official), so a few synsets stay unhit
    expected = 0
    for rec in ds:
        synsets = json.loads(rec["meta"])["synsets"]
        plain = {
            c
            for e, c in zip(rec["extractions"], synsets, strict=True)
            if "[" not in e["arg0"] + e["relation"] + "".join(e["args"])
        }
        expected += len(plain)
    assert res["unknown_predictions"] == 0 and 0.95 * expected <= res["true_positives"] <= expected


@pytest.mark.parametrize("benchmark, lang", [("carb", "en"), ("reoie2016", "es"), ("oie2016", "en")])
def test_scoring_on_a_sentence_subset_equals_a_filtered_gold_file(benchmark, lang, tmp_path):
    """`sentences=` scores on part of the gold exactly as a gold file restricted to those sentences does."""
    from molora_adapters.oie.benchmarks import gold_path

    ds = load_benchmark(benchmark, lang)
    subset = list(ds["sentence"][3:9])
    preds = [r for r in ds.select(range(0, 12))]  # gold records as predictions: some hit, some are unknown
    src = gold_path(benchmark, lang)
    keys = {normalize_key(s) for s in subset}
    with gzip.open(src, "rt", encoding="utf-8", newline="") as f:
        if benchmark == "reoie2016":
            text = json.dumps({k: v for k, v in json.load(f).items() if normalize_key(k) in keys})
        else:
            text = "".join(line for line in f if normalize_key(line.split("\t", 1)[0]) in keys)
    filtered = tmp_path / "gold.txt"
    filtered.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # predictions on sentences outside the subset
        got = score_extractions(benchmark, preds, lang=lang, sentences=subset)
        expected = score_extractions(benchmark, preds, lang=lang, gold=filtered)
        whole = score_extractions(benchmark, preds, lang=lang)
    drop = ("curve",)
    assert {k: v for k, v in got.items() if k not in drop} == {
        k: v for k, v in expected.items() if k not in drop
    }
    assert got["recall"] != whole["recall"] and got["unknown_predictions"] > 0
    with pytest.raises(ValueError, match="`sentences`: 1 sentence"):
        score_extractions(benchmark, preds, lang=lang, sentences=[*subset, "Not a gold sentence at all ."])


def test_benchie_on_a_sentence_subset_counts_only_their_synsets():
    from molora_adapters.oie.benchmarks import gold_path, parse_benchie_gold

    gold = parse_benchie_gold(gold_path("benchie", "de"))
    ds = load_benchmark("benchie", "de")
    subset = list(ds["sentence"][:6])
    ids = [gold.key_to_id[normalize_key(s)] for s in subset]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = score_extractions("benchie", ds.select(range(12)), lang="de", sentences=subset)
        only_subset = score_extractions("benchie", ds.select(range(6)), lang="de")
    assert got["synsets"] == sum(len(gold.synsets[i]) for i in ids) < only_subset["synsets"]
    assert got["unknown_sentences"] == 6
    assert got["true_positives"] == only_subset["true_positives"] > 0
    assert got["false_negatives"] == got["synsets"] - got["true_positives"]
