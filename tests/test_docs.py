"""The docs cannot rot: their runnable code blocks run, their relative links resolve, the README stays a front door.

A fenced block whose info string is `python runnable` is executed on tiny models, in a fresh namespace holding the
prelude below, with a fresh temporary folder as the working directory; a `bash runnable` block is run by bash in
such a folder (its `hf-distill` is this checkout's CLI). `runnable hub` blocks talk to an in-process fake Hub
(tests/fake_hub.py) as the default endpoint, logged in as the user `you` through HF_TOKEN, so they read as a user
writes them (no endpoint or token arguments). Blocks that need real models, data or the real Hub stay untagged.
The prelude's names are listed in docs/index.md ("Runnable examples"); keep the two in step.
"""

from __future__ import annotations

import contextlib
import importlib
import linecache
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_hub import FakeHub, online_client

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", flags=re.M | re.S)
# Written by other work of the same issue (the model-card gallery, the architecture page): a link to exactly one of
# these is skipped while the file does not exist yet, and checked like any other once it does.
CREATED_ELSEWHERE = {REPO / "model_cards" / "README.md", REPO / "docs" / "architecture.md"}
README_MAX_LINES = 200
HUB_TOKEN = "hf_docs_write_token"


def runnable_blocks() -> list[tuple[str, str, str]]:
    """(info string, code, "page:line") for every fenced block tagged `runnable`, in page order."""
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            info = match.group(1).split()
            if "runnable" in info[1:]:
                line = text.count("\n", 0, match.start()) + 1
                blocks.append((" ".join(info), match.group(2), f"{page.relative_to(REPO)}:{line}"))
    return blocks


BLOCKS = runnable_blocks()


def prelude(folder: Path) -> dict:
    """The names a runnable block may use without defining them (documented in docs/index.md).

    - `teacher`, `tokenizer`: a tiny BERT sentiment classifier (4 blocks, 2 labels) and its WordPiece tokenizer,
      also saved together in `./my-finetuned-teacher`;
    - `texts`, `labels`: eight short sentences and their labels (0 negative, 1 positive);
    - `train_ds`, `eval_ds`: those sentences tokenized, with a `label` column (a `datasets.Dataset`);
    - `lm_teacher`, `lm_tokenizer`: a tiny GPT-2 causal LM (4 blocks) and its byte-level BPE tokenizer, also saved
      together in `./my-lm-teacher`;
    - `train.tsv`, `validation.tsv`: the sentences as data files (`sentence` and `label` columns; train holds them
      six times);
    - `lm_texts`: the 200 lines (ten sentences, repeated) its tokenizers were trained on: a small training text.
    """
    from datasets import Dataset

    from tests import tiny

    tokenizer = tiny.wordpiece_tokenizer(folder / "my-finetuned-teacher")
    teacher = tiny.bert_cls(tokenizer, num_layers=4, seed=0)
    teacher.save_pretrained(folder / "my-finetuned-teacher")
    texts = [t for t, _ in tiny.SENTIMENT]
    labels = [y for _, y in tiny.SENTIMENT]
    rows = "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT)
    (folder / "train.tsv").write_text("sentence\tlabel\n" + rows * 6)
    (folder / "validation.tsv").write_text("sentence\tlabel\n" + rows)
    train_ds = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"]
    )
    lm_tokenizer = tiny.bpe_tokenizer(folder / "my-lm-teacher")
    lm_teacher = tiny.gpt2(lm_tokenizer, num_layers=4, seed=1)
    lm_teacher.save_pretrained(folder / "my-lm-teacher")
    return {
        "teacher": teacher.eval(),
        "tokenizer": tokenizer,
        "texts": texts,
        "labels": labels,
        "train_ds": train_ds,
        "eval_ds": train_ds,
        "lm_teacher": lm_teacher.eval(),
        "lm_tokenizer": lm_tokenizer,
        "lm_texts": list(tiny.CORPUS),
    }


@contextlib.contextmanager
def fake_hub_as_default(monkeypatch, home: Path) -> Iterator[FakeHub]:
    """The fake Hub as huggingface_hub's default endpoint, with a write token for `you` in HF_TOKEN."""
    from huggingface_hub import constants

    with online_client(monkeypatch, home), FakeHub({HUB_TOKEN: ("you", "write")}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
        yield hub


def test_there_are_runnable_blocks():
    assert len(BLOCKS) >= 8, [where for _, _, where in BLOCKS]
    assert {info.split()[0] for info, _, _ in BLOCKS} <= {"python", "bash"}
    assert {word for info, _, _ in BLOCKS for word in info.split()[1:]} <= {"runnable", "hub"}


@pytest.mark.parametrize(("info", "code", "where"), BLOCKS, ids=[where for _, _, where in BLOCKS])
def test_runnable_block_runs(info, code, where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")  # accuracy/F1 from the metric modules shipped with hf_distill
    with contextlib.ExitStack() as stack:
        hub = None
        if "hub" in info.split():
            hub = stack.enter_context(fake_hub_as_default(monkeypatch, tmp_path / "hf_home"))
        run_block(info.split()[0], code, where, tmp_path, hub_url=hub and hub.url)


def run_block(language: str, code: str, where: str, tmp_path: Path, hub_url: str | None) -> None:
    if language == "bash":
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if hub_url:  # a new process reads the endpoint from the environment
            env["HF_ENDPOINT"] = hub_url
        prelude(tmp_path)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
        return
    namespace = {"__name__": "__docs__", **prelude(tmp_path)}
    linecache.cache[where] = (len(code), None, code.splitlines(keepends=True), where)  # tracebacks show the line
    exec(compile(code, where, "exec"), namespace)


def relative_links(page: Path) -> list[tuple[str, Path]]:
    """(target as written, resolved path) for every Markdown link on `page` that is not a URL or an anchor."""
    text = FENCE.sub("", page.read_text())  # code blocks hold no links, but may hold brackets and parentheses
    links = []
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        links.append((target, (page.parent / target.split("#")[0]).resolve()))
    return links


def test_relative_links_point_to_files_that_exist():
    broken = []
    for page in PAGES:
        for target, path in relative_links(page):
            if not path.exists() and path not in CREATED_ELSEWHERE:
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and the Hub) give a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_anchors_point_to_headings():
    broken = []
    for page in PAGES:
        for target, path in relative_links(page):
            if "#" not in target or not path.is_file():
                continue
            headings = re.findall(r"^#+ (.+)$", FENCE.sub("", path.read_text()), flags=re.M)
            if target.split("#", 1)[1] not in {github_anchor(h) for h in headings}:
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken


def test_links_to_the_other_pages_are_checked():
    # the link check reads real links: the README reaches every docs page, and docs/index.md does too
    pages = {p.resolve() for p in PAGES if p.parent.name == "docs"}
    for index in (REPO / "README.md", REPO / "docs" / "index.md"):
        linked = {path for _, path in relative_links(index)}
        assert pages - {index.resolve()} <= linked, sorted(p.name for p in pages - linked - {index.resolve()})


def mentioned_paths() -> set[str]:
    """Files of this repository that the pages name in code spans (`hf_distill/x.py`, `tests/...`, ...)."""
    pattern = r"`((?:hf_distill|tests|benchmarks|examples|spaces_app)/[\w./-]*\.(?:py|yaml|md))`"
    return {path for page in PAGES for path in re.findall(pattern, FENCE.sub("", page.read_text()))}


def mentioned_names() -> set[str]:
    """Dotted names the pages give in code spans, such as `hf_distill.students.blocks.LAYOUTS`."""
    names = set()
    for page in PAGES:
        for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", page.read_text())):
            names.update(re.findall(r"\bhf_distill(?:\.\w+)+", span))
    return names


def test_named_files_and_names_exist():
    # a page that names a module, test or benchmark keeps pointing at something real when code moves
    assert len(mentioned_paths()) > 10 and len(mentioned_names()) > 5
    missing = sorted(path for path in mentioned_paths() if not (REPO / path).exists())
    for name in sorted(mentioned_names()):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes below it
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr, None)
            if obj is None:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert not missing


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES
