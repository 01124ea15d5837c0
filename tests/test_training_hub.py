"""``hf://datasets/ORG/NAME@REV`` sources, through huggingface_hub and webdataset's gopen, against a
real HTTP server on 127.0.0.1 that answers the three Hub routes they use (no Hub access here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dataengine.training.dataset import ShardStream
from training_fixtures import tiny_dir, tiny_tokenizer

REPO, REV = "org/speech-set", "v1.0.0"


def hub_server(files: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, body: bytes, kind: str = "application/json", status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == f"/api/datasets/{REPO}/revision/{REV}":
                self._send(
                    json.dumps(
                        {"id": REPO, "sha": "a" * 40, "siblings": [{"rfilename": f} for f in files]}
                    ).encode()
                )
            elif path.startswith(f"/api/datasets/{REPO}/tree/{REV}"):
                tree = [
                    {"type": "file", "path": f, "size": len(b), "oid": "b" * 40} for f, b in files.items()
                ]
                self._send(json.dumps(tree).encode())
            elif (
                path.startswith(f"/datasets/{REPO}/resolve/{REV}/") and path.split(f"/{REV}/", 1)[1] in files
            ):
                self._send(files[path.split(f"/{REV}/", 1)[1]], "application/octet-stream")
            else:
                self._send(b'{"error": "not found"}', status=404)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


READ_IDS = """
import sys
from dataengine.training.dataset import ShardStream
from dataengine.training.tokenizer import sound_llama3_tokenizer
tok = sound_llama3_tokenizer(sys.argv[2] + "/tokenizer.model", sys.argv[2] + "/special_tokens.json")
ds = ShardStream(sys.argv[1], tok, 256, packed=False, shuffle_buffer=1, shuffle_shards=False, epochs=1)
print(len(ds.shards), *[i for item in ds for i in item["sample_ids"]])
"""

RESOLVE = """
import json, sys
from dataengine.training.shards import ShardError, resolve_shards
try:
    print(json.dumps(resolve_shards(sys.argv[1])))
except ShardError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def test_hf_url_lists_and_streams_the_published_shards(small_build_dir: Path, tmp_path: Path) -> None:

    files = {f"shards/{p.name}": p.read_bytes() for p in sorted((small_build_dir / "shards").glob("*.tar"))}
    files["README.md"] = b"# card\n"
    server = hub_server(files)
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    try:
        remote = subprocess.run(
            [sys.executable, "-c", READ_IDS, f"hf://datasets/{REPO}@{REV}", str(tiny_dir())],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert remote.returncode == 0, remote.stderr[-2000:]
        tok = tiny_tokenizer()
        local = ShardStream(
            str(small_build_dir), tok, 256, packed=False, shuffle_buffer=1, shuffle_shards=False, epochs=1
        )
        assert remote.stdout.split() == ["3", *[i for item in local for i in item["sample_ids"]]]

        def resolve(url: str) -> object:
            # huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE at import, so resolve in a fresh process
            result = subprocess.run(
                [sys.executable, "-c", RESOLVE, url], capture_output=True, text=True, env=env, timeout=60
            )
            assert result.returncode == 0, result.stderr[-2000:]
            return json.loads(result.stdout)

        assert resolve(f"hf://datasets/{REPO}@{REV}") == [
            f"hf://datasets/{REPO}@{REV}/{f}" for f in files if f.endswith(".tar")
        ]
        missing = resolve(f"hf://datasets/{REPO}@v9.9.9")
        assert missing["error"].startswith(f"hf://datasets/{REPO}@v9.9.9: cannot list the dataset")
    finally:
        server.shutdown()
