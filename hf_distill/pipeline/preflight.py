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

from ..core.data import RunData, to_label_ids
from ..core.loading import layer_count, max_positions
from ..core.tasks import get_task
from ..errors import HfDistillError
from .run_state import RunState

# A Hub id is "name" or "owner/name"; anything else (./x, /abs, a/b/c, ~/x) can only be a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class PreflightError(HfDistillError, ValueError):
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
        problems.append(
            f"{what} {source!r} is not a local folder and could not be resolved on the Hub "
            f"(offline, private, or misspelt?): {_first_line(err)}"
        )
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
            teacher_cfg = _config_from_spec(spec, problems)
        except (ValueError, TypeError) as err:
            problems.append(
                f"teacher_config is not a JSON object with model_type and sizes ({_first_line(err)}), "
                'e.g. {"model_type": "gpt2", "n_layer": 4}'
            )
    else:
        teacher_cfg = _model_config(args.teacher, "teacher", config.teacher_revision, problems)
    student_cfg = _model_config(args.student, "student", None, problems) if args.student else None
    if not args.student and args.student_layers is not None and teacher_cfg is not None:
        blocks = layer_count(teacher_cfg)
        if blocks is not None and not 1 <= args.student_layers <= blocks:
            problems.append(
                f"student_layers={args.student_layers} is out of range: the teacher has {blocks} blocks, "
                f"choose 1..{blocks}"
            )
    if teacher_cfg is not None:
        problems += _architecture_problems(args, teacher_cfg)
    problems += _soft_targets_problems(args, teacher_cfg, state)
    if args.tokenizer and looks_like_local_path(args.tokenizer) and not os.path.exists(args.tokenizer):
        problems.append(f"tokenizer {args.tokenizer!r} does not exist (a local path): check the path")
    if getattr(args, "chat_template", None):
        from .models import read_chat_template

        try:  # the teacher stage reads it too; a missing file is knowable now, before anything trains
            read_chat_template(args.chat_template)
        except FileNotFoundError as err:
            problems.append(str(err))
    if args.top_k is not None and classification:
        problems.append("top_k applies to token tasks (causal-lm, masked-lm); remove it for sequence-classification")
    try:
        fmt = data.lm_format(data.student_train())  # the rows the student trains on
    except Exception:  # noqa: BLE001 - reported with the data's problems below
        fmt = None
    problems += _on_policy_problems(args, config, teacher_cfg, data_has_prompts=fmt is not None and fmt.has_prompts)
    problems += _student_train_problems(args, config, data)
    if getattr(args, "export_onnx", False):
        missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            problems.append(
                f"export_onnx needs {', '.join(missing)}: pip install 'hf-distill[onnx]' (or set export_onnx: false)"
            )

    # The data: readable, columns, labels.
    try:
        data.splits()
        fmt = data.lm_format()
        if fmt is None or fmt.kind == "text":
            data.text_column()
            val = data.validation()
            if val is not None and data.text_column() not in val.column_names:
                problems.append(
                    f"validation data has no text column {data.text_column()!r} (it has {val.column_names})"
                )
        else:
            problems += _lm_format_problems(args, config, fmt)
            val = data.validation()
            if val is not None:
                from ..core.lm_data import check_lm_format

                try:
                    check_lm_format(data.lm_format(val), config, split="the validation data")
                except ValueError as err:
                    problems.append(str(err))
    except Exception as err:  # noqa: BLE001 - a data problem is reported, whatever its kind
        problems.append(_first_line(err))
    else:
        if classification:
            problems += _label_problems(args, data, teacher_cfg if state.done("teacher") else None)
        # What needs the teacher's tokenizer; a tokenizer trained in the teacher stage is checked there.
        tokenizer = _teacher_tokenizer(args, config, state) if teacher_cfg is not None else None
        if tokenizer is not None:
            problems += model_problems(args, data, teacher_cfg, tokenizer, student_cfg=student_cfg)

    # Publishing and the folder.
    if config.push_to_hub and not config.hub_model_id:
        problems.append("push_to_hub needs hub_model_id (e.g. your-name/my-distilled-model)")
    _check_repo_id(config.hub_model_id, "hub_model_id", problems)
    _check_repo_id(args.hub_space_id, "hub_space_id", problems)
    # Shared soft targets (hf_distill.shared_targets).
    if args.push_soft_targets and not config.push_to_hub:
        problems.append("push_soft_targets publishes in the push stage: set push_to_hub: true (and hub_model_id)")
    if args.push_soft_targets and args.soft_targets:
        problems.append("push_soft_targets with soft_targets: these targets are published already; drop one of them")
    if args.soft_targets and getattr(args, "selection_size", None) is not None:
        # the published rows are not this run's training split: the held-out rows could be among them
        problems.append(
            "selection_size with soft_targets: the student trains on the published rows, which may hold "
            "the rows selection_size holds out of this run's data; drop one of them"
        )
    _check_repo_id(args.soft_targets_repo_id, "soft_targets_repo_id", problems)
    if args.soft_targets and not Path(args.soft_targets).is_dir():
        _check_repo_id(args.soft_targets, "soft_targets (not a local folder, so a Hub dataset id)", problems)
    if config.push_to_hub and not problems and not state.done("push"):
        from ..hub.http import write_access_problems

        problems += write_access_problems(publish_targets(args, config))
    _check_writable(config.output_dir, problems)
    if args.overwrite:
        problems += state.would_delete(run_inputs(args))
    else:
        problems += state.check(settings or {}, overwrite=False)
    return problems


def publish_targets(args: Any, config: Any) -> list[tuple[str, str]]:
    """The (repo id, repo type) pairs the push stage writes: the model, its Space, its soft-target dataset."""
    repos = [(config.hub_model_id, "model")]
    if args.hub_space_id:
        repos.append((args.hub_space_id, "space"))
    if pushed_targets_repo_id(args, config):
        repos.append((pushed_targets_repo_id(args, config), "dataset"))
    return repos


def pushed_targets_repo_id(args: Any, config: Any) -> str | None:
    """The dataset repo push_soft_targets publishes this run's soft targets to (default <hub_model_id>-soft-targets)."""
    if not args.push_soft_targets or args.soft_targets or not config.hub_model_id:
        return None
    return args.soft_targets_repo_id or f"{config.hub_model_id}-soft-targets"


def _config_from_spec(spec: dict[str, Any], problems: list[str]) -> Any:
    """A from-scratch teacher's `teacher_config` as a transformers config (sizes as given), or None with a problem."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    values = dict(spec)
    model_type = values.pop("model_type")
    if model_type not in CONFIG_MAPPING:
        problems.append(f"teacher_config: model_type {model_type!r} is not a transformers model type: {_families()}")
        return None
    try:
        return AutoConfig.for_model(model_type, **values)
    except Exception as err:  # noqa: BLE001 - whatever the config class rejects is the one problem
        problems.append(f"teacher_config: {model_type!r} rejects these settings ({_first_line(err)})")
        return None


def _families() -> str:
    """What `hf-distill run` can build a student from: the rows of hf_distill.students.LAYOUTS, in words."""
    from ..students.blocks import SUPPORTED

    return f"the run builds its student from {SUPPORTED}; choose one of those"


def _architecture_problems(args: Any, teacher_cfg: Any) -> list[str]:
    """The teacher's architecture: a model of the task exists for it and, without `student:`, its blocks can be
    copied (and its FFN pruned to `student_intermediate_size`). Built on the meta device: no memory, no weights."""
    import torch

    from ..students.blocks import ffn_width, find_blocks

    task = get_task(args.task)
    where = "teacher_config" if args.teacher_from_scratch else f"teacher {args.teacher!r}"
    if type(teacher_cfg) not in task.auto_class._model_mapping:
        return [
            f"{where}: a {teacher_cfg.model_type!r} model has no {task.name} class in transformers "
            f"({task.auto_class.__name__}): {_families()}"
        ]
    if args.student:
        return []
    try:
        with torch.device("meta"):
            model = task.auto_class.from_config(teacher_cfg)
        find_blocks(model)
    except Exception as err:  # noqa: BLE001 - an architecture the students module cannot cut
        return [
            f"{where}: a student cannot be built from a {teacher_cfg.model_type!r} teacher "
            f"({_first_line(err).split(':')[0]}): {_families()}, or give a student: of your own"
        ]
    size = args.student_intermediate_size
    if size is not None:
        try:
            width = ffn_width(model)
        except ValueError as err:
            return [f"student_intermediate_size: {_first_line(err)}"]
        if size > width:
            return [
                f"student_intermediate_size={size} is larger than the teacher's FFN ({width} neurons per block): "
                f"width pruning keeps a subset of them, choose 1..{width}"
            ]
    return []


def _has_task_head(model_cfg: Any, task: Any) -> bool | None:
    """Whether a checkpoint's config names the task's model class (so its head is trained); None when unknown."""
    expected = task.auto_class._model_mapping.get(type(model_cfg), None) if model_cfg is not None else None
    architectures = getattr(model_cfg, "architectures", None)
    if expected is None or not architectures:
        return None
    return expected.__name__ in architectures


def _soft_targets_problems(args: Any, teacher_cfg: Any, state: RunState) -> list[str]:
    """Published soft targets are verified against the weights of the teacher that made them; a teacher this run
    fine-tunes (or builds) gets new weights, so no published targets can ever match it: refused up front."""
    if not args.soft_targets or state.done("teacher"):
        return []
    rule = (
        "published soft targets serve only the teacher whose weights made them, and this run would give the "
        "teacher new weights: set teacher: to the teacher that made them with train_teacher: no, or drop "
        "soft_targets (the run then caches this teacher's own)"
    )
    if args.teacher_from_scratch:
        return [f"soft_targets with teacher_from_scratch: {rule}"]
    if args.train_teacher == "yes":
        return [f"soft_targets with train_teacher: yes: {rule}"]
    if args.train_teacher == "auto" and _has_task_head(teacher_cfg, get_task(args.task)) is False:
        return [
            f"soft_targets with train_teacher: auto and a teacher without a trained "
            f"{get_task(args.task).auto_class._model_mapping[type(teacher_cfg)].__name__} head (auto fine-tunes "
            f"it): {rule}"
        ]
    return []


def _teacher_tokenizer(args: Any, config: Any, state: RunState) -> Any:
    """The tokenizer the run will give teacher and student, when it exists before the teacher stage; else None."""
    from transformers import AutoTokenizer

    if state.done("teacher") and (state.root / "teacher").is_dir():
        source, revision = str(state.root / "teacher"), None
    elif args.tokenizer:
        source, revision = args.tokenizer, None
    elif args.teacher_from_scratch:
        return None  # trained on the corpus by the teacher stage, which checks it (`model_problems`)
    else:
        source, revision = args.teacher, config.teacher_revision
    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, trust_remote_code=config.trust_remote_code)
    except Exception:  # noqa: BLE001 - the teacher stage reports an unloadable tokenizer with its own message
        return None


def model_problems(args: Any, data: RunData, teacher_cfg: Any, tokenizer: Any, *, student_cfg: Any = None) -> list[str]:
    """What needs the teacher's tokenizer: a given student's vocabulary and classes, and room for completions.

    Run by `check_run`, and by the teacher stage once a tokenizer trained there exists (a from-scratch teacher).

    Args:
        args: `PipelineArguments`.
        data: the run's data.
        teacher_cfg: the teacher's config.
        tokenizer: the teacher's tokenizer, which the run also gives the student.
        student_cfg: the config of `args.student` (loaded here when None).
    """
    problems: list[str] = []
    if args.student:
        problems += _student_problems(args, data, teacher_cfg, tokenizer, student_cfg)
    fmt = data.lm_format()
    if args.prompt_tokens is not None and (fmt is None or fmt.kind == "text"):  # else refused by _lm_format_problems
        problems += _prompt_problems(args, data, tokenizer)
    return problems


def _student_problems(args: Any, data: RunData, teacher_cfg: Any, tokenizer: Any, student_cfg: Any) -> list[str]:
    """A given student is trained and evaluated on the teacher's token ids: its vocabulary must be the teacher's
    (the comparison `DistillationTrainer` and `evaluate_pair` make), and a classification head needs the run's
    number of classes (transformers cannot load it with another)."""
    from transformers import AutoConfig, AutoTokenizer

    from ..students.compatibility import check_vocabularies

    task = get_task(args.task)
    try:
        student_cfg = student_cfg or AutoConfig.from_pretrained(args.student)
    except Exception:  # noqa: BLE001 - reported by check_run's own config check
        return []
    try:
        student_tokenizer = AutoTokenizer.from_pretrained(args.student)
    except Exception:  # noqa: BLE001 - a student folder without a tokenizer: only its embedding size can be compared
        student_tokenizer = None
    problems = []
    try:
        check_vocabularies(
            teacher_cfg, student_cfg, tokenizer, student_tokenizer, task=task, teacher_reads_student_ids=True
        )
    except ValueError as err:
        reason = str(err).split(":")[0]  # the comparison's finding; its advice is for the API, not for a run
        problems.append(
            f"student {args.student!r} does not share the teacher's vocabulary ({reason}): the run "
            "feeds it the teacher's token ids; give a student built on the teacher's tokenizer, or leave "
            "student: out to build one from the teacher"
        )
    else:
        rows = getattr(student_cfg, "vocab_size", None)
        if isinstance(rows, int) and len(tokenizer) > rows:
            problems.append(
                f"student {args.student!r} has {rows} embedding rows but the teacher's tokenizer "
                f"{len(tokenizer)} tokens: give a student built on the teacher's tokenizer"
            )
    if task.has_class_labels and _has_task_head(student_cfg, task):
        try:
            names = data.label_names()
        except ValueError:
            return problems  # reported with the data's problems
        if student_cfg.num_labels != len(names):
            problems.append(
                f"student {args.student!r} has a {student_cfg.num_labels}-class head but the run's data "
                f"has {len(names)} classes {names}: give a student with num_labels={len(names)}, or one "
                "without a classification head (a new one is then trained)"
            )
    return problems


def _prompt_problems(args: Any, data: RunData, tokenizer: Any) -> list[str]:
    """prompt_tokens leaves a completion only in texts longer than the prompt; with none, no row would remain."""
    column, longest = data.text_column(), 0
    for batch in data.train().select_columns([column]).iter(batch_size=256):
        texts = [t if isinstance(t, str) else "" for t in batch[column]]
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
        longest = max([longest, *lengths])
        if longest > args.prompt_tokens:
            return []
    return [
        f"prompt_tokens={args.prompt_tokens} is at least as long as every training text (the longest has "
        f"{longest} tokens with max_length={args.max_length}), so no text has a completion to learn: lower "
        f"prompt_tokens below {longest}"
    ]


def _lm_format_problems(args: Any, config: Any, fmt: Any) -> list[str]:
    """Causal-LM rows other than text (`hf_distill.lm_data`): what the run cannot do with them."""
    from ..core.lm_data import check_lm_format

    if fmt.kind == "tokenized":
        return [
            "the data holds input_ids: hf-distill run tokenizes itself; give text, prompt/completion, prompt-only "
            "or messages rows (or train with DistillationTrainer)"
        ]
    problems = []
    if args.use_soft_targets and not getattr(config, "generates", False):  # else reported by _on_policy_problems
        problems.append(
            f"{fmt} rows train on their completions, scored by the live teacher; cached soft targets are "
            "made from whole texts: set use_soft_targets: false"
        )
    if args.prompt_tokens is not None:
        problems.append(
            f"prompt_tokens splits plain texts into prompt and completion; these {fmt} rows have their "
            "prompts already: remove prompt_tokens"
        )
    try:
        check_lm_format(fmt, config)
    except ValueError as err:
        problems.append(str(err))
    if fmt.prompt_only and (args.train_teacher == "yes" or args.teacher_from_scratch):
        problems.append(
            "a teacher cannot be trained on prompt-only rows (no completions): give a trained teacher "
            "(train_teacher: no) or rows with completions"
        )
    templated = args.tokenizer or getattr(args, "chat_template", None)
    if fmt.conversational and args.teacher_from_scratch and not templated:
        problems.append(
            f"{fmt} rows are rendered with the tokenizer's chat template, and a tokenizer trained from "
            "scratch has none: set chat_template (or give `tokenizer`, one with a chat_template)"
        )
    return problems


def _student_train_problems(args: Any, config: Any, data: RunData) -> list[str]:
    """`student_train_file`: a causal LM's rows in a format the student can train on, rendered by the chat template
    the student's tokenizer will have."""
    path = getattr(args, "student_train_file", None)
    if not path:
        return []
    task = get_task(args.task)
    if not (task.per_token and task.shift):
        return [f"student_train_file applies to causal-lm; remove it for {task}"]
    if args.use_soft_targets:
        return [
            "student_train_file: the student's own rows are scored by the live teacher: set use_soft_targets: false"
        ]
    try:
        fmt = data.lm_format(data.student_train())
    except Exception as err:  # noqa: BLE001 - any unreadable file is one line
        return [f"student_train_file: {_first_line(err)}"]
    from ..core.lm_data import check_lm_format

    try:
        check_lm_format(fmt, config)
    except ValueError as err:
        return [f"student_train_file: {err}"]
    templated = args.tokenizer or getattr(args, "chat_template", None)
    if fmt.conversational and args.teacher_from_scratch and not templated:
        return [
            f"student_train_file: {fmt} rows are rendered with the tokenizer's chat template, and a tokenizer "
            "trained from scratch has none: set chat_template (or give `tokenizer`, one with a chat_template)"
        ]
    return []


def _on_policy_problems(args: Any, config: Any, teacher_cfg: Any, data_has_prompts: bool = False) -> list[str]:
    """On-policy / sequence-level distillation: a causal LM, the live teacher, prompts, room for the completions."""
    prompt_tokens = getattr(args, "prompt_tokens", None)
    generates = bool(getattr(config, "generates", False))
    if not generates and prompt_tokens is None:
        return []
    task = get_task(args.task)
    mode = "lmbda > 0 (on-policy)" if getattr(config, "lmbda", 0) > 0 else "seq_kd" if generates else "prompt_tokens"
    if not (task.per_token and task.shift):
        return [
            f"{mode} applies to causal-lm (the student generates text); remove lmbda/seq_kd/prompt_tokens for {task}"
        ]
    problems = []
    if args.use_soft_targets:
        problems.append(
            f"{mode} trains on prompt-completion rows (completions generated during training when lmbda "
            "> 0 or seq_kd) scored by the live teacher; cached soft targets cannot serve them: set "
            "use_soft_targets: false"
        )
    if generates and prompt_tokens is None and not data_has_prompts:
        problems.append(
            f"{mode} needs prompts: set prompt_tokens: N (the first N tokens of each training text are "
            "the prompt the completions are generated from)"
        )
    if generates and prompt_tokens is not None and teacher_cfg is not None:
        positions = max_positions(teacher_cfg)
        if positions is not None and prompt_tokens + config.max_new_tokens > positions:
            problems.append(
                f"prompt_tokens={prompt_tokens} + max_new_tokens={config.max_new_tokens} exceed the "
                f"teacher's {positions} positions: lower one of them"
            )
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
        problems.append(
            f"the training rows have no labels (column {col!r} is empty or -1 in all "
            f"{len(labelled)} labelled rows): label some rows, or raise num_labelled"
        )
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
    return {
        "teacher": args.teacher,
        "student": args.student,
        "tokenizer": args.tokenizer,
        "train_file": args.train_file,
        "validation_file": args.validation_file,
        "student_train_file": getattr(args, "student_train_file", None),
        "dataset": args.dataset,
    }
