"""The validation pass of `hf-distill run` (``--check``, and automatically before every run): everything that can be
known to be wrong before hours of work, reported all at once, one line per problem with its fix."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .data import RunData, to_label_ids
from .models import layer_count
from .run_state import RunState
from .tasks import get_task

# A Hub id is "name" or "owner/name"; anything else (./x, /abs, a/b/c, ~/x) can only be a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class PreflightError(ValueError):
    """The run's configuration has problems; `problems` holds one line each."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        head = f"{len(problems)} problem(s) in {source or 'the run configuration'} (nothing was run):"
        super().__init__("\n".join([head] + [f"  - {p}" for p in problems]))


def looks_like_local_path(value: str) -> bool:
    """Whether `value` can only be a local path (it exists, or it is not of the Hub id form ``owner/name``)."""
    return os.path.exists(value) or not _HUB_ID.match(value)


def _model_config(source: str, what: str, revision: str | None, problems: list[str]) -> Any:
    """The config of a local model folder or Hub id, or None with a problem recorded."""
    from transformers import AutoConfig

    if looks_like_local_path(source):
        path = Path(source).expanduser()
        if not path.exists():
            problems.append(f"{what} {source!r} does not exist (a local path): check the path")
            return None
        if not (path / "config.json").is_file():
            problems.append(f"{what} {source!r} is not a model folder (no config.json in it)")
            return None
        try:
            return AutoConfig.from_pretrained(path)
        except Exception as err:  # noqa: BLE001 - any reason the config cannot be read is the one problem
            problems.append(f"{what} {source!r}: its config.json cannot be read ({_first_line(err)})")
            return None
    try:
        validate_repo_id(source)
    except HFValidationError as err:
        problems.append(f"{what} {source!r} is neither a local folder nor a valid Hub id: {_first_line(err)}")
        return None
    try:
        return AutoConfig.from_pretrained(source, revision=revision)
    except Exception as err:  # noqa: BLE001
        problems.append(f"{what} {source!r} is not a local folder and could not be resolved on the Hub "
                        f"(offline, private, or misspelt?): {_first_line(err)}")
        return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _check_repo_id(value: str | None, field: str, problems: list[str]) -> None:
    if value is None:
        return
    try:
        validate_repo_id(value)
        if "/" not in value:
            raise HFValidationError("it needs a namespace")
    except HFValidationError as err:
        problems.append(f"{field}={value!r} is not a Hub repo id of the form owner/name: {_first_line(err)}")


def _check_writable(output_dir: str, problems: list[str]) -> None:
    path = Path(output_dir).absolute()
    if path.exists() and not path.is_dir():
        problems.append(f"output_dir {output_dir} is a file, not a folder")
        return
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        problems.append(f"output_dir {output_dir} cannot be created: {existing} is a file, not a folder")
        return
    try:  # a real write, not os.access: that says yes to root and on read-only mounts
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        problems.append(f"output_dir {output_dir}: no write permission in {existing} ({err.strerror})")


def check_run(
    args: Any, config: Any, *, data: RunData | None = None, settings: dict[str, Any] | None = None
) -> list[str]:
    """Every problem of a run configuration that is knowable before the first stage, one line each.

    Args:
        args: `PipelineArguments`.
        config: `DistillationConfig`.
        data: the run's data (loaded here when not loaded yet); a new `RunData` when None.
        settings: the run's settings with its data fingerprint, compared with those of finished stages.

    Returns:
        The problems; empty when the run may start.
    """
    problems: list[str] = []
    data = data or RunData(args, seed=config.seed)
    state = RunState(config.output_dir)
    classification = get_task(args.task).has_class_labels

    # The teacher (as it will be loaded by the next stage) and its size.
    teacher_cfg: Any = None
    if state.done("teacher") and (state.root / "teacher" / "config.json").is_file():
        teacher_cfg = _model_config(str(state.root / "teacher"), "teacher", None, problems)
    elif args.teacher_from_scratch:
        try:
            spec = json.loads(args.teacher_config)
            if not isinstance(spec, dict) or "model_type" not in spec:
                raise ValueError("it needs a model_type")
            teacher_cfg = spec
        except (ValueError, TypeError) as err:
            problems.append(f"teacher_config is not a JSON object with model_type and sizes ({_first_line(err)}), "
                            'e.g. {"model_type": "gpt2", "n_layer": 4}')
    else:
        teacher_cfg = _model_config(args.teacher, "teacher", config.teacher_revision, problems)
    if args.student:
        _model_config(args.student, "student", None, problems)
    elif args.student_layers is not None and teacher_cfg is not None:
        blocks = layer_count(teacher_cfg)
        if blocks is not None and not 1 <= args.student_layers <= blocks:
            problems.append(f"student_layers={args.student_layers} is out of range: the teacher has {blocks} blocks, "
                            f"choose 1..{blocks}")
    if args.tokenizer and looks_like_local_path(args.tokenizer) and not os.path.exists(args.tokenizer):
        problems.append(f"tokenizer {args.tokenizer!r} does not exist (a local path): check the path")
    if args.top_k is not None and classification:
        problems.append("top_k applies to token tasks (causal-lm, masked-lm); remove it for sequence-classification")
    problems += _on_policy_problems(args, config, teacher_cfg)
    if getattr(args, "export_onnx", False):
        missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            problems.append(f"export_onnx needs {', '.join(missing)}: pip install 'hf-distill[onnx]' "
                            "(or set export_onnx: false)")

    # The data: readable, columns, labels.
    try:
        data.splits()
        data.text_column()
        val = data.validation()
        if val is not None and data.text_column() not in val.column_names:
            problems.append(f"validation data has no text column {data.text_column()!r} (it has {val.column_names})")
    except Exception as err:  # noqa: BLE001 - a data problem is reported, whatever its kind
        problems.append(_first_line(err))
    else:
        if classification:
            problems += _label_problems(args, data, teacher_cfg if state.done("teacher") else None)

    # Publishing and the folder.
    if config.push_to_hub and not config.hub_model_id:
        problems.append("push_to_hub needs hub_model_id (e.g. your-name/my-distilled-model)")
    _check_repo_id(config.hub_model_id, "hub_model_id", problems)
    _check_repo_id(args.hub_space_id, "hub_space_id", problems)
    _check_writable(config.output_dir, problems)
    if args.overwrite:
        problems += state.would_delete(run_inputs(args))
    else:
        problems += state.check(settings or {}, overwrite=False)
    return problems


def _on_policy_problems(args: Any, config: Any, teacher_cfg: Any) -> list[str]:
    """On-policy / sequence-level distillation: a causal LM, the live teacher, prompts, room for the completions."""
    prompt_tokens = getattr(args, "prompt_tokens", None)
    generates = bool(getattr(config, "generates", False))
    if not generates and prompt_tokens is None:
        return []
    task = get_task(args.task)
    mode = "lmbda > 0 (on-policy)" if getattr(config, "lmbda", 0) > 0 else "seq_kd" if generates else "prompt_tokens"
    if not (task.per_token and task.shift):
        return [f"{mode} applies to causal-lm (the student generates text); remove lmbda/seq_kd/prompt_tokens for {task}"]
    problems = []
    if args.use_soft_targets:
        problems.append(f"{mode} trains on prompt-completion rows (completions generated during training when lmbda "
                        "> 0 or seq_kd) scored by the live teacher; cached soft targets cannot serve them: set "
                        "use_soft_targets: false")
    if generates and prompt_tokens is None:
        problems.append(f"{mode} needs prompts: set prompt_tokens: N (the first N tokens of each training text are "
                        "the prompt the completions are generated from)")
    if generates and prompt_tokens is not None and teacher_cfg is not None:
        get = teacher_cfg.get if isinstance(teacher_cfg, dict) else lambda k: getattr(teacher_cfg, k, None)
        positions = get("n_positions") or get("max_position_embeddings")
        if isinstance(positions, int) and prompt_tokens + config.max_new_tokens > positions:
            problems.append(f"prompt_tokens={prompt_tokens} + max_new_tokens={config.max_new_tokens} exceed the "
                            f"teacher's {positions} positions: lower one of them")
    return problems


def _label_problems(args: Any, data: RunData, saved_teacher_cfg: Any) -> list[str]:
    problems: list[str] = []
    col = args.label_column
    try:
        names = data.label_names()
    except ValueError as err:
        return [f"training data: {err}"]
    if saved_teacher_cfg is not None:
        names = list(saved_teacher_cfg.id2label.values())
    labelled, _ = data.training_rows()
    if not any(v is not None and v != -1 and v != "-1" and v != "" for v in labelled[col]):
        problems.append(f"the training rows have no labels (column {col!r} is empty or -1 in all "
                        f"{len(labelled)} labelled rows): label some rows, or raise num_labelled")
    val = data.validation()
    if val is not None:
        if col not in val.column_names:
            problems.append(f"validation data has no label column {col!r} (it has {val.column_names})")
        else:
            try:
                to_label_ids(val.select_columns([col]), col, names)
            except ValueError as err:
                problems.append(f"validation data: {_first_line(err)}: the model has classes {names}")
    return problems


def run_inputs(args: Any) -> dict[str, str | None]:
    """The local paths a run reads (protected from `--overwrite`)."""
    return {"teacher": args.teacher, "student": args.student, "tokenizer": args.tokenizer,
            "train_file": args.train_file, "validation_file": args.validation_file, "dataset": args.dataset}
