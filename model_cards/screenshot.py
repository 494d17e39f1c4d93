"""The app on a real pair, in a browser: what model_cards/ shows of the Space.

    python model_cards/screenshot.py --teacher runs/sst2-minilm/teacher --student runs/sst2-minilm/student \
        --output model_cards/minilm-l4-sst2-app.png

Run from a checkout with the test extra installed. Starts `hf-distill demo` on the two folders (loopback), opens
it in Debian's Chromium at 1400 x 900 as the browser tests do, and checks that on the first screen, without
scrolling, the input box and every model's answer are in view after a run. Then it clicks the first row of the
"Where they disagree" table (every disagreement comes first), waits for all the models' answers, saves that screen
and prints what the page shows.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: the browser tests' settings
from tests.test_app_browser import CHROMIUM, CHROMIUM_ARGS, NO_PENDING, THREE_ANSWERED  # noqa: E402

WIDTH, HEIGHT = 1400, 900
ANSWERS = ("#cls-input", "#teacher-label", "#student-label", "#onnx-label", "#teacher-stats", "#onnx-stats")
FIRST_SENTENCE = "A charming, beautifully acted film that I would happily watch again."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_served(url: str, demo: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise SystemExit(f"hf-distill demo exited with {demo.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def _in_first_screen(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= HEIGHT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, type=Path)
    parser.add_argument("--student", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path, help="the PNG to write")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the demo to serve")
    args = parser.parse_args(argv)
    examples = json.loads((args.student / "evaluation_examples.json").read_text(encoding="utf-8"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    command = ["hf-distill", "demo", "--teacher", str(args.teacher), "--student", str(args.student)]
    demo = subprocess.Popen([*command, "--port", str(port)], env=env)
    try:
        _wait_until_served(url, demo, args.timeout)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
            page.set_default_timeout(120_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="domcontentloaded")
            # 1. a typed sentence: the input and all the answers are on the first screen, nothing scrolled
            page.locator("#cls-input textarea").fill(FIRST_SENTENCE)
            page.locator("#cls-run").click()
            page.wait_for_function(THREE_ANSWERED)
            page.wait_for_function(NO_PENDING)
            outside = [s for s in ANSWERS if not _in_first_screen(page, s)]
            scrolled = page.evaluate("() => window.scrollY")
            print(f"first screen {WIDTH}x{HEIGHT}: scrollY {scrolled}, outside it: {outside or 'nothing'}")
            # 2. the first disagreement, clicked in the table: it fills the input and runs all the models
            table = page.locator("#examples-table")
            table.scroll_into_view_if_needed()
            table.locator('[data-testid="cell-0-5"]').click()
            page.wait_for_function(
                "(text) => document.querySelector('#cls-input textarea').value === text",
                arg=examples["rows"][0]["text"],
            )
            page.wait_for_function(NO_PENDING)
            page.wait_for_function(THREE_ANSWERED)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.output))
            print("clicked row:", json.dumps({k: v for k, v in examples["rows"][0].items() if k != "divergence"}))
            for selector in ("#cls-agreement", "#teacher-label", "#student-label", "#onnx-label"):
                print(selector, "|", " ".join(page.locator(selector).inner_text().split()))
            for selector in ("#teacher-stats", "#student-stats", "#onnx-stats"):
                print(selector, "|", page.locator(selector).inner_text().strip())
            print(f"in the first screen after the click: {[s for s in ANSWERS if _in_first_screen(page, s)]}")
            print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes); page errors: {errors or 'none'}")
            browser.close()
        return 0 if not outside and scrolled == 0 and not errors else 1
    finally:
        demo.terminate()
        demo.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
