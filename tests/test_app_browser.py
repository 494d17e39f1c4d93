"""End to end: the app served on loopback, driven in Debian's Chromium through Python playwright."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests import tiny
from tests.test_app import SAMPLE_REPORT, launch, load_app_module

pytestmark = pytest.mark.slow  # a real browser: seconds per page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT_MS = 30_000  # bound on every wait; the tiny models answer in well under a second
NO_PENDING = "() => document.querySelectorAll('.pending').length === 0"
SENTENCE = "the movie was wonderful and the actors were great"


def ink(png: bytes) -> int:
    """Pixels of a screenshot that differ from its most common colour (the background): what was drawn on it."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    counts = image.getcolors(maxcolors=image.width * image.height)
    return image.width * image.height - max(counts)[0]


def expected_agreement(teacher_dir: Path, student_dir: Path) -> str:
    """The agreement line the app must show for SENTENCE, from the two models run here."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tops = []
    for folder in (teacher_dir, student_dir):
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        with torch.no_grad():
            logits = model(**AutoTokenizer.from_pretrained(folder)(SENTENCE, return_tensors="pt")).logits
        tops.append(model.config.id2label[int(logits.argmax(-1))])
    t_top, s_top = tops
    return (
        f"Agree: both predict {t_top}"
        if t_top == s_top
        else f"Disagree: teacher predicts {t_top}, student predicts {s_top}"
    )


@pytest.fixture(scope="module")
def urls(tmp_path_factory, tiny_bert_cls_dir, tiny_bert_cls_student_dir, tiny_gpt2_dir, tiny_gpt2_student_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        app = load_app_module("spaces_app_browser")
        demos = {
            "classification": app.build_demo(tiny_bert_cls_dir, tiny_bert_cls_student_dir, report=SAMPLE_REPORT),
            "generation": app.build_demo(tiny_gpt2_dir, tiny_gpt2_student_dir, report={}),
        }
        try:
            yield {task: launch(demo) for task, demo in demos.items()}
        finally:
            for demo in demos.values():
                demo.close()


@pytest.fixture(scope="module")
def browser():
    # CI installs chromium: a missing browser is a broken environment, not a reason to skip.
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(WAIT_MS)
    offsite: list[str] = []

    def only_loopback(route):
        # The page must work offline: anything not served by the app itself is refused and recorded.
        if urlparse(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    context.offsite = offsite
    try:
        yield context
    finally:
        context.close()


def _run_and_wait(page, button: str, done_js: str) -> None:
    page.locator(button).click()
    page.wait_for_function(done_js, timeout=WAIT_MS)
    page.wait_for_function(NO_PENDING, timeout=WAIT_MS)


def test_browser_classification_then_generation(urls, context, tiny_bert_cls_dir, tiny_bert_cls_student_dir):
    errors: list[str] = []

    # -- classification, first browser tab
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(urls["classification"], wait_until="domcontentloaded")
    assert "96.7% retained" in page.locator("#report-table").inner_text()
    page.locator("#cls-input textarea").fill(SENTENCE)
    assert page.locator("#cls-agreement").inner_text().strip() == ""  # nothing to show before the run
    _run_and_wait(
        page,
        "#cls-run",
        "() => ['#teacher-stats', '#student-stats'].every(s => document.querySelector(s).innerText.includes('ms'))",
    )
    for who in ("teacher", "student"):
        label = page.locator(f"#{who}-label").inner_text()
        assert "positive" in label and "negative" in label and "%" in label
        stats = page.locator(f"#{who}-stats").inner_text()
        assert "Latency" in stats and "median of 5 runs" in stats
    agreement = page.locator("#cls-agreement")
    assert agreement.inner_text().strip() == expected_agreement(tiny_bert_cls_dir, tiny_bert_cls_student_dir)
    # what the screenshot shows: the agreement line is drawn (text pixels, not an empty box)
    assert agreement.is_visible() and ink(agreement.screenshot()) > 500

    # -- generation, second browser tab
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(urls["generation"], wait_until="domcontentloaded")
    page.locator("#gen-input textarea").fill("once upon a time there lived a king")
    blank = {who: page.locator(f"#{who}-text textarea").screenshot() for who in ("teacher", "student")}
    _run_and_wait(
        page,
        "#gen-run",
        "() => ['#teacher-stats', '#student-stats'].every(s => document.querySelector(s).innerText.includes('done'))",
    )
    for who in ("teacher", "student"):
        stats = page.locator(f"#{who}-stats").inner_text()
        assert "Time to first token" in stats and "tokens/s" in stats and "new tokens" in stats
        box = page.locator(f"#{who}-text textarea")
        assert box.is_visible() and box.input_value().strip()  # a continuation was streamed into the box
        assert ink(box.screenshot()) > ink(blank[who]) + 500  # and is drawn in it

    assert errors == []
    assert context.offsite == []


def test_browser_example_click_runs_both_models(urls, context):
    page = context.new_page()
    page.goto(urls["classification"], wait_until="domcontentloaded")
    page.locator("button", has_text="The plot was dull").first.click()
    page.wait_for_function(
        "() => ['#teacher-stats', '#student-stats'].every(s => document.querySelector(s).innerText.includes('ms'))",
        timeout=WAIT_MS,
    )
    page.wait_for_function(NO_PENDING, timeout=WAIT_MS)
    assert page.locator("#cls-input textarea").input_value().startswith("The plot was dull")
    for who in ("teacher", "student"):
        assert "%" in page.locator(f"#{who}-label").inner_text()
    assert context.offsite == []


# ------------------------------------------------------------------------- the showcase: ONNX, examples, your data
THREE_ANSWERED = (
    "() => ['#teacher-stats', '#student-stats', '#onnx-stats']"
    ".every(s => document.querySelector(s) && document.querySelector(s).innerText.includes('ms'))"
)


@pytest.fixture(scope="module")
def showcase_url(tmp_path_factory, tiny_bert_cls_dir, exported_cls_student_dir):
    """The tiny pair whose student has ONNX exports and its evaluation beside it: nothing but the two folders."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        app = load_app_module("spaces_app_showcase")
        demo = app.build_demo(tiny_bert_cls_dir, exported_cls_student_dir, latency_runs=3)
        try:
            yield launch(demo)
        finally:
            demo.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where the screenshots go: $HF_DISTILL_SCREENSHOTS when set (to look at them), else the test's tmp dir."""
    folder = Path(os.environ.get("HF_DISTILL_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page_1400(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _open(page, url: str) -> list[str]:
    """Load the app in `page`; returns the list its script errors are recorded in."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="domcontentloaded")
    return errors


def _in_first_screen(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900


def test_browser_three_columns_answer_one_input_in_the_first_screen(showcase_url, page_1400, shots):
    page = page_1400
    errors = _open(page, showcase_url)
    page.locator("#cls-input textarea").fill("the movie was wonderful and the actors were great")
    _run_and_wait(page, "#cls-run", THREE_ANSWERED)
    for who in ("teacher", "student", "onnx"):
        label = page.locator(f"#{who}-label").inner_text()
        assert "positive" in label and "negative" in label and "%" in label
        assert "median of 3 runs" in page.locator(f"#{who}-stats").inner_text()
    assert "model_quantized.onnx" in page.inner_text("body")
    # the input and every answer are in view without scrolling (the report table follows)
    assert page.evaluate("() => window.scrollY") == 0
    for selector in ("#cls-input", "#teacher-label", "#student-label", "#onnx-label", "#onnx-stats"):
        assert _in_first_screen(page, selector), selector
    page.screenshot(path=str(shots / "showcase-three-columns.png"))
    assert errors == []


def test_browser_examples_table_click_fills_the_input_and_runs_all_models(
    showcase_url, page_1400, shots, exported_cls_student_dir
):
    page = page_1400
    page.goto(showcase_url, wait_until="domcontentloaded")
    table = page.locator("#examples-table")
    table.scroll_into_view_if_needed()
    texts = [r["text"] for r in json.loads((exported_cls_student_dir / "evaluation_examples.json").read_text())["rows"]]
    assert texts and texts[0] in table.inner_text()
    page.screenshot(path=str(shots / "showcase-examples-table.png"), full_page=True)
    table.locator('[data-testid="cell-1-5"]').click()  # the second row's text cell
    page.wait_for_function(THREE_ANSWERED, timeout=WAIT_MS)
    page.wait_for_function(NO_PENDING, timeout=WAIT_MS)
    assert page.locator("#cls-input textarea").input_value() == texts[1]
    for who in ("teacher", "student", "onnx"):
        assert "%" in page.locator(f"#{who}-label").inner_text()
    assert _in_first_screen(page, "#cls-input")  # scrolled back up to the answers
    page.screenshot(path=str(shots / "showcase-example-clicked.png"))


def test_browser_upload_of_a_labelled_csv_gives_accuracy_and_a_download(showcase_url, page_1400, shots, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("review,label\n" + "".join(f'"{t}",{"positive" if y else "negative"}\n' for t, y in tiny.SENTIMENT))
    page = page_1400
    page.goto(showcase_url, wait_until="domcontentloaded")
    page.locator("#upload-file input[type=file]").set_input_files(str(data))
    page.wait_for_function("() => document.querySelector('#upload-status').innerText.includes('columns')")
    _run_and_wait(page, "#upload-run", "() => document.querySelector('#upload-status').innerText.includes('Accuracy')")
    status = page.locator("#upload-status").inner_text()
    assert f"{len(tiny.SENTIMENT)} rows" in status and "teacher" in status and "student" in status
    link = page.locator("#upload-download a").first
    csv_text = page.request.get(link.get_attribute("href")).text()
    assert csv_text.splitlines()[0].startswith("text,label,teacher") and len(csv_text.splitlines()) == 9
    page.locator("#upload-section").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "showcase-upload.png"), full_page=True)


def test_browser_a_bad_file_shows_one_line(showcase_url, page_1400, shots, tmp_path):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"text,label\ncaf\xe9,positive\n")
    page = page_1400
    errors = _open(page, showcase_url)
    page.locator("#upload-file input[type=file]").set_input_files(str(bad))
    page.wait_for_function("() => document.querySelector('#upload-status').innerText.includes('Could not use')")
    status = page.locator("#upload-status").inner_text().strip()
    assert status == "Could not use this file: latin1.csv is not UTF-8 text: save it as UTF-8"
    body = page.inner_text("body")
    assert "Traceback" not in body and "Error" not in body
    page.locator("#upload-section").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "showcase-bad-file.png"))
    assert errors == []


@pytest.fixture(scope="module")
def lm_showcase_url(tmp_path_factory, tiny_gpt2_dir, exported_gpt2_student_dir):
    """The tiny GPT-2 pair whose student has ONNX exports (the float32 file named: it matches PyTorch)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        app = load_app_module("spaces_app_lm_showcase")
        demo = app.build_demo(tiny_gpt2_dir, exported_gpt2_student_dir, report={}, onnx="onnx/model.onnx")
        try:
            yield launch(demo)
        finally:
            demo.close()


def test_browser_a_causal_lm_streams_through_its_export_in_a_third_column(lm_showcase_url, page_1400, shots):
    page = page_1400
    errors = _open(page, lm_showcase_url)
    page.locator("#gen-input textarea").fill("once upon a time there lived a king")
    _run_and_wait(
        page,
        "#gen-run",
        "() => ['#teacher-stats', '#student-stats', '#onnx-stats']"
        ".every(s => document.querySelector(s).innerText.includes('done'))",
    )
    student = page.locator("#student-text textarea").input_value()
    assert student.strip() and page.locator("#onnx-text textarea").input_value() == student  # greedy: the same
    assert "Time to first token" in page.locator("#onnx-stats").inner_text()
    for selector in ("#gen-input", "#teacher-text", "#student-text", "#onnx-text", "#onnx-stats"):
        assert _in_first_screen(page, selector), selector
    page.screenshot(path=str(shots / "showcase-lm-three-columns.png"))
    assert errors == []
