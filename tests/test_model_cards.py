"""model_cards/: the gallery of the examples' published cards, made by `hf-distill card` from the reports of real runs.

Each card is rendered again from its committed report, by the command the gallery's index (model_cards/README.md)
records for it, and must equal the committed card, chart, report and evaluation examples byte for byte: the gallery
and the card template never drift apart. (The chart is compared too: matplotlib's Agg PNG holds no date, so the same
report gives the same bytes with the same matplotlib; a matplotlib upgrade that redraws it fails here, and the fix
is to run the recorded card command again.)
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from hf_distill.cli.main import build_parser
from hf_distill.cli.main import main as cli_main

REPO = Path(__file__).resolve().parents[1]
GALLERY = REPO / "model_cards"
INDEX = GALLERY / "README.md"
CARD_FILES = ("README.md", "distillation_chart.png", "distillation_report.json", "evaluation_examples.json")
MAX_FILE_BYTES = 300_000  # cards, charts, reports, a screenshot: never weights
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".onnx_data", ".data", ".gguf", ".h5", ".msgpack")
# What a published file must never show: this machine's (or any) absolute home, work or temporary folders.
LOCAL_PATH = re.compile(r"(?<![\w.-])(?:/work/|/tmp/|/home/|/root/|/Users/|~/|[A-Za-z]:\\\\)")


def card_commands(index: str) -> dict[str, list[str]]:
    """The `hf-distill card` command of each gallery folder as the index records it: {folder name: arguments}."""
    commands = {}
    for line in index.splitlines():
        line = line.strip().strip("`")
        if line.startswith("hf-distill card "):
            argv = shlex.split(line)[1:]
            commands[Path(argv[argv.index("--output") + 1]).name] = argv
    return commands


def render_again(argv: list[str], report_dir: Path, output: Path) -> None:
    """Run a recorded card command with its report read from `report_dir` and its files written to `output`."""
    argv = list(argv)
    argv[argv.index("--report") + 1] = str(report_dir)
    argv[argv.index("--output") + 1] = str(output)
    assert cli_main(argv) == 0, f"hf-distill {shlex.join(argv)} failed"


def drifted(argv: list[str], folder: Path, tmp_path: Path) -> list[str]:
    """The files of a gallery folder that its card command, run again on its committed report, writes otherwise."""
    out = tmp_path / f"{folder.name}-again"
    render_again(argv, folder, out)
    return [name for name in CARD_FILES if (out / name).read_bytes() != (folder / name).read_bytes()]


def _cards() -> list[Path]:
    return sorted(p for p in GALLERY.iterdir() if p.is_dir()) if GALLERY.is_dir() else []


def test_the_gallery_lists_every_card_with_the_commands_that_made_it():
    index = INDEX.read_text(encoding="utf-8")
    commands = card_commands(index)
    # every example's run and card command are recorded, whether or not its card is committed yet
    assert "hf-distill run examples/sst2_minilm.yaml" in index and "hf-distill run examples/grimm_gpt2.yaml" in index
    assert {"minilm-l4-sst2", "grimm-gpt2-2l"} <= set(commands)
    for argv in commands.values():  # each is a valid `hf-distill card` command line, for repo ids
        args = build_parser().parse_args(argv)
        assert args.command == "card" and args.repo_id and args.teacher_repo_id and args.license
    for folder in _cards():
        assert folder.name in commands, f"model_cards/README.md records no `hf-distill card` command for {folder.name}"
        missing = [n for n in CARD_FILES if not (folder / n).is_file()]
        assert not missing, f"{folder.name} lacks {missing}"
        argv = commands[folder.name]
        assert argv[argv.index("--repo-id") + 1] in (folder / "README.md").read_text(encoding="utf-8")
        assert f"[{folder.name}]({folder.name}/README.md)" in index  # a line of the gallery's table


@pytest.mark.parametrize("folder", _cards(), ids=lambda p: p.name)
def test_every_card_renders_again_from_its_committed_report(folder, tmp_path):
    argv = card_commands(INDEX.read_text(encoding="utf-8"))[folder.name]
    changed = drifted(argv, folder, tmp_path)
    assert not changed, (
        f"model_cards/{folder.name}: {changed} differ from what `hf-distill {shlex.join(argv)}` writes from the "
        "committed report (the template or the code changed): run that command with --report and --output "
        f"model_cards/{folder.name} and commit the result"
    )


def test_the_gallery_is_small_and_names_repo_ids_never_local_paths():
    files = [p for p in GALLERY.rglob("*") if p.is_file()]
    assert files
    for path in files:
        rel = path.relative_to(REPO)
        assert path.stat().st_size <= MAX_FILE_BYTES, f"{rel} is {path.stat().st_size:,} bytes"
        assert not path.name.endswith(WEIGHT_SUFFIXES), f"{rel}: no weights in the gallery"
        if path.suffix in (".md", ".json"):
            text = path.read_text(encoding="utf-8")
            hit = LOCAL_PATH.search(text)
            assert hit is None, f"{rel} shows a local path: {text[max(0, hit.start() - 40) : hit.end() + 40]!r}"
    for folder in _cards():
        report = json.loads((folder / "distillation_report.json").read_text(encoding="utf-8"))
        for who in ("teacher", "student"):
            name = report[who]["name_or_path"]
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", name), f"{folder.name}: the {who} is {name!r}, not a repo id"


def test_a_card_that_drifted_from_its_report_is_caught(tmp_path, tiny_bert_cls_dir, exported_cls_student_dir):
    """The check above can fail: a committed card whose report changed no longer equals its re-rendering."""
    argv = ["card", "--report", "x", "--output", "x", "--repo-id", "hf-distill/tiny-student"]
    argv += ["--teacher-repo-id", "hf-distill/tiny-teacher", "--license", "mit"]
    source = tmp_path / "run"  # the tiny pair's evaluation, with the settings a run records for the card
    source.mkdir()
    shutil.copy(exported_cls_student_dir / "evaluation_examples.json", source)
    report = json.loads((exported_cls_student_dir / "distillation_report.json").read_text())
    report["distillation"].update(loss_type="forward_kl", temperature=2.0, alpha=0.5, layers_kept=[0, 2], steps=10)
    report["distillation"]["dataset"] = str(tmp_path / "data" / "train.tsv")
    report["training"]["train_seconds"] = 12.5
    (source / "distillation_report.json").write_text(json.dumps(report))
    folder = tmp_path / "tiny"
    render_again(argv, source, folder)
    assert str(tmp_path) not in (folder / "distillation_report.json").read_text()
    assert drifted(argv, folder, tmp_path) == []  # rendered from its own report: the same bytes
    assert json.loads((folder / "distillation_report.json").read_text())["student"]["name_or_path"] == (
        "hf-distill/tiny-student"
    )
    card = (folder / "README.md").read_text()
    assert "## Teacher vs student" in card
    # a card edited by hand, or a template changed since the card was committed
    (folder / "README.md").write_text(card.replace("## Teacher vs student", "## Teacher versus student"))
    assert drifted(argv, folder, tmp_path) == ["README.md"]
