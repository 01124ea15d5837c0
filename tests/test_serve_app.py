"""``dataengine serve`` over HTTP, as a real server on a real build: every endpoint answers what the
manifest and the shards hold, audio comes out of the tar by byte range, and nothing escapes the build
(path traversal, SQL in any parameter, other methods, other Host names)."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
import tarfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import soundfile as sf

from tests.serve_helpers import serving


@pytest.fixture(scope="module")
def server(rejecting_build_dir: Path) -> Iterator[str]:
    with serving(rejecting_build_dir) as url:
        yield url


def fetch(
    base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict, bytes]:
    """A raw request (the path is sent exactly as given, ``..`` and all)."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    con = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        con.request(method, path, headers=headers or {})
        response = con.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        con.close()


def get_json(base: str, path: str, **params: Any) -> tuple[int, Any]:
    query = urllib.parse.urlencode(params, doseq=True)
    status, _, body = fetch(base, f"{path}?{query}" if query else path)
    return status, json.loads(body)


def sql(build: Path, query: str, *args: Any) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW samples AS SELECT * FROM '{build / 'manifest' / 'samples.parquet'}'")
    con.execute(f"CREATE VIEW rejects AS SELECT * FROM '{build / 'manifest' / 'rejects.parquet'}'")
    return con.execute(query, list(args)).fetchall()


def member(tar_path: Path, name: str) -> bytes:
    with tarfile.open(tar_path) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def test_pages_and_the_overview(server: str, rejecting_build_dir: Path) -> None:
    for path in ("/", "/browse", "/thresholds", "/sample/anything", "/static/app.js", "/static/style.css"):
        status, headers, body = fetch(server, path)
        assert status == 200, path
        assert "default-src 'self'" in headers["content-security-policy"]
    status, o = get_json(server, "/api/overview")
    kept, rejected, with_audio, at_audio, short, measured = sql(
        rejecting_build_dir,
        "SELECT (SELECT count(*) FROM samples), count(*), count(shard), "
        "count(*) FILTER (stage = 'audio_filters'), count(*) FILTER (reason = 'too_short'), "
        "count(duration_s) FROM rejects",
    )[0]
    assert status == 200 and (o["kept"], o["rejected"]) == (kept, rejected) and short > 0
    assert o["rejected_with_audio"] == with_audio >= short  # TTS had spoken every too_short one
    audio = next(f for f in o["funnel"] if f["stage"] == "audio_filters")
    assert audio["dropped"] == at_audio and {"reason": "too_short", "n": short} in audio["reasons"]
    duration = next(x for x in o["histograms"] if x["metric"] == "duration_s")
    assert sum(duration["kept"]) == kept and sum(duration["rejected"]) == measured
    assert {b["path"] for b in duration["bounds"]} == {
        "audio_filters.min_duration_s",
        "audio_filters.max_duration_s",
    }


def test_browse_filters_sorts_and_pages_in_the_database(server: str, rejecting_build_dir: Path) -> None:
    status, page = get_json(
        server, "/api/samples", reason="too_short", sort="duration_s", order="desc", size=25
    )
    n = sql(rejecting_build_dir, "SELECT count(*) FROM rejects WHERE reason = 'too_short'")[0][0]
    assert status == 200 and page["total"] == n == len(page["rows"])
    durations = [r["duration_s"] for r in page["rows"]]
    assert durations == sorted(durations, reverse=True) and {r["status"] for r in page["rows"]} == {
        "rejected"
    }
    status, page = get_json(server, "/api/samples", range="duration_s:1.0:", status="kept", size=25)
    expected = sql(rejecting_build_dir, "SELECT count(*) FROM samples WHERE duration_s >= 1.0")[0][0]
    assert page["total"] == expected
    status, everything = get_json(server, "/api/samples", size=25)
    status, second = get_json(server, "/api/samples", size=25, page=1)
    assert everything["total"] == second["total"] and len(everything["rows"]) + len(second["rows"]) == min(
        everything["total"], 50
    )
    first_id = everything["rows"][0]["id"]
    status, found = get_json(server, "/api/samples", q=first_id[-6:].upper())
    assert first_id in [r["id"] for r in found["rows"]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": 'id"; DROP TABLE samples; --'}, "no column"),
        ({"sort": "prompt) FROM items; --"}, "no column"),
        ({"range": "duration_s); DELETE FROM samples; --:1:"}, "no metric"),
        ({"range": "duration_s:1 OR 1=1:"}, "not a number"),
        ({"page": "1; DROP"}, "whole number"),
        ({"size": "1000000"}, "page size"),
        ({"order": "desc; DROP"}, "asc or desc"),
    ],
)
def test_sql_in_a_parameter_is_refused(server: str, params: dict[str, str], message: str) -> None:
    status, body = get_json(server, "/api/samples", **params)
    assert status == 400 and message in body["error"]


def test_sql_in_a_value_is_only_a_value(server: str) -> None:
    for params in ({"task": "' OR '1'='1"}, {"reason": "x' OR 1=1 --"}, {"q": "%"}, {"q": "_"}):
        status, body = get_json(server, "/api/samples", **params)
        assert status == 200 and body["total"] == 0, params
    status, body = get_json(server, "/api/sample/" + urllib.parse.quote("' OR '1'='1"))
    assert status == 400 and "no sample" in body["error"]


def test_audio_comes_out_of_the_shard_by_byte_range(server: str, rejecting_build_dir: Path) -> None:
    (kid, shard, duration), *_ = sql(
        rejecting_build_dir, "SELECT id, shard, duration_s FROM samples ORDER BY index"
    )
    flac = member(rejecting_build_dir / "shards" / shard, f"{kid}.flac")
    status, headers, body = fetch(server, f"/audio/kept/{urllib.parse.quote(kid)}")
    assert status == 200 and body == flac and headers["content-type"] == "audio/flac"
    assert headers["accept-ranges"] == "bytes"
    audio, rate = sf.read(io.BytesIO(body))
    assert rate == 16000 and abs(len(audio) / rate - duration) < 1e-3
    status, headers, part = fetch(server, f"/audio/kept/{kid}", {"Range": "bytes=100-199"})
    assert (
        status == 206 and part == flac[100:200] and headers["content-range"] == f"bytes 100-199/{len(flac)}"
    )
    status, _, tail = fetch(server, f"/audio/kept/{kid}", {"Range": "bytes=-50"})
    assert status == 206 and tail == flac[-50:]
    status, headers, _ = fetch(server, f"/audio/kept/{kid}", {"Range": f"bytes={len(flac)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(flac)}"
    status, headers, head = fetch(server, f"/audio/kept/{kid}", method="HEAD")
    assert status == 200 and head == b"" and headers["content-length"] == str(len(flac))
    (rid, rshard, rduration), *_ = sql(
        rejecting_build_dir,
        "SELECT id, shard, duration_s FROM rejects WHERE shard IS NOT NULL ORDER BY index",
    )
    status, _, body = fetch(server, f"/audio/rejected/{rid}")
    assert status == 200 and body == member(rejecting_build_dir / "rejected" / rshard, f"{rid}.flac")
    assert abs(sf.info(io.BytesIO(body)).duration - rduration) < 1e-3
    status, _, png = fetch(server, f"/spectrogram/rejected/{rid}")
    assert status == 200 and png.startswith(b"\x89PNG\r\n\x1a\n")
    assert fetch(server, "/audio/kept/no-such-sample")[0] == 404
    assert fetch(server, f"/audio/rejected/{kid}")[0] == 404  # kept, so not among the rejects
    assert fetch(server, f"/audio/other/{kid}")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/../manifest/samples.parquet",
        "/static/..%2F..%2Fmanifest%2Fsamples.parquet",
        "/static/%2e%2e/%2e%2e/recipe.yaml",
        "/audio/kept/../../recipe.yaml",
        "/audio/kept/..%2F..%2Frecipe.yaml",
        "/audio/kept/%2Fetc%2Fpasswd",
        "/spectrogram/kept/..%2F..%2F..%2Fetc%2Fpasswd",
        "/manifest/samples.parquet",
        "/recipe.yaml",
    ],
)
def test_no_path_leaves_the_app(server: str, path: str) -> None:
    status, _, body = fetch(server, path)
    assert status in (400, 404) and b"PAR1" not in body and b"root:" not in body and b"seed" not in body


def test_read_only_and_loopback_names_only(server: str) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert fetch(server, "/api/overview", method=method)[0] == 405
    assert fetch(server, "/api/overview", {"Host": "attacker.example"})[0] == 400
    assert fetch(server, "/api/overview", {"Host": "localhost"})[0] == 200


def test_a_sample_page_has_its_text_metrics_and_bounds(server: str, rejecting_build_dir: Path) -> None:
    kid = sql(rejecting_build_dir, "SELECT id FROM samples ORDER BY index LIMIT 1")[0][0]
    status, d = get_json(server, f"/api/sample/{kid}")
    assert status == 200 and d["row"]["status"] == "kept" and d["has_audio"]
    turns = d["record"]["conversations"]
    assert any("<|sound_start|>" in t["content"] for t in turns)
    duration = next(m for m in d["metrics"] if m["metric"] == "duration_s")
    bound = next(b for b in duration["bounds"] if b["path"] == "audio_filters.min_duration_s")
    assert bound["fires"] is False and bound["limit"] > 0.4  # this build's raised bound, not the default
    rid, value = sql(rejecting_build_dir, "SELECT id, value FROM rejects WHERE reason = 'too_short' LIMIT 1")[
        0
    ]
    status, d = get_json(server, f"/api/sample/{rid}")
    assert d["row"]["status"] == "rejected" and d["row"]["reason"] == "too_short" and d["has_audio"]
    duration = next(m for m in d["metrics"] if m["metric"] == "duration_s")
    assert abs(duration["value"] - value) < 1e-4  # the manifest rounds metrics, not the reject value
    assert next(b for b in duration["bounds"] if b["path"] == "audio_filters.min_duration_s")["fires"] is True
    assert d["record"]["reason"] == "too_short"  # the json member of rejected/*.tar


def test_a_kept_sample_page_shows_no_bound_failing(server: str, rejecting_build_dir: Path) -> None:
    """Every bound a page marks as failing must fail in the stage too: a kept sample fails none. (The page
    once took the largest of a bound's metrics as its statistic, so the interior-silence bound, computed
    from four metrics, read duration_s and "failed" on every clip longer than 0.8 s.)"""
    for (kid,) in sql(rejecting_build_dir, "SELECT id FROM samples ORDER BY index LIMIT 4"):
        _, d = get_json(server, f"/api/sample/{kid}")
        bounds = [b for m in d["metrics"] for b in m["bounds"]]
        failing = [b["path"] for b in bounds if b["role"] == "bound" and b["fires"]]
        assert failing == [], (kid, failing)
        silence = next(m for m in d["metrics"] if m["metric"] == "silence_fraction")
        assert any(b["path"] == "audio_filters.max_silence_fraction" for b in silence["bounds"])


def test_explore_over_http(server: str, rejecting_build_dir: Path) -> None:
    median = sql(rejecting_build_dir, "SELECT quantile_disc(duration_s, 0.5) FROM samples")[0][0]
    status, r = get_json(
        server,
        "/api/explore",
        **{"audio_filters.min_duration_s": median, "focus": "audio_filters.min_duration_s"},
    )
    dropped = sql(rejecting_build_dir, "SELECT count(*) FROM samples WHERE duration_s < ?", median)[0][0]
    assert status == 200 and r["totals"]["dropped"] == dropped > 0
    near = r["nearest"]
    assert near["fires"] and near["holds"]
    assert all(x["statistic"] < median for x in near["fires"]) and all(
        x["statistic"] >= median for x in near["holds"]
    )
    assert "min_duration_s: " in r["yaml"]
    status, body = get_json(server, "/api/explore", **{"audio_filters.min_duration_s": "nan"})
    assert status == 400 and "finite" in body["error"]
    status, body = get_json(server, "/api/explore", **{"audio_filters.hf_cutoff_hz": "4000"})
    assert status == 400 and "no explorable bound" in body["error"]


def test_serve_refuses_what_is_not_a_build(tmp_path: Path, rejecting_build_dir: Path) -> None:
    cmd = [sys.executable, "-m", "dataengine.cli", "serve"]
    result = subprocess.run([*cmd, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a dataengine build" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    with serving(rejecting_build_dir) as url:
        port = url.rsplit(":", 1)[1]
        result = subprocess.run(
            [*cmd, str(rejecting_build_dir), "--port", port], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2 and "is in use" in result.stderr
