"""``molora annotate``: build multilingual OIE training data with an LLM (translate, then annotate).

Example::

    molora annotate --source oie2016 --langs de,zh,es,pt,ar --backend openai \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini --out data/oie4pp --limit 1000

Every input is checked before the first request. Re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .backends import LLM_BACKENDS, FatalBackendError, build_backend
from .backends.openai_http import OpenAIHTTPConfig
from .backends.transformers_local import TransformersLocalConfig
from .pipeline import AnnotateConfig, annotate
from .source import load_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``molora annotate`` options to ``parser``."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--source", required=True, help="registered English corpus name, or a JSONL file in the OIE schema"
    )
    g.add_argument("--source-path", default=None, help="file/directory passed to a registered corpus loader")
    g.add_argument("--langs", required=True, help="comma-separated target languages, e.g. de,zh,es,pt,ar")
    g.add_argument("--out", required=True, help="output directory (re-use it to resume)")
    g.add_argument("--limit", type=int, default=None, help="use the first N source sentences")
    g.add_argument(
        "--prompt",
        default="mt4crossoie",
        help="prompt template name (mt4crossoie, mt4crossoie-cot) or JSON file",
    )
    g.add_argument("--shard-size", type=int, default=256)
    g.add_argument("--cache", default=None, help="answer cache file (default OUT/cache.sqlite)")
    b = parser.add_argument_group("backend")
    b.add_argument("--backend", default="openai", help=f"one of: {', '.join(LLM_BACKENDS.names())}")
    b.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible API root (env MOLORA_LLM_BASE_URL/OPENAI_BASE_URL)",
    )
    b.add_argument(
        "--model",
        default=None,
        help="model name; for --backend transformers a directory, .gguf file or 'smollm2'",
    )
    b.add_argument("--api-key", default=None, help="API key (env MOLORA_LLM_API_KEY/OPENAI_API_KEY)")
    b.add_argument("--gguf-file", default=None, help="GGUF file inside --model (transformers backend)")
    b.add_argument("--device", default="cpu", help="torch device (transformers backend)")
    b.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the server to connect or send data"
    )
    b.add_argument("--max-retries", type=int, default=8)
    b.add_argument(
        "--extra-body",
        type=json.loads,
        default=None,
        help='JSON merged into every request, e.g. \'{"response_format": {"type": "json_object"}}\'',
    )
    b.add_argument("--rpm", type=float, default=None, help="requests per minute limit")
    b.add_argument("--concurrency", type=int, default=4)
    b.add_argument("--temperature", type=float, default=0.0)
    b.add_argument("--max-tokens-translate", type=int, default=512)
    b.add_argument("--max-tokens-annotate", type=int, default=1024)
    c = parser.add_argument_group("cost")
    c.add_argument("--price-prompt", type=float, default=0.0, help="price per million prompt tokens")
    c.add_argument("--price-completion", type=float, default=0.0, help="price per million completion tokens")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def backend_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Validated settings of the chosen backend (raises `ValueError` before anything is loaded or sent)."""
    if args.backend == "openai":
        cfg = OpenAIHTTPConfig(
            base_url=args.base_url,
            model=args.model,
            api_key=args.api_key,
            timeout=args.timeout,
            max_retries=args.max_retries,
            requests_per_minute=args.rpm,
            concurrency=args.concurrency,
            extra_body=args.extra_body or {},
        )
        return {"config": cfg}
    if args.backend == "transformers":
        return {
            "config": TransformersLocalConfig(
                model=args.model or "smollm2", gguf_file=args.gguf_file, device=args.device
            )
        }
    LLM_BACKENDS.get(args.backend)  # unknown names raise with the list of backends
    return {
        k: v
        for k, v in {"model": args.model, "base_url": args.base_url, "api_key": args.api_key}.items()
        if v
    }


def run(args: argparse.Namespace) -> int:
    """Run ``molora annotate``; returns 0 on success, 2 on bad input, 1 when the backend fails for good."""
    try:
        config = AnnotateConfig(
            languages=args.langs,
            out_dir=args.out,
            prompt=args.prompt,
            limit=args.limit,
            shard_size=args.shard_size,
            cache_path=args.cache,
            concurrency=args.concurrency,
            temperature=args.temperature,
            max_tokens_translate=args.max_tokens_translate,
            max_tokens_annotate=args.max_tokens_annotate,
            price_prompt=args.price_prompt,
            price_completion=args.price_completion,
            progress=not args.no_progress,
        )
        settings = backend_settings(args)
        source = load_source(args.source, args.source_path)
    except (ValueError, KeyError) as e:
        print(f"molora annotate: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    try:
        backend = build_backend(args.backend, **settings)
    except (ValueError, ImportError, OSError) as e:
        print(f"molora annotate: error: backend `{args.backend}` could not start: {e}", file=sys.stderr)
        return 2
    try:
        report = annotate(source, backend, config, source_name=args.source)
    except FatalBackendError as e:
        print(f"molora annotate: backend error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("molora annotate: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    finally:
        backend.close()
    print(report.summary())
    print(f"accepted records: molora_adapters.data.load_training_corpus('llm-augmented', path={args.out!r})")
    return 0
