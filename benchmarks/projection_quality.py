"""Quality of annotation projection (issue 13): the aligner on a hand-checked set, projection on Re-OIE2016.

Run from the repository root::

    python benchmarks/projection_quality.py [--out benchmarks/results/projection_quality.json]
        [--reoie-dir DIR] [--xquad DIR]

1. **Aligner**: precision / recall / F1 / AER of the embedded encoder's SimAlign-style word alignment
   on the 16 hand-aligned en-de and en-zh pairs of ``tests/data/alignment_gold.jsonl``, for several
   layers and both link methods.
2. **Projection precision on Re-OIE2016 es/pt**: the English gold tuples are projected
   (``molora project --source reoie2016``) onto the Spanish / Portuguese sentences, and every projected
   tuple of the accepted records is compared with the Spanish / Portuguese gold tuples of its sentence:
   *exact* (every slot has exactly the gold word positions of one gold tuple), *relation exact*, and the
   mean per-slot word-F1 against the best gold tuple (*lenient* = share with mean slot F1 >= 0.5).
3. **Leak check**: XQuAD English sentences against BenchIE en and CaRB en dev/test (whose de/zh/hi/te/es/pt
   sets are translations), and XQuAD de/zh against BenchIE de/zh (``--xquad DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from molora_adapters.data.projection import EncoderAligner, Sentence, find_leaks, split_sentences  # noqa: E402
from molora_adapters.data.projection.align import AlignMethod, alignment_scores  # noqa: E402
from molora_adapters.data.shards import accepted_path, read_jsonl, read_manifest  # noqa: E402
from molora_adapters.oie.benchmarks.gold import load_benchmark  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def aligner_scores() -> dict:
    rows = [json.loads(x) for x in (ROOT / "tests/data/alignment_gold.jsonl").read_text("utf-8").splitlines()]
    pairs = [
        (Sentence.from_text(r["source"], "en"), Sentence.from_text(r["target"], r["language"])) for r in rows
    ]
    aligner = EncoderAligner()
    out = {}
    for layer in (4, 6, 8, 10, 12):
        aligner.layer = layer
        enc = aligner.encode([s for p in pairs for s in p])
        for method in AlignMethod:
            aligner.method = method
            for lang in ("de", "zh"):
                idx = [k for k, r in enumerate(rows) if r["language"] == lang]
                sc = alignment_scores(
                    [aligner.align(enc[2 * k], enc[2 * k + 1]).links for k in idx],
                    [rows[k]["sure"] for k in idx],
                    [rows[k]["possible"] for k in idx],
                )
                out[f"layer{layer}/{method.value}/{lang}"] = {k: round(v, 4) for k, v in sc.items()}
    return out


def _slot_f1(a: list[int], b: list[int]) -> float:
    a, b = set(a), set(b)
    if not a or not b:
        return float(a == b)
    inter = len(a & b)
    return 2 * inter / (len(a) + len(b))


def _slots(e: dict) -> list[list[int]]:
    return [list(e["arg0_pos"]), list(e["relation_pos"])] + [list(p) for p in e["args_pos"]]


def projection_precision(out_dir: Path) -> dict:
    gold = {lang: list(load_benchmark("reoie2016", lang)) for lang in ("es", "pt")}
    res: dict = {}
    manifest = read_manifest(out_dir)
    counts: dict = {}
    for e in manifest["shards"].values():
        for k, v in e["counts"].items():
            counts[k] = counts.get(k, 0) + v
    for lang in ("es", "pt"):
        n = exact = rel = lenient = 0
        f1_sum = 0.0
        for key in sorted(manifest["shards"]):
            for row in read_jsonl(accepted_path(out_dir, int(key))):
                if row["language"] != lang:
                    continue
                meta = json.loads(row["meta"])
                g = gold[lang][meta["target_index"]]
                assert g["words"] == row["words"], "target sentence mismatch"
                for e in row["extractions"]:
                    n += 1
                    ps = _slots(e)
                    best = 0.0
                    is_exact = is_rel = False
                    for ge in g["extractions"]:
                        gs = _slots(ge)
                        m = max(len(ps), len(gs))
                        f = sum(_slot_f1(a, b) for a, b in zip(ps, gs, strict=False)) / m
                        best = max(best, f)
                        is_exact |= [set(x) for x in ps] == [set(x) for x in gs]
                        is_rel |= set(ps[1]) == set(gs[1])
                    exact += is_exact
                    rel += is_rel
                    lenient += best >= 0.5
                    f1_sum += best
        res[lang] = {
            "projected_tuples": n,
            "exact_precision": round(exact / n, 4) if n else None,
            "relation_exact_precision": round(rel / n, 4) if n else None,
            "lenient_precision": round(lenient / n, 4) if n else None,
            "mean_slot_f1": round(f1_sum / n, 4) if n else None,
        }
    res["pair_counts"] = counts
    stats = json.loads((out_dir / "stats.json").read_text())
    res["pairing"] = stats["pairing"]
    res["tuples"] = stats["tuples"]
    return res


def leak_check(xquad: Path) -> dict:
    def paragraphs(lang):
        d = json.loads((xquad / f"xquad.{lang}.json").read_text("utf-8"))
        return [p["context"] for a in d["data"] for p in a["paragraphs"]]

    out = {}
    en = [s for p in paragraphs("en") for s in split_sentences(p, "en")]
    tests = [r["sentence"] for r in load_benchmark("benchie", "en")]
    tests += [r["sentence"] for split in ("dev", "test") for r in load_benchmark("carb", "en", split=split)]
    tests += [r["sentence"] for r in load_benchmark("reoie2016", "en")]
    out["en"] = {"sentences": len(en), "test_sentences": len(tests), "leaks": find_leaks(en, tests, "en")}
    for lang in ("de", "zh"):
        sents = [s for p in paragraphs(lang) for s in split_sentences(p, lang)]
        t = [r["sentence"] for r in load_benchmark("benchie", lang)]
        out[lang] = {"sentences": len(sents), "test_sentences": len(t), "leaks": find_leaks(sents, t, lang)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/projection_quality.json")
    ap.add_argument("--reoie-dir", default=None, help="existing `molora project --source reoie2016` output")
    ap.add_argument("--xquad", default=None, help="XQuAD directory for the leak check")
    args = ap.parse_args()
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "python": sys.version.split()[0],
    }
    t = time.perf_counter()
    results["aligner_hand_set"] = aligner_scores()
    results["aligner_seconds"] = round(time.perf_counter() - t, 1)
    reoie = Path(args.reoie_dir) if args.reoie_dir else Path("runs/reoie2016-projected")
    if not (reoie / "manifest.json").is_file():
        cmd = [
            sys.executable,
            "-m",
            "molora_adapters.cli",
            "project",
            "--source",
            "reoie2016",
            "--langs",
            "es,pt",
        ]
        subprocess.run([*cmd, "--out", str(reoie), "--no-progress"], check=True)
    results["reoie2016_projection"] = projection_precision(reoie)
    if args.xquad:
        results["leak_check"] = leak_check(Path(args.xquad))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
