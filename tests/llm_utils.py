"""Shared pieces of the LLM data tests: a tiny English corpus, a scripted "LLM" and a loopback
chat-completions server with fault injection."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ENGLISH = [
    {
        "id": "s1",
        "sentence": "The cat sat on the mat .",
        "extractions": [{"arg0": "The cat", "relation": "sat on", "args": ["the mat"]}],
    },
    {
        "id": "s2",
        "sentence": "Marie Curie discovered radium in 1898 .",
        "extractions": [{"arg0": "Marie Curie", "relation": "discovered", "args": ["radium", "in 1898"]}],
    },
    {
        "id": "s3",
        "sentence": "Berlin is the capital of Germany .",
        "extractions": [{"arg0": "Berlin", "relation": "is the capital of", "args": ["Germany"]}],
    },
    {
        "id": "s4",
        "sentence": "The committee approved the new budget on Monday .",
        "extractions": [
            {"arg0": "The committee", "relation": "approved", "args": ["the new budget", "on Monday"]}
        ],
    },
    {
        "id": "s5",
        "sentence": "Water boils at 100 degrees .",
        "extractions": [{"arg0": "Water", "relation": "boils at", "args": ["100 degrees"]}],
    },
    {"id": "s6", "sentence": "Nothing was extracted here .", "extractions": []},
]
LANGS = ["de", "zh", "es"]


def _j(subj, rel, obj) -> str:
    return json.dumps({"triples": [{"subject": subj, "relation": rel, "object": obj}]}, ensure_ascii=False)


# (source id, language) -> (translation answer, annotation answer); the answers are in the messy
# forms real models produce.
SCRIPT: dict[tuple[str, str], tuple[str, str]] = {
    ("s1", "de"): (
        '{"translation": "Die Katze saß auf der Matte."}',
        _j("Die Katze", "saß auf", "der Matte."),
    ),
    ("s1", "zh"): ('```json\n{"translation": "猫坐在垫子上。"}\n```', _j("猫", "坐在", "垫子上")),
    ("s1", "es"): (
        'Here is the translation:\n\n"El gato se sentó en la alfombra."',
        "Subject: El gato\nRelation: se sentó en\nObject: la alfombra.",
    ),
    ("s2", "de"): (
        '{"translation": "Marie Curie entdeckte 1898 das Radium."}',
        _j("Marie Curie", "entdeckte", ["das Radium", "1898"]),
    ),
    ("s2", "zh"): (
        '{"translation": "玛丽·居里于1898年发现了镭。"}',
        _j("玛丽·居里", "发现了", ["镭", "于 1898 年"]),
    ),
    ("s2", "es"): (
        '{"translation": "Marie Curie descubrió el radio en 1898."}',
        "Sure!\n```\n{“triples”: [{“subject”: “Marie Curie”, “relation”: “descubrió”, "
        "“object”: [“el radio”, “en 1898”]}]}\n```",
    ),
    ("s3", "de"): (
        '{"translation": "Berlin ist die Hauptstadt von Deutschland."}',
        _j("Berlin", "ist die Hauptstadt von", "Deutschland"),
    ),
    # not a span: the relation skips the words between 是 and 首都
    ("s3", "zh"): ('{"translation": "柏林是德国的首都。"}', _j("柏林", "是首都", "德国")),
    ("s3", "es"): (
        '{"translation": "Berlín es la capital de Alemania."}',
        _j("Berlín", "es la capital de", "Alemania"),
    ),
    # left in English
    ("s4", "de"): ('{"translation": "The committee approved the new budget on Monday."}', "unused"),
    ("s4", "zh"): ('{"translation": "委员会周一批准了新预算。"}', _j("委员会", "批准了", ["新预算", "周一"])),
    ("s4", "es"): (
        '{"translation": "El comité aprobó el nuevo presupuesto el lunes."}',
        _j("El comité", "aprobó", ["el nuevo presupuesto", "el lunes"]),
    ),
    ("s5", "de"): ('{"translation": "Wasser kocht bei 100 Grad."}', _j("Wasser", "kocht bei", "100 Grad")),
    ("s5", "zh"): ('{"translation": "水在100度沸腾。"}', "Subject: 水\nRelation: 沸腾\nObject: 100 度"),
    # unparseable annotation
    ("s5", "es"): ('{"translation": "El agua hierve a 100 grados."}', "I am sorry, I cannot help with that."),
}

EXPECTED_ACCEPTED = {
    "s1:de",
    "s1:zh",
    "s1:es",
    "s2:de",
    "s2:zh",
    "s2:es",
    "s3:de",
    "s3:es",
    "s4:zh",
    "s4:es",
    "s5:de",
    "s5:zh",
}
EXPECTED_REJECTED = {"s3:zh": "not_a_span", "s4:de": "untranslated", "s5:es": "annotation_unparseable"}
# distinct requests of a full run: 15 translations + 14 annotations (s4:de stops after translating)
N_REQUESTS = 29

_NAMES = {"German": "de", "Chinese": "zh", "Spanish": "es"}
_ID_OF = {" ".join(r["sentence"].replace(" .", ".").split()): r["id"] for r in ENGLISH}


def assert_record_valid(rec: dict) -> None:
    """An accepted record passes validation again: language check, spans and positions."""
    from molora_adapters.data.llm.parsing import ParsedTriple
    from molora_adapters.data.llm.validation import align_triples, check_translation

    meta = json.loads(rec["meta"])
    check_translation(meta["source_sentence"], rec["sentence"], rec["language"])
    triples = [ParsedTriple(e["arg0"], e["relation"], e["args"]) for e in rec["extractions"]]
    words, tuples = align_triples(
        rec["sentence"], rec["language"], triples, [len(e["args"]) for e in rec["extractions"]]
    )
    assert words == rec["words"]
    assert [t.to_dict() for t in tuples] == [
        {**e, "context": None, "confidence": 1.0} for e in rec["extractions"]
    ]
    for e in rec["extractions"]:
        for text, pos in [(e["arg0"], e["arg0_pos"]), (e["relation"], e["relation_pos"])] + list(
            zip(e["args"], e["args_pos"], strict=True)
        ):
            joined = "".join(words[i] for i in pos)
            assert joined == "".join(text.split()) and pos == list(range(pos[0], pos[-1] + 1))
    assert set(meta) >= {"source_id", "language", "backend", "model", "prompt_id", "responses"}


def write_source(path: Path) -> Path:
    path.write_text("".join(json.dumps({**r, "language": "en"}) + "\n" for r in ENGLISH), encoding="utf-8")
    return path


def scripted_answer(messages: list[dict]) -> tuple[str, str]:
    """(request key, answer) of the scripted LLM for a chat request made with our prompts."""
    user = messages[-1]["content"]
    m = re.search(r"into (\w+)\.\nEnglish: (.*)\n", user)
    if m:
        lang, sent, stage = _NAMES[m.group(1)], m.group(2), "translate"
    else:
        m = re.search(r"English sentence: (.*)\n", user)
        sent, stage = m.group(1), "annotate"
        lang = _NAMES[re.search(r"\n(\w+) translation: ", user).group(1)]
    sid = _ID_OF[sent]
    answer = SCRIPT[(sid, lang)][0 if stage == "translate" else 1]
    return f"{stage}:{sid}:{lang}", answer


class ChatServer:
    """A threaded loopback server speaking ``POST /v1/chat/completions``.

    ``faults`` is a list of fault names consumed one per request, in arrival order (``None`` = answer
    normally): ``"429"`` (with ``Retry-After: 1``), ``"500"``, ``"hang"`` (say nothing for ``hang_s``
    or until the server stops, then drop the connection), ``"malformed"`` (a 200 whose body is not JSON), ``"auth"`` (401).
    """

    def __init__(self, faults: list[str | None] | None = None, *, delay: float = 0.0, hang_s: float = 60.0):
        self.faults = list(faults or [])
        self.delay, self.hang_s = delay, hang_s
        self.requests: Counter[str] = Counter()  # answered requests per key
        self.received = 0
        self.fault_log: list[str] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client died or gave up (timeout tests, kill test)
                    self.close_connection = True

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.received += 1
                    fault = server.faults.pop(0) if server.faults else None
                    if fault:
                        server.fault_log.append(fault)
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                if fault == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": "1"})
                if fault == "500":
                    return self._send(500, b'{"error": "internal"}')
                if fault == "auth":
                    return self._send(401, b'{"error": "invalid api key"}')
                if fault == "hang":
                    server._closing.wait(server.hang_s)
                    self.close_connection = True
                    return None
                if fault == "malformed":
                    return self._send(200, b'{"choices": [{"message": {"content": "oops"')
                key, answer = scripted_answer(body["messages"])
                if server.delay:
                    time.sleep(server.delay)
                with server._lock:
                    server.requests[key] += 1
                payload = {
                    "id": "x",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }
                return self._send(200, json.dumps(payload).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
