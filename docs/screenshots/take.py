"""Take the README's screenshots of ``dataengine serve`` on a build (Debian chromium via Playwright).

    python docs/screenshots/take.py build/demo [--out docs/screenshots]

PNGs are quantized to 256 colours (Pillow) to stay small.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.serve_helpers import serving  # noqa: E402
from tests.test_serve_browser import CHROMIUM, FLAGS  # noqa: E402


def save(png: bytes, path: Path) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--sample", help="sample id for the sample page (default: the first rejected one)")
    parser.add_argument(
        "--explore", default="asr.max_cer=0.25", help="BOUND=VALUE for the threshold explorer"
    )
    args = parser.parse_args()
    bound, _, value = args.explore.partition("=")
    with serving(args.build) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        with urllib.request.urlopen(f"{url}/api/samples?status=rejected&size=25") as response:
            sample = args.sample or json.load(response)["rows"][0]["id"]
        for name, path, full in (
            ("overview", "/", True),
            ("sample", f"/sample/{sample}", True),
            ("thresholds", f"/thresholds?{bound}={value}&focus={bound}", False),
        ):
            page.goto(url + path)
            page.wait_for_selector("body[data-ready]")
            page.wait_for_timeout(1500)
            save(page.screenshot(full_page=full), args.out / f"{name}.png")
        browser.close()
    if errors:
        raise SystemExit(f"console errors: {errors}")


if __name__ == "__main__":
    main()
