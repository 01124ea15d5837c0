"""A small real HTTP server speaking the parts of the Hugging Face Hub API that ``huggingface_hub`` uses to
create a dataset repo, upload through LFS (``HF_HUB_DISABLE_XET=1``), commit, tag, list and download.

It stores commits, so a download returns exactly what was uploaded, and it checks every request it gets
(auth header, JSON/NDJSON shape, LFS hashes and sizes, parent commits): a wrong client request is answered
with an error the client raises, and is recorded in ``HubState.errors``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".tar", ".parquet", ".png", ".npy", ".flac", ".bin")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Entry:
    data: bytes
    lfs: bool

    def info(self, path: str) -> dict:
        out = {"type": "file", "path": path, "size": len(self.data), "oid": git_blob_sha1(self.data)}
        if self.lfs:
            out["lfs"] = {
                "oid": hashlib.sha256(self.data).hexdigest(),
                "size": len(self.data),
                "pointerSize": 134,
            }
        return out


@dataclass
class Repo:
    private: bool
    commits: dict[str, dict[str, Entry]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class HubState:
    token: str
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs: dict[str, bytes] = field(default_factory=dict)
    lfs_verified: set[str] = field(default_factory=set)
    log: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fail_commits: int = 0
    """Answer this many commit requests with HTTP 500 (after reading them): an interrupted push."""
    fail_tags: int = 0
    """Answer this many tag requests with HTTP 503: a push interrupted between its commit and its tag."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str, pattern: str) -> int:
        return sum(1 for m, p in self.log if m == method and re.search(pattern, p))


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise HttpError(400, f"bad request: {message}")


class Handler(BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict:
        try:
            data = json.loads(self._body() or b"null")
        except ValueError:
            raise HttpError(400, "bad request: body is not JSON") from None
        _require(isinstance(data, dict), "JSON body must be an object")
        return data

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, ctype: str = "application/json"
    ):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: object, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _auth(self, write: bool) -> None:
        header = self.headers.get("Authorization")
        if header is None:
            if write:
                raise HttpError(401, "Invalid username or password.")
            return
        if header != f"Bearer {self.state.token}":
            raise HttpError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_id: str, read: bool = True) -> Repo:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and read and self.headers.get("Authorization") is None):
            raise HttpError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, rev: str) -> tuple[str, dict[str, Entry]]:
        rev = unquote(rev)
        oid = repo.branches.get(rev) or repo.tags.get(rev) or (rev if rev in repo.commits else None)
        if oid is None:
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return oid, repo.commits[oid]

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        self.state.log.append((self.command, path))
        for method, pattern, handler in ROUTES:
            if method == self.command or (method == "GET" and self.command == "HEAD"):
                match = re.fullmatch(pattern, path)
                if match:
                    with self.state.lock:
                        return handler(self, query, *match.groups())
        raise HttpError(404, f"no route {self.command} {path}")

    def _handle(self) -> None:
        try:
            self._dispatch()
        except HttpError as exc:
            if exc.status == 400:
                self.state.errors.append(f"{self.command} {self.path}: {exc.message}")
            headers = {"X-Error-Code": exc.code, "X-Error-Message": exc.message} if exc.code else {}
            self._json({"error": exc.message}, exc.status, headers)

    do_GET = do_POST = do_PUT = do_HEAD = _handle

    # --- endpoints ------------------------------------------------------------------------
    def create_repo(self, query: dict) -> None:
        self._auth(write=True)
        body = self._json_body()
        _require(body.get("type") == "dataset", f"type must be 'dataset', got {body.get('type')!r}")
        _require(isinstance(body.get("name"), str) and body["name"], "name missing")
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        _require(re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id) is not None, f"bad repo id {repo_id!r}")
        url = f"{self.base}/datasets/{repo_id}"
        if repo_id in self.state.repos:
            # the real Hub also names the repo's URL in its 409 answer; the client reads it
            return self._json({"error": "You already created this dataset repo", "url": url}, 409)
        repo = Repo(private=body.get("visibility") == "private" or bool(body.get("private")))
        initial = hashlib.sha1(f"initial {repo_id}".encode()).hexdigest()
        repo.commits[initial] = {}
        repo.branches["main"] = initial
        self.state.repos[repo_id] = repo
        self._json({"url": url, "name": repo_id})

    def validate_yaml(self, query: dict) -> None:
        body = self._json_body()
        _require(body.get("repoType") == "dataset", "repoType must be 'dataset'")
        content = body.get("content")
        _require(isinstance(content, str) and content.startswith("---\n"), "README.md needs a YAML header")
        header = content.split("---\n", 2)[1]
        meta = yaml.safe_load(header)
        errors = []
        if not isinstance(meta, dict):
            errors.append({"message": "metadata must be a mapping"})
        else:
            for config in meta.get("configs", []):
                if not isinstance(config, dict) or "config_name" not in config or "data_files" not in config:
                    errors.append({"message": f"bad config {config!r}"})
        if errors:
            self.state.errors.append(f"validate-yaml: {errors}")
            return self._json({"errors": errors, "warnings": []}, 400)
        self._json({"errors": [], "warnings": []})

    def preupload(self, query: dict, repo_id: str, rev: str) -> None:
        self._auth(write=True)
        repo = self._repo(repo_id)
        _, tree = self._commit(repo, rev)
        files = self._json_body().get("files")
        _require(isinstance(files, list) and files, "files must be a non-empty list")
        answer = []
        for f in files:
            _require(isinstance(f.get("path"), str) and isinstance(f.get("size"), int), f"bad file {f!r}")
            sample = base64.b64decode(f.get("sample", ""), validate=True)
            _require(len(sample) <= 512, "sample longer than 512 bytes")
            lfs = f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10 * 1024 * 1024
            entry = tree.get(f["path"])
            oid = None
            if entry is not None:
                oid = hashlib.sha256(entry.data).hexdigest() if entry.lfs else git_blob_sha1(entry.data)
            answer.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._json({"files": answer, "commitOid": repo.branches.get("main")})

    def lfs_batch(self, query: dict, repo_id: str) -> None:
        self._auth(write=True)
        self._repo(repo_id)
        _require(self.headers.get("Accept") == "application/vnd.git-lfs+json", "LFS Accept header")
        body = self._json_body()
        _require(body.get("operation") == "upload", "operation must be upload")
        _require(body.get("hash_algo") == "sha256", "hash_algo must be sha256")
        _require("basic" in body.get("transfers", []), "transfers must offer basic")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            _require(isinstance(oid, str) and re.fullmatch(r"[0-9a-f]{64}", oid) is not None, "oid")
            _require(isinstance(size, int) and size > 0, "size")
            if oid in self.state.lfs and oid in self.state.lfs_verified:
                objects.append({"oid": oid, "size": size})  # already stored: nothing to send
            else:
                objects.append(
                    {
                        "oid": oid,
                        "size": size,
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{self.base}/lfs-upload/{oid}/{size}", "header": {}},
                            "verify": {"href": f"{self.base}/lfs-verify/{oid}", "header": {}},
                        },
                    }
                )
        self._json({"transfer": "basic", "objects": objects})

    def lfs_upload(self, query: dict, oid: str, size: str) -> None:
        data = self._body()
        _require(len(data) == int(size), f"uploaded {len(data)} bytes, announced {size}")
        _require(hashlib.sha256(data).hexdigest() == oid, "uploaded bytes do not hash to the oid")
        self.state.lfs[oid] = data
        self._send(200)

    def lfs_verify(self, query: dict, oid: str) -> None:
        self._auth(write=True)
        body = self._json_body()
        _require(body.get("oid") == oid and oid in self.state.lfs, "verify of an object never uploaded")
        _require(body.get("size") == len(self.state.lfs[oid]), "verify size differs")
        self.state.lfs_verified.add(oid)
        self._json({"success": True})

    def commit(self, query: dict, repo_id: str, rev: str) -> None:
        self._auth(write=True)
        repo = self._repo(repo_id)
        _require(self.headers.get("Content-Type") == "application/x-ndjson", "commit must be NDJSON")
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        _require(lines and lines[0].get("key") == "header", "first NDJSON line must be the header")
        header = lines[0]["value"]
        _require(isinstance(header.get("summary"), str) and header["summary"], "commit summary missing")
        rev = unquote(rev)
        _require(rev in repo.branches, f"commits go to a branch, not {rev!r}")
        parent = repo.branches[rev]
        if header.get("parentCommit") not in (None, parent):
            raise HttpError(412, "A commit has happened since. Please refresh and try again.")
        tree = dict(repo.commits[parent])
        for op in lines[1:]:
            key, value = op.get("key"), op.get("value", {})
            path = value.get("path", "")
            _require(isinstance(path, str) and path and not path.startswith("/") and ".." not in path, "path")
            if key == "file":
                _require(value.get("encoding") == "base64", "regular files are base64")
                tree[path] = Entry(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                _require(value.get("algo") == "sha256", "lfsFile algo")
                oid = value.get("oid")
                _require(oid in self.state.lfs_verified, f"lfsFile {path}: object {oid} was never uploaded")
                _require(value.get("size") == len(self.state.lfs[oid]), f"lfsFile {path}: size differs")
                tree[path] = Entry(self.state.lfs[oid], lfs=True)
            elif key == "deletedFile":
                _require(path in tree, f"deletedFile {path}: not in the tree")
                del tree[path]
            elif key == "deletedFolder":
                for p in [p for p in tree if p.startswith(path.rstrip("/") + "/")]:
                    del tree[p]
            else:
                raise HttpError(400, f"bad request: unknown operation {key!r}")
        if self.state.fail_commits > 0:
            self.state.fail_commits -= 1
            raise HttpError(500, "Internal Error - the commit was not recorded")
        listing = "".join(f"{p}\0{git_blob_sha1(e.data)}\n" for p, e in sorted(tree.items()))
        oid = hashlib.sha1(f"{parent}\n{header['summary']}\n{listing}".encode()).hexdigest()
        repo.commits[oid] = tree
        repo.branches[rev] = oid
        self._json(
            {"success": True, "commitOid": oid, "commitUrl": f"{self.base}/datasets/{repo_id}/commit/{oid}"}
        )

    def create_tag(self, query: dict, repo_id: str, rev: str) -> None:
        self._auth(write=True)
        repo = self._repo(repo_id)
        oid, _ = self._commit(repo, rev)
        body = self._json_body()
        tag = body.get("tag")
        _require(isinstance(tag, str) and re.fullmatch(r"[\w.-]+", tag) is not None, f"bad tag {tag!r}")
        if tag in repo.tags:
            raise HttpError(409, f"Tag {tag} already exists")
        if self.state.fail_tags > 0:
            self.state.fail_tags -= 1
            raise HttpError(503, "Service Unavailable")
        repo.tags[tag] = oid
        self._json({"success": True})

    def refs(self, query: dict, repo_id: str) -> None:
        self._auth(write=False)
        repo = self._repo(repo_id)

        def ref(kind: str, name: str, oid: str) -> dict:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

        self._json(
            {
                "branches": [ref("heads", n, o) for n, o in sorted(repo.branches.items())],
                "tags": [ref("tags", n, o) for n, o in sorted(repo.tags.items())],
                "converts": [],
                "pullRequests": [],
            }
        )

    def info(self, query: dict, repo_id: str, rev: str | None = None) -> None:
        self._auth(write=False)
        repo = self._repo(repo_id)
        oid, tree = self._commit(repo, rev or "main")
        self._json(
            {
                "id": repo_id,
                "sha": oid,
                "private": repo.private,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": "2026-11-26T00:00:00.000Z",
                "createdAt": "2026-11-26T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(tree)],
            }
        )

    def tree(self, query: dict, repo_id: str, rev: str, folder: str | None = None) -> None:
        self._auth(write=False)
        repo = self._repo(repo_id)
        _, tree = self._commit(repo, rev)
        folder = unquote(folder or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
        prefix = f"{folder}/" if folder else ""
        if folder and not any(p.startswith(prefix) for p in tree):
            raise HttpError(404, f"{folder} does not exist", "EntryNotFound")
        entries: dict[str, dict] = {}
        for path, entry in sorted(tree.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                sub = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(
                        sub, {"type": "directory", "path": sub, "oid": git_blob_sha1(sub.encode())}
                    )
            if recursive or len(parts) == 1:
                entries[path] = entry.info(path)
        self._json(list(entries.values()))

    def paths_info(self, query: dict, repo_id: str, rev: str) -> None:
        self._auth(write=False)
        repo = self._repo(repo_id)
        _, tree = self._commit(repo, rev)
        raw = self._body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(raw).get("paths", [])
        else:
            paths = parse_qs(raw).get("paths", [])
        _require(isinstance(paths, list), "paths must be a list")
        out = []
        for path in paths:
            path = path.strip("/")
            if path in tree:
                out.append(tree[path].info(path))
            elif any(p.startswith(path + "/") for p in tree) or path == "":
                out.append({"type": "directory", "path": path, "oid": git_blob_sha1(path.encode())})
        self._json(out)

    def resolve(self, query: dict, repo_id: str, rev: str, path: str) -> None:
        self._auth(write=False)
        repo = self._repo(repo_id)
        oid, tree = self._commit(repo, rev)
        path = unquote(path)
        entry = tree.get(path)
        if entry is None:
            raise HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        etag = hashlib.sha256(entry.data).hexdigest() if entry.lfs else git_blob_sha1(entry.data)
        headers = {"X-Repo-Commit": oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(entry.data))})
        data = entry.data
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "") or "")
        if match and self.command == "GET":
            start = int(match.group(1) or 0)
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start : end + 1], headers, "application/octet-stream")
        self._send(200, data, headers, "application/octet-stream")


_REPO = r"([\w.-]+/[\w.-]+)"
ROUTES = [
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("POST", rf"/api/datasets/{_REPO}/preupload/([^/]+)", Handler.preupload),
    ("POST", rf"/datasets/{_REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
    ("PUT", r"/lfs-upload/([0-9a-f]{64})/(\d+)", Handler.lfs_upload),
    ("POST", r"/lfs-verify/([0-9a-f]{64})", Handler.lfs_verify),
    ("POST", rf"/api/datasets/{_REPO}/commit/([^/]+)", Handler.commit),
    ("POST", rf"/api/datasets/{_REPO}/tag/([^/]+)", Handler.create_tag),
    ("GET", rf"/api/datasets/{_REPO}/refs", Handler.refs),
    ("GET", rf"/api/datasets/{_REPO}/revision/([^/]+)", Handler.info),
    ("GET", rf"/api/datasets/{_REPO}", Handler.info),
    ("GET", rf"/api/datasets/{_REPO}/tree/([^/]+)(?:/(.*))?", Handler.tree),
    ("POST", rf"/api/datasets/{_REPO}/paths-info/([^/]+)", Handler.paths_info),
    ("GET", rf"/datasets/{_REPO}/resolve/([^/]+)/(.+)", Handler.resolve),
]


class HubServer:
    """``with HubServer(token) as hub:`` serves on 127.0.0.1 at a random port; ``hub.url``, ``hub.state``."""

    def __init__(self, token: str) -> None:
        self.state = HubState(token=token)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
