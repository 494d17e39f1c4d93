"""Build the models of a run: the teacher (from a checkpoint or from scratch, with its tokenizer) and the student (a
given checkpoint, or blocks copied from the teacher). Loading any saved model is `hf_distill.core.loading`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, set_seed

from ..core.loading import check_weights
from ..core.tasks import get_task


def auto_class(task: str):
    """The `AutoModelFor...` class of a pipeline task name."""
    from ..core.tasks import AUTO_CLASSES

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
        from ..students.tokenizer_training import train_bpe_tokenizer, train_wordpiece_tokenizer

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
        config: `DistillationConfig` (teacher_revision, trust_remote_code, seed: what is drawn at random when the
            model is built, a from-scratch teacher's weights or a new head, is drawn from it).
        tokenizer: the teacher's tokenizer (a from-scratch teacher takes its vocabulary size and special ids).
        names: class names for classification, else None.
    """
    auto = auto_class(args.task)
    extra = label_config(names)
    # A from-scratch teacher's weights and a new classification head are drawn at random when the model is built,
    # before any Trainer seeds the run: without this the same YAML gave another teacher on every run.
    set_seed(config.seed)
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


def build_student(
    args: Any, config: Any, teacher: PreTrainedModel, calibration: Any = None, config_overrides: dict | None = None
) -> PreTrainedModel:
    """The student: `args.student` loaded with the teacher's labels, or `student_layers` blocks of the teacher
    (FFN width pruned to `student_intermediate_size` on the `calibration` batch when set); `config_overrides`
    (e.g. no dropout) apply to either.

    Args:
        args: the run's `PipelineArguments` (student, student_layers, student_layer_strategy,
            student_intermediate_size, student_num_attention_heads, task).
        config: the run's `DistillationConfig` (`trust_remote_code`; `seed` for a new classification head).
        teacher: the loaded teacher.
        calibration: a batch of inputs that ranks the FFN neurons to keep when pruning.
        config_overrides: config values applied to the student.

    Raises:
        ValueError: a damaged weights file in `args.student`, or a layout the teacher cannot give.
    """
    from ..students.blocks import student_from_teacher

    if args.student:
        set_seed(config.seed)  # a given student's new classification head, as for the teacher
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
