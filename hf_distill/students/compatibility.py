"""Whether a teacher and a student can be distilled or compared: one vocabulary check and one label alignment.

The trainer calls these before training starts and evaluation before it measures, so a pair that cannot work is
refused at the first moment it is knowable, with the fix in the message.
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.tasks import Task
from .vocabulary import kept_ids_of

logger = logging.getLogger(__name__)


def check_vocabularies(
    teacher_config: Any,
    student_config: Any,
    teacher_tokenizer: Any = None,
    student_tokenizer: Any = None,
    *,
    task: Task,
    teacher_reads_student_ids: bool,
) -> None:
    """Refuse a teacher and a student whose vocabularies cannot serve together.

    One shared vocabulary is needed when the logits are per token (a distribution over the vocabulary) or when
    the teacher runs live on the student's input ids (any task, classification included). A classifier compared
    or distilled from cached soft targets never shows the student's ids to the teacher, so its tokenizer may
    differ. Vocabularies that differ only by padding rows (50257 vs 50304) share their ids and are accepted.

    A trimmed student (`hf_distill.vocabulary.kept_ids_of`, the one definition) was cut from the teacher's
    vocabulary and maps its ids to the teacher's through an id map; only the original size is checked here, the
    map is that module's responsibility. A config marking a trimming inconsistently is refused there.

    Args:
        teacher_config: the teacher's `PretrainedConfig`.
        student_config: the student's `PretrainedConfig`.
        teacher_tokenizer: the teacher's tokenizer, when known.
        student_tokenizer: the student's tokenizer, when known.
        task: the `Task` both models perform.
        teacher_reads_student_ids: whether the teacher will run on the student's tokenization.

    Raises:
        ValueError: naming the mismatch and the fix.
    """
    if not (task.per_token or teacher_reads_student_ids):
        return
    t_size, s_size = teacher_config.vocab_size, student_config.vocab_size
    if kept_ids_of(student_config) is not None:
        trimmed_from = student_config.trimmed_from_vocab_size
        if trimmed_from != t_size:
            raise ValueError(
                f"the student's vocabulary was trimmed from one of {trimmed_from} ids but the teacher has {t_size}: "
                "trim the student from this teacher's vocabulary"
            )
        return
    if (
        teacher_tokenizer is not None
        and student_tokenizer is not None
        and hasattr(student_tokenizer, "get_vocab")
        and teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab()
    ):
        why = (
            "token-level distillation and fidelity need"
            if task.per_token
            else "the teacher reads the student's input ids, which needs"
        )
        raise ValueError(
            f"the teacher's and the student's tokenizers differ (they have different vocabularies): {why} one "
            "shared vocabulary; use the teacher's tokenizer for the student"
        )
    tokenizer = student_tokenizer if student_tokenizer is not None else teacher_tokenizer
    n_tokens = len(tokenizer) if tokenizer is not None and hasattr(tokenizer, "__len__") else None
    if task.per_token:
        shared = min(s_size, t_size)
        if n_tokens is not None and n_tokens > shared:
            raise ValueError(
                f"the tokenizer has {n_tokens} tokens but the teacher has {t_size} and the student {s_size} output "
                "rows: the vocabularies differ by more than padding; use models built for this tokenizer"
            )
        if s_size != t_size:
            logger.info(
                "teacher (%d) and student (%d) vocabularies differ by padding; using the %d shared ids",
                t_size,
                s_size,
                shared,
            )
    elif n_tokens is not None and n_tokens > t_size:
        raise ValueError(
            f"the student's tokenizer has {n_tokens} tokens but the teacher's embeddings only {t_size}: the teacher "
            "cannot read the student's input ids; use the teacher's tokenizer for the student"
        )


def config_label_names(config: Any) -> list[str]:
    """The names a classifier's config gives its outputs, in id order (``LABEL_0``, ... where it names none).

    What the model says its outputs are; the class names of a data set are `hf_distill.core.data.data_label_names`.

    Args:
        config: the classifier's config (``num_labels`` and ``id2label`` are read).
    """
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]


def check_label_counts(teacher_config: Any, student_config: Any) -> None:
    """Refuse classifiers with different numbers of labels.

    Args:
        teacher_config: the teacher's config.
        student_config: the student's config.

    Raises:
        ValueError: naming both counts and the fix.
    """
    n_t, n_s = teacher_config.num_labels, student_config.num_labels
    if n_t != n_s:
        raise ValueError(
            f"the teacher predicts {n_t} labels but the student {n_s}: they do not solve the same task; build the "
            f"student with num_labels={n_t} (and the teacher's id2label)"
        )


def label_permutation(teacher_config: Any, student_config: Any) -> list[int] | None:
    """Where each of the teacher's labels sits in the student's output, matched by name.

    ``student_logits[:, perm]`` puts the student's logits in the teacher's label order. None when the orders are
    already the same.

    Args:
        teacher_config: the teacher classifier's config.
        student_config: the student classifier's config.

    Raises:
        ValueError: when the label counts or the label names differ (a student whose labels cannot be matched
            to the teacher's by name).
    """
    check_label_counts(teacher_config, student_config)
    t_names, s_names = config_label_names(teacher_config), config_label_names(student_config)
    if t_names == s_names:
        return None
    if sorted(t_names) != sorted(s_names) or len(set(t_names)) != len(t_names):
        raise ValueError(
            f"the teacher's labels {t_names} and the student's {s_names} differ by name, so they cannot be matched: "
            "set the student's config id2label/label2id to the teacher's"
        )
    position = {name: i for i, name in enumerate(s_names)}
    return [position[name] for name in t_names]


def check_label_order(teacher_config: Any, student_config: Any) -> None:
    """Refuse, for training, a student that names the teacher's labels in another order.

    Distillation matches outputs by position, so such a student would end up with a config that names its outputs
    wrongly. A student with label names of its own (LABEL_0, ...) is index-aligned by construction and accepted.

    Args:
        teacher_config: the teacher's config.
        student_config: the student's config.

    Raises:
        ValueError: naming both orders and the fix.
    """
    try:
        permuted = label_permutation(teacher_config, student_config) is not None
    except ValueError:
        return  # other names: nothing to match by name
    if permuted:
        raise ValueError(
            f"the student's id2label {config_label_names(student_config)} orders the teacher's labels "
            f"{config_label_names(teacher_config)} differently: distillation matches outputs by position, so give the "
            "student the teacher's id2label and label2id"
        )
