"""Which files of a folder may be uploaded: ONE allow policy (`MODEL_TOP_LEVEL_PATTERNS`, `MODEL_NESTED_PATTERNS`,
never walking into `SKIPPED_DIRS`) minus ONE secrets deny-list (`SECRET_NAME_PATTERNS`), never "the whole output
folder": training folders hold checkpoints, optimizer states, soft targets and sometimes credentials. A symlink that
leaves the folder is refused, and so is an ONNX export that no longer matches its export report."""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from ..core.report import REPORT_FILENAME
from .http import HubPublishError

__all__ = [
    "DISTILL_CONFIG_FILENAME",
    "REPORT_FILENAME",
    "select_model_files",
    "select_space_files",
]

logger = logging.getLogger(__name__)

# `hf_distill.evaluation.disagreements.EXAMPLES_FILENAME` and `hf_distill.publishing.card.CARD_FILENAME`: spelled
# out, those packages sit above this one (tests/test_layout.py checks they agree).
EXAMPLES_FILENAME = "evaluation_examples.json"
CARD_FILENAME = "README.md"
# The Space app reads this file (and the variables below) to know which repos to load.
DISTILL_CONFIG_FILENAME = "distill_config.json"

# Tokenizer files legitimately contain "token" in their name; every other such file is treated as a secret.
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "tokenizer.model",
    }
)
# The allow policy. Top-level files of a saved student (transformers / PEFT / tokenizers) plus what the card
# step writes; nested files matching MODEL_NESTED_PATTERNS; directories in SKIPPED_DIRS are never walked.
MODEL_TOP_LEVEL_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "README.md",
    REPORT_FILENAME,
    EXAMPLES_FILENAME,
)
# onnx/: the exports `hf-distill export` writes beside the weights (the layout transformers.js and optimum load),
# with a large graph's external data; each is checked against its export report before it is selected.
MODEL_NESTED_PATTERNS = (
    "*.png",
    "additional_chat_templates/*.jinja",
    "onnx/*.onnx",
    "onnx/*.onnx.data",
    "onnx/*.onnx_data",
    "onnx/ort_config.json",
    "onnx/export_report.json",
)
# Pickled weights are refused (arbitrary code on load); these names tell the user why nothing was pushed.
PICKLE_WEIGHT_PATTERNS = ("pytorch_model*.bin", "adapter_model.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
# Trainer state files are pickles too, but not weights: they do not explain a refusal.
TRAINING_STATE = ("optimizer*", "scheduler*", "rng_state*", "training_args*")
# Directories never walked into, for the model folder and the app folder.
SKIPPED_DIRS = (
    "checkpoint-*",
    "soft_targets*",
    "runs",
    "wandb",
    "__pycache__",
    ".cache",
    ".git",
    ".huggingface",
    ".ssh",
    ".gradio",
    "flagged",
    ".venv",
    "venv",
    "node_modules",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
)
# The secrets deny-list: no file or directory with such a name is ever uploaded (TOKENIZER_FILES excepted).
SECRET_NAME_PATTERNS = (
    ".env",
    ".env.*",
    "*.env",
    ".git-credentials",
    ".netrc",
    ".pypirc",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "stored_tokens",
    "*token*",
)
# `delete_stale=True` removes remote files of these kinds that this push does not re-upload (old shards,
# an old pickle, a chart that no longer exists) but leaves unrelated files such as notebooks alone.
STALE_PATTERNS = [
    *MODEL_TOP_LEVEL_PATTERNS,
    *MODEL_NESTED_PATTERNS,
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
    "adapter_model.bin",
    "training_args.bin",
]


# ----------------------------------------------------------------------------------------------- selection


def _match_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _is_secret_name(name: str) -> bool:
    if name in TOKENIZER_FILES:
        return False
    return _match_any(name.lower(), SECRET_NAME_PATTERNS)


def _walk_files(root: Path) -> Iterator[str]:
    """Relative POSIX paths of the files under `root`, skipping cache/checkpoint/secret directories."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _match_any(d, SKIPPED_DIRS) and not _is_secret_name(d))
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield (rel_dir / name).as_posix()


def select_model_files(output_dir: str | os.PathLike[str]) -> list[str]:
    """List the files `push_to_hub` uploads from `output_dir` (sorted relative paths).

    Args:
        output_dir: the student's folder.

    Raises:
        HubPublishError: the folder has no `*.safetensors` weights (pickled weights alone are refused), no
            `config.json` / `adapter_config.json`, a link leading out of it, or ONNX files that do not match their
            export check or the weights (`hf_distill.export.verify_export`).
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise HubPublishError(f"Nothing to publish: {root} is not a directory.")
    selected: list[str] = []
    top_level_pickles: list[str] = []
    for rel in _walk_files(root):
        name = PurePosixPath(rel).name
        if _is_secret_name(name):
            continue
        top_level = "/" not in rel
        if top_level and _match_any(name, PICKLE_WEIGHT_PATTERNS) and not _match_any(name, TRAINING_STATE):
            top_level_pickles.append(rel)
        if (top_level and _match_any(name, MODEL_TOP_LEVEL_PATTERNS)) or _match_any(rel, MODEL_NESTED_PATTERNS):
            selected.append(rel)
    if not any(f.endswith(".safetensors") and "/" not in f for f in selected):
        if top_level_pickles:
            raise HubPublishError(
                f"Refusing to publish {root}: it holds only pickled weights ({', '.join(top_level_pickles)}), "
                "which run arbitrary code when loaded. Save the student with `save_pretrained(...)` "
                "(safetensors is the default) and push again."
            )
        raise HubPublishError(f"Refusing to publish {root}: no `*.safetensors` weights found at its top level.")
    if not {"config.json", "adapter_config.json"} & set(selected):
        raise HubPublishError(
            f"Refusing to publish {root}: no config.json (or adapter_config.json), so the weights could not be loaded."
        )
    _refuse_links_leaving(root, selected)
    if any(rel.startswith("onnx/") for rel in selected):
        from ..export.onnx import OnnxExportError, verify_export

        try:  # a truncated, altered or stale export is not published as the student's variant
            verify_export(root)
        except OnnxExportError as err:
            raise HubPublishError(
                f"Refusing to publish {root}: {err} (nothing was uploaded).", files=selected
            ) from None
    if "README.md" not in selected:
        logger.warning("%s has no README.md: the model will be published without its card.", root)
    return selected


def _refuse_links_leaving(root: Path, files: Sequence[str]) -> None:
    """Refuse a selected file that is (or sits under) a symlink resolving outside `root`: the upload would
    publish whatever the link points at (a private vocabulary, a key), not a file of the folder."""
    base = root.resolve()
    for rel in files:
        target = (root / rel).resolve()
        if not target.is_relative_to(base):
            raise HubPublishError(
                f"Refusing to publish {root}: {rel} is a symbolic link to {target}, outside the folder. "
                "Replace the link with a copy of the file (if it is meant to be public) and push again; "
                "nothing was uploaded.",
                files=files,
            )


def select_space_files(app_dir: str | os.PathLike[str]) -> list[str]:
    """List the app files `push_space` uploads from `app_dir` (without README.md and the generated config).

    Caches, virtual environments, pickles, `.gitattributes` and anything that looks like a credential are left out.

    Args:
        app_dir: the Space app's folder.

    Raises:
        HubPublishError: the folder has no app.py, or a selected file is a link leading out of it.
    """
    root = Path(app_dir)
    if not (root / "app.py").is_file():
        raise HubPublishError(f"Cannot push the Space: {root} has no app.py.")
    selected = []
    for rel in _walk_files(root):
        name = PurePosixPath(rel).name
        if _is_secret_name(name) or _match_any(name, ("*.pyc", "*.pyo", ".DS_Store", *PICKLE_WEIGHT_PATTERNS)):
            continue
        if rel in ("README.md", DISTILL_CONFIG_FILENAME, ".gitattributes", REPORT_FILENAME):
            continue  # regenerated for the Space, or owned by the Hub
        selected.append(rel)
    _refuse_links_leaving(root, selected)
    return selected
