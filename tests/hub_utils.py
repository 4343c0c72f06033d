"""A loopback Hugging Face Hub for tests: an in-memory server speaking the API subset ``huggingface_hub`` 0.36 uses.

Supported (model repos only; enough for ``create_repo``, ``create_branch``, ``upload_folder`` / ``create_commit``,
``model_info`` / ``repo_info``, ``list_repo_files`` / ``list_repo_tree``, ``hf_hub_download``, ``snapshot_download``
and ``ModelCard.load``):

- ``POST /api/repos/create``, ``POST /api/validate-yaml``;
- ``POST /api/models/{repo}/preupload/{rev}``: every file is uploaded in ``"regular"`` mode (inline base64, no LFS or
  Xet), and the git blob id of an existing file is returned so unchanged files are skipped as on the real Hub;
- ``POST /api/models/{repo}/commit/{rev}``: NDJSON ``header`` / ``file`` / ``deletedFile`` / ``deletedFolder`` lines,
  applied atomically (all or nothing);
- ``POST /api/models/{repo}/branch/{branch}``;
- ``GET /api/models/{repo}[/revision/{rev}]`` and ``GET /api/models/{repo}/tree/{rev}[/{path}]``;
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}`` with the ``X-Repo-Commit``, ``ETag`` and ``Content-Length``
  headers ``hf_hub_download`` needs.

Errors carry the ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) that
``hf_raise_for_status`` maps to its exception classes. ``fail_commits={n}`` answers the n-th commit request (1-based,
over all repos) with a 500 and changes nothing. The server binds 127.0.0.1 only and shuts itself down after
``lifetime_s`` seconds even if a test forgets to stop it.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)


def git_blob_id(data: bytes) -> str:
    """``git hash-object`` of ``data``: what the Hub reports as a regular file's ``oid``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_id: str
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit oid -> files
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit oid
    log: list[tuple[str, str]] = field(default_factory=list)  # (commit oid, summary), oldest first

    def resolve(self, revision: str) -> str | None:
        return self.branches.get(revision) or (revision if revision in self.commits else None)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LoopbackHub:
    """An in-memory Hub on ``http://127.0.0.1:<port>``; use as a context manager.

    Args:
        fail_commits (`set[int]`, *optional*): 1-based numbers of commit requests answered with HTTP 500.
        lifetime_s (`float`, *optional*, defaults to 120): the server stops by itself after this many seconds.
    """

    def __init__(self, fail_commits: set[int] | None = None, lifetime_s: float = 120.0):
        self.repos: dict[str, Repo] = {}
        self.fail_commits = set(fail_commits or ())
        self.commit_requests = 0
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.authorizations: set[str | None] = set()
        self.unhandled: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._lifetime_s = lifetime_s
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        serve = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        watchdog = threading.Timer(self._lifetime_s, self.stop)
        watchdog.daemon = True
        self._threads = [serve, watchdog]
        serve.start()
        watchdog.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            if isinstance(thread, threading.Timer):
                thread.cancel()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- inspection helpers for tests ------------------------------------------------------------------------------
    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.resolve(revision)])

    # ---- state changes (called with the lock held) -----------------------------------------------------------------
    def _new_oid(self, repo_id: str) -> str:
        return hashlib.sha1(f"{repo_id}:{next(self._counter)}".encode()).hexdigest()

    def _repo(self, repo_id: str) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _rev(self, repo: Repo, revision: str) -> str:
        oid = repo.resolve(revision)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return oid

    def create_repo(self, body: dict) -> tuple[int, dict]:
        if body.get("type", "model") != "model" or not body.get("organization"):
            raise HubError(400, "The loopback hub only hosts model repos with a namespace ('user/name').")
        repo_id = f"{body['organization']}/{body['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            return 409, {"error": "You already created this model repo", "url": url}
        repo = Repo(repo_id, private=bool(body.get("private")))
        oid = self._new_oid(repo_id)
        repo.commits[oid] = {".gitattributes": GITATTRIBUTES}
        repo.branches["main"] = oid
        repo.log.append((oid, "initial commit"))
        self.repos[repo_id] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}

    def create_branch(self, repo_id: str, branch: str, body: dict) -> tuple[int, dict]:
        repo = self._repo(repo_id)
        if branch in repo.branches:
            return 409, {"error": f"Branch {branch} already exists"}
        repo.branches[branch] = self._rev(repo, body.get("startingPoint") or "main")
        return 200, {}

    def commit(self, repo_id: str, revision: str, lines: list[dict]) -> dict:
        self.commit_requests += 1
        if self.commit_requests in self.fail_commits:
            raise HubError(500, f"Injected failure of commit request #{self.commit_requests}")
        repo = self._repo(repo_id)
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        head = repo.branches[revision]
        files = copy.copy(repo.commits[head])
        summary = ""
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "header":
                summary = value["summary"]
                parent = value.get("parentCommit")
                if parent is not None and parent != head:
                    raise HubError(412, f"Parent commit {parent} is not the head {head} of {revision}")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            else:  # lfsFile, copy operations: upload modes this hub never hands out
                raise HubError(422, f"The loopback hub does not support `{key}` commit operations")
        oid = self._new_oid(repo_id)
        repo.commits[oid] = files
        repo.branches[revision] = oid
        repo.log.append((oid, summary))
        return {"commitUrl": f"{self.url}/{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None}

    # ---- read-only views -------------------------------------------------------------------------------------------
    def preupload(self, repo_id: str, revision: str, body: dict) -> dict:
        repo = self._repo(repo_id)
        files = repo.commits[self._rev(repo, revision)]
        out = []
        for f in body["files"]:
            existing = files.get(f["path"])
            oid = git_blob_id(existing) if existing is not None else None
            out.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        return {"files": out}

    def model_info(self, repo_id: str, revision: str) -> dict:
        repo = self._repo(repo_id)
        oid = self._rev(repo, revision)
        files = repo.commits[oid]
        card = _front_matter(files.get("README.md", b""))
        return {
            "id": repo_id,
            "modelId": repo_id,
            "sha": oid,
            "private": repo.private,
            "library_name": card.get("library_name"),
            "tags": list(card.get("tags") or []),
            "cardData": card or None,
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }

    def tree(self, repo_id: str, revision: str, path: str, recursive: bool) -> list[dict]:
        repo = self._repo(repo_id)
        files = repo.commits[self._rev(repo, revision)]
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        entries: dict[str, dict] = {}
        for name in sorted(files):
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        folder, {"type": "directory", "path": folder, "oid": git_blob_id(folder.encode())}
                    )
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries[name] = {
                    "type": "file",
                    "path": name,
                    "size": len(files[name]),
                    "oid": git_blob_id(files[name]),
                }
        if prefix and not entries:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
        return list(entries.values())

    def resolve_file(self, repo_id: str, revision: str, path: str) -> tuple[str, bytes]:
        repo = self._repo(repo_id)
        oid = self._rev(repo, revision)
        data = repo.commits[oid].get(path)
        if data is None:
            raise HubError(404, "Entry not found", "EntryNotFound")
        return oid, data


def _front_matter(readme: bytes) -> dict:
    text = readme.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    if len(parts) != 2:
        return {}
    return yaml.safe_load(parts[0][3:]) or {}


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackHub
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    # ---- plumbing --------------------------------------------------------------------------------------------------
    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, head_only: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(
            status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        hub = self.hub
        with hub._lock:
            hub.requests.append((method, split.path))
            hub.authorizations.add(self.headers.get("Authorization"))
        try:
            with hub._lock:
                handled = self._route(method, segments, query)
            if handled is None:
                with hub._lock:
                    hub.unhandled.append((method, self.path))
                self._json(404, {"error": f"Loopback hub: no route for {method} {split.path}"})
        except HubError as err:
            headers = {"X-Error-Code": err.code} if err.code else {}
            headers["X-Error-Message"] = err.message
            if method == "HEAD":
                self._send(err.status, b"", headers, head_only=True)
            else:
                self._json(err.status, {"error": err.message}, headers)

    def _route(self, method: str, seg: list[str], query: dict) -> bool | None:
        hub = self.hub
        if method == "POST" and seg == ["api", "repos", "create"]:
            status, payload = hub.create_repo(json.loads(self._body()))
            self._json(status, payload)
            return True
        if method == "POST" and seg == ["api", "validate-yaml"]:
            self._body()
            self._json(200, {"errors": [], "warnings": []})
            return True
        if len(seg) >= 4 and seg[:2] == ["api", "models"]:
            repo_id, rest = f"{seg[2]}/{seg[3]}", seg[4:]
            if method == "GET" and not rest:
                self._json(200, hub.model_info(repo_id, "main"))
            elif method == "GET" and len(rest) == 2 and rest[0] == "revision":
                self._json(200, hub.model_info(repo_id, rest[1]))
            elif method == "GET" and len(rest) >= 2 and rest[0] == "tree":
                recursive = query.get("recursive", "false").lower() == "true"
                self._json(200, hub.tree(repo_id, rest[1], "/".join(rest[2:]), recursive))
            elif method == "POST" and len(rest) == 2 and rest[0] == "preupload":
                if query.get("create_pr"):
                    raise HubError(400, "The loopback hub does not support pull requests")
                self._json(200, hub.preupload(repo_id, rest[1], json.loads(self._body())))
            elif method == "POST" and len(rest) == 2 and rest[0] == "commit":
                if query.get("create_pr"):
                    raise HubError(400, "The loopback hub does not support pull requests")
                lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
                self._json(200, hub.commit(repo_id, rest[1], lines))
            elif method == "POST" and len(rest) == 2 and rest[0] == "branch":
                status, payload = hub.create_branch(repo_id, rest[1], json.loads(self._body() or b"{}"))
                self._json(status, payload)
            else:
                return None
            return True
        if method in ("GET", "HEAD") and len(seg) >= 5 and seg[2] == "resolve":
            oid, data = hub.resolve_file(f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]))
            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": f'"{git_blob_id(data)}"',
                "X-Repo-Commit": oid,
            }
            self._send(200, data, headers, head_only=method == "HEAD")
            return True
        return None

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")


# ---- pointing huggingface_hub at the loopback hub ------------------------------------------------------------------
def point_client_at(hub: LoopbackHub, home, monkeypatch) -> list[str]:
    """Make ``huggingface_hub`` (and everything built on it) talk only to ``hub``, with a fresh cache under ``home``.

    ``HF_ENDPOINT`` / ``HF_HUB_OFFLINE`` / ``HF_HOME`` are read when ``huggingface_hub`` is imported, so the derived
    constants are patched (including the ``resolve`` URL template ``file_download`` copied at import). Every host
    other than 127.0.0.1 is refused at name resolution, so nothing can reach the internet, and the HTTP sessions
    ignore proxy variables. Returns the list that collects refused host names (tests assert it stays empty).
    Undone by ``monkeypatch``; the caller must call ``huggingface_hub.configure_http_backend()`` on teardown.
    """
    import socket

    import requests
    from huggingface_hub import configure_http_backend, constants, file_download
    from huggingface_hub.utils._http import UniqueRequestIdAdapter

    refused: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", b"127.0.0.1", b"localhost"):
            refused.append(str(host))
            raise OSError(f"test guard: refusing to resolve non-loopback host {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)

    def factory() -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxies for the loopback
        session.mount("http://", UniqueRequestIdAdapter())
        session.mount("https://", UniqueRequestIdAdapter())
        return session

    configure_http_backend(backend_factory=factory)
    return refused
