"""Build and load models: the teacher of a run (from a checkpoint or from scratch, with its tokenizer), the student
(a given checkpoint, or blocks copied from the teacher), and any saved model with its tokenizer and task
(`load_model`, used by evaluation, export and the pipeline's later stages)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .tasks import Task, detect_task, get_task


def auto_class(task: str):
    """The `AutoModelFor...` class of a pipeline task name."""
    from .tasks import AUTO_CLASSES

    return AUTO_CLASSES[task]


def label_config(names: list[str] | None) -> dict[str, Any]:
    """``num_labels`` / ``id2label`` / ``label2id`` keyword arguments for a classifier with these class names."""
    if names is None:
        return {}
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {n: i for i, n in enumerate(names)},
    }


def teacher_tokenizer(args: Any, config: Any, corpus: Iterable[str] | None = None) -> PreTrainedTokenizerBase:
    """The teacher's tokenizer: `args.tokenizer`, the teacher's own, or (from scratch) one trained on `corpus`.

    Args:
        args: `PipelineArguments`.
        config: `DistillationConfig` (teacher_revision, trust_remote_code).
        corpus: training texts, needed only for a from-scratch teacher without `args.tokenizer`.
    """
    if args.teacher_from_scratch and not args.tokenizer:
        from .tokenizer_training import train_bpe_tokenizer, train_wordpiece_tokenizer

        # Decoders get GPT-2's byte-level BPE, encoders BERT's WordPiece.
        train = train_bpe_tokenizer if get_task(args.task).generates else train_wordpiece_tokenizer
        tokenizer = train((t for t in corpus if t), args.tokenizer_vocab_size, model_max_length=args.max_length)
    else:
        tokenizer = AutoTokenizer.from_pretrained(
            args.tokenizer or args.teacher,
            revision=None if args.tokenizer else config.teacher_revision,
            trust_remote_code=config.trust_remote_code,
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    template = getattr(args, "chat_template", None)
    if template:
        tokenizer.chat_template = read_chat_template(template)
    return tokenizer


def read_chat_template(template: str) -> str:
    """`chat_template` as given: the text of a ``.jinja`` file, or the Jinja text itself."""
    if template.endswith(".jinja"):
        if not os.path.isfile(template):
            raise FileNotFoundError(f"chat_template file {template} not found: give a .jinja file or the template text")
        return Path(template).read_text(encoding="utf-8")
    return template


def build_teacher(
    args: Any, config: Any, tokenizer: PreTrainedTokenizerBase, names: list[str] | None
) -> tuple[PreTrainedModel, bool]:
    """The teacher before its (optional) fine-tuning, and whether it needs training (new head / from scratch).

    Args:
        args: `PipelineArguments` (teacher, teacher_from_scratch, teacher_config, task, train_teacher).
        config: `DistillationConfig` (teacher_revision, trust_remote_code).
        tokenizer: the teacher's tokenizer (a from-scratch teacher takes its vocabulary size and special ids).
        names: class names for classification, else None.
    """
    auto = auto_class(args.task)
    extra = label_config(names)
    if args.teacher_from_scratch:
        spec = json.loads(args.teacher_config)
        model_type = spec.pop("model_type")
        cfg = AutoConfig.for_model(
            model_type,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **spec,
            **extra,
        )
        return auto.from_config(cfg), True
    check_weights(args.teacher, "teacher")
    model, info = auto.from_pretrained(
        args.teacher,
        revision=config.teacher_revision,
        trust_remote_code=config.trust_remote_code,
        output_loading_info=True,
        **extra,
    )
    fresh_head = bool(info.get("missing_keys"))
    if fresh_head and args.train_teacher == "no":
        raise ValueError(
            f"the teacher {args.teacher} has newly initialised weights ({sorted(info['missing_keys'])[:4]}...): "
            "it is not trained for this task; set train_teacher: auto or yes"
        )
    return model, fresh_head


def damaged_weights(folder: str | os.PathLike) -> list[str]:
    """The safetensors files of a local model folder that safetensors cannot open, each with the reason.

    Opening reads only the header, and checks it against the file's size: a truncated copy or download fails here,
    where `from_pretrained` would say "Error while deserializing header" without naming the file.

    Args:
        folder: a model folder (anything else, e.g. a Hub id, has no local files to check: empty list).
    """
    from .checkpoints import weights_problem

    problem = weights_problem(folder) if Path(folder).is_dir() else None
    return [] if problem is None else [f"{problem[0]} ({problem[1].splitlines()[0]})"]


def check_weights(name_or_path: str | os.PathLike, role: str = "model") -> None:
    """Refuse a local model folder with a damaged weights file, naming the file and the fix (see `damaged_weights`).

    Raises:
        ValueError: a safetensors file of the folder cannot be read.
    """
    damaged = damaged_weights(name_or_path)
    if damaged:
        raise ValueError(
            f"the {role}'s weights file {'; '.join(damaged)} is truncated or damaged (an interrupted "
            "copy or download?): copy it again, or save the model again with save_pretrained"
        )


def load_saved(folder: str | Path, task: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and tokenizer written by an earlier stage (safetensors, no remote code)."""
    loaded = load_model(folder, task)
    return loaded.model, loaded.tokenizer


def build_student(
    args: Any, config: Any, teacher: PreTrainedModel, calibration: Any = None, config_overrides: dict | None = None
) -> PreTrainedModel:
    """The student: `args.student` loaded with the teacher's labels, or `student_layers` blocks of the teacher
    (FFN width pruned to `student_intermediate_size` on the `calibration` batch when set); `config_overrides`
    (e.g. no dropout) apply to either."""
    from .students import student_from_teacher

    if args.student:
        extra = dict(config_overrides or {})
        if get_task(args.task).has_class_labels:
            extra.update(label_config(list(teacher.config.id2label.values())))
        check_weights(args.student, "student")
        return auto_class(args.task).from_pretrained(args.student, trust_remote_code=config.trust_remote_code, **extra)
    return student_from_teacher(
        teacher,
        num_layers=args.student_layers,
        strategy=args.student_layer_strategy,
        intermediate_size=args.student_intermediate_size,
        num_attention_heads=args.student_num_attention_heads,
        calibration=calibration,
        config_overrides=config_overrides,
    )


def layer_count(config: Any) -> int | None:
    """Transformer blocks of a model config (``num_hidden_layers``, GPT-2's ``n_layer`` alias), or None."""
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


@dataclass
class LoadedModel:
    """A model, its tokenizer, its task and where it came from."""

    model: nn.Module
    tokenizer: Any
    task: Task
    name_or_path: str


def _looks_local(name: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything with more parts, a leading dot/slash or a backslash is a path.
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or os.path.isabs(name)


def load_model(
    name_or_path: str | os.PathLike,
    task: str | Task | None = None,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    role: str = "model",
) -> LoadedModel:
    """Load a model and its tokenizer for evaluation (eval mode).

    Args:
        name_or_path: a local folder or a Hub id.
        task: a task name, pipeline tag or `Task`; detected from the config when None.
        trust_remote_code: allow custom model code (off by default).
        dtype: torch dtype (or its name) to load the weights in.
        revision: Hub revision.
        role: "teacher" or "student", used in error messages.

    Raises:
        FileNotFoundError: a local path that does not exist.
        ValueError: a model or tokenizer that cannot be loaded, naming which and why.
    """
    from transformers import AutoConfig, AutoTokenizer

    name = str(name_or_path)
    if not os.path.isdir(name) and (_looks_local(name) or os.path.exists(name)):
        raise FileNotFoundError(f"{role} {name!r}: no such model folder; give a saved model folder or a Hub id")
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load the {role} {name!r}: {first}") from err
    resolved = get_task(task) if task is not None else detect_task(config)
    # safetensors only: a pickled checkpoint can run arbitrary code when loaded.
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision, "use_safetensors": True}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    check_weights(name, role)
    model = resolved.auto_class.from_pretrained(name, config=config, **kwargs).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"the {role} {name!r} has no loadable tokenizer ({type(err).__name__}); save the tokenizer beside the "
            "model (tokenizer.save_pretrained(folder))"
        ) from err
    return LoadedModel(model=model, tokenizer=tokenizer, task=resolved, name_or_path=name)
