"""A persistent, crash-safe cache of LLM answers (SQLite).

One row per answered request, keyed by a hash of (backend, model, prompt id, stage, sentence,
language, stage input). SQLite commits are atomic and durable (``synchronous=FULL``), so a process
killed at any point leaves either the whole row or nothing: re-running never pays twice for an answer
that was received and stored, and never reads a half-written one. The WAL journal lets several
threads (and an inspecting process) read while one writes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    language TEXT NOT NULL,
    sentence TEXT NOT NULL,
    response TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer and the tokens it cost when it was first obtained."""

    response: str
    prompt_tokens: int
    completion_tokens: int


def cache_key(
    backend: str, model: str, prompt_id: str, stage: str, sentence: str, language: str, extra: str = ""
) -> str:
    """The cache key: SHA-256 of the JSON list of its parts."""
    parts = [backend, model, prompt_id, stage, sentence, language, extra]
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


class AnswerCache:
    """SQLite-backed answer cache, safe to share between threads.

    Args:
        path (`str` or `Path`): the database file (created with its parent directory if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._db.execute(
                "SELECT response, prompt_tokens, completion_tokens FROM answers WHERE key = ?", (key,)
            ).fetchone()
        return CachedAnswer(*row) if row else None

    def put(
        self,
        key: str,
        answer: CachedAnswer,
        *,
        backend: str,
        model: str,
        prompt_id: str,
        stage: str,
        language: str,
        sentence: str,
    ) -> None:
        """Store ``answer`` (the first answer for a key wins; later puts are ignored)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model,
                    prompt_id,
                    stage,
                    language,
                    sentence,
                    answer.response,
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
