"""Where teacher and student disagree: the evaluation examples stored beside the report.

`evaluation_examples.json` is written by the evaluate stage next to `distillation_report.json`, linked from the
model card, uploaded by `push` and shown by the Space app as a table. Its fields are a contract like the report's:

* ``schema_version`` (a reader refuses a newer one), ``task``, ``divergence`` (what a row's ``divergence`` is),
  ``num_evaluated`` (every evaluation example), ``max_rows`` and ``selection`` (how the rows were chosen, in words).
* Classification: ``labels`` (the teacher's label names, the order of the probability vectors); ``rows``: every
  disagreement (largest divergence first), then the agreeing examples with the largest divergence until
  ``max_rows`` rows; ``num_disagreements``; ``all_disagreements`` (False only when there were more than
  `MAX_DISAGREEMENT_ROWS`: the file then holds the largest ones); ``by_label``: per gold label, how many examples,
  how many disagreements, and whether only the teacher, only the student, both or neither were right — counted
  over the whole evaluation, so the card's table is measured, not sampled. A row holds the text, its gold label,
  both probability vectors, both predictions and the per-example KL(teacher ‖ student) in nats.
* Causal and masked LMs: sampling continuations for every evaluation text costs more than the whole evaluation,
  so the rows are the texts with the largest mean per-token KL(teacher ‖ student) (over the positions the
  evaluation scores), with the tokens scored, the top-1 agreement over them and each model's mean NLL per token.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.report import TASKS, InvalidReport

EXAMPLES_FILENAME = "evaluation_examples.json"
EXAMPLES_SCHEMA_VERSION = 1
DEFAULT_MAX_ROWS = 50
# Every disagreement is kept (the card's table is recounted from them) unless there are more than this many:
# the file must stay small enough for a Space to read at start-up.
MAX_DISAGREEMENT_ROWS = 1000
# Probabilities are stored rounded; a vector may then miss 1 by this much.
_PROB_SUM_TOLERANCE = 1e-3
_OUTCOMES = ("teacher_only", "student_only", "both", "neither")


@dataclass
class LabelCounts:
    """One gold label's outcomes over the whole evaluation (the four outcome counts add up to `examples`)."""

    label: str
    examples: int = 0
    disagreements: int = 0
    teacher_only: int = 0
    student_only: int = 0
    both: int = 0
    neither: int = 0

    @property
    def disagreement_rate(self) -> float:
        """The share of this label's examples on which the two models disagree (0 without examples)."""
        return self.disagreements / self.examples if self.examples else 0.0


@dataclass
class EvaluationExamples:
    """The contents of `evaluation_examples.json` (see the module docstring for the fields)."""

    task: str
    divergence: str
    num_evaluated: int
    max_rows: int
    selection: str
    rows: list[dict[str, Any]]
    labels: list[str] | None = None
    num_disagreements: int | None = None
    all_disagreements: bool | None = None
    by_label: list[LabelCounts] = field(default_factory=list)
    schema_version: int = EXAMPLES_SCHEMA_VERSION

    @property
    def classification(self) -> bool:
        """Whether the file is a classifier's (it names labels) rather than a language model's."""
        return self.labels is not None

    def to_dict(self) -> dict[str, Any]:
        """The file's contents as a JSON-ready dict (nested `LabelCounts` included)."""
        return asdict(self)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the file; a directory path gets `evaluation_examples.json` inside it. NaN/inf are refused."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / EXAMPLES_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Any) -> EvaluationExamples:
        """Rebuild and validate (`validate_examples`); raises `InvalidReport` naming the bad field."""
        if not isinstance(data, dict):
            raise InvalidReport(f"{EXAMPLES_FILENAME} must hold a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidReport(
                f"{EXAMPLES_FILENAME} field 'schema_version' must be a positive integer, got {version!r}"
            )
        if version > EXAMPLES_SCHEMA_VERSION:
            raise InvalidReport(
                f"{EXAMPLES_FILENAME} schema_version {version} is newer than this hf-distill understands "
                f"({EXAMPLES_SCHEMA_VERSION}): upgrade hf-distill"
            )
        required = ("task", "divergence", "num_evaluated", "max_rows", "selection", "rows")
        missing = [k for k in required if k not in data]
        if missing:
            raise InvalidReport(f"{EXAMPLES_FILENAME} is missing {missing}")
        kwargs = {k: data.get(k) for k in (*required, "labels", "num_disagreements", "all_disagreements")}
        by_label = data.get("by_label") or []
        if not isinstance(by_label, list) or not all(isinstance(c, dict) for c in by_label):
            raise InvalidReport(f"{EXAMPLES_FILENAME} field 'by_label' must be a list of objects")
        try:
            kwargs["by_label"] = [LabelCounts(**c) for c in by_label]
        except TypeError as err:
            raise InvalidReport(f"{EXAMPLES_FILENAME} field 'by_label': {err}") from None
        examples = cls(**kwargs, schema_version=version)
        validate_examples(examples)
        return examples

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> EvaluationExamples:
        """Read and validate a file written by `to_json` (a directory path means its `evaluation_examples.json`)."""
        path = Path(path)
        if path.is_dir():
            path = path / EXAMPLES_FILENAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InvalidReport(
                f"{path} is not valid JSON ({err}): evaluate again with `hf-distill evaluate`"
            ) from None
        return cls.from_dict(data)


# -- selection (pure) ----------------------------------------------------------------------------------------


def _outcome(gold: int, teacher: int, student: int) -> str:
    t_right, s_right = teacher == gold, student == gold
    if t_right and s_right:
        return "both"
    if t_right:
        return "teacher_only"
    return "student_only" if s_right else "neither"


def count_by_label(
    golds: Sequence[int], teacher_preds: Sequence[int], student_preds: Sequence[int], labels: Sequence[str]
) -> list[LabelCounts]:
    """Per gold label (in `labels` order, labels never seen left out): examples, disagreements and who was right."""
    counts = {i: LabelCounts(label=str(name)) for i, name in enumerate(labels)}
    for gold, t, s in zip(golds, teacher_preds, student_preds, strict=True):
        c = counts[int(gold)]
        c.examples += 1
        c.disagreements += int(t != s)
        setattr(c, _outcome(gold, t, s), getattr(c, _outcome(gold, t, s)) + 1)
    return [c for c in counts.values() if c.examples]


def recount_from_rows(examples: EvaluationExamples) -> list[LabelCounts]:
    """The by-label counts of the file's own rows (equal to `by_label` for the disagreement columns whenever the
    file holds every disagreement, and for all columns when it holds every example).

    Args:
        examples: a classifier's examples file.
    """
    index = {name: i for i, name in enumerate(examples.labels or [])}
    rows = examples.rows
    return count_by_label(
        [index[r["label"]] for r in rows],
        [index[r["teacher_prediction"]] for r in rows],
        [index[r["student_prediction"]] for r in rows],
        examples.labels or [],
    )


def select_classification_examples(
    texts: Sequence[str],
    golds: Sequence[int],
    teacher_probs: Sequence[Sequence[float]],
    student_probs: Sequence[Sequence[float]],
    divergences: Sequence[float],
    labels: Sequence[str],
    *,
    task: str = "text-classification",
    max_rows: int = DEFAULT_MAX_ROWS,
) -> EvaluationExamples:
    """Every disagreement (largest KL first, at most `MAX_DISAGREEMENT_ROWS`), then the agreeing examples with the
    largest KL until `max_rows` rows; `by_label` counted over all examples.

    Args:
        texts: the evaluation texts.
        golds: gold class ids (the teacher's label order).
        teacher_probs: the teacher's probability vector per text.
        student_probs: the student's, in the teacher's label order.
        divergences: per-example KL(teacher ‖ student) in nats.
        labels: the teacher's label names by id.
        task: the report's task (pipeline tag).
        max_rows: how many rows the file holds when there are fewer disagreements than this.
    """
    n = len(texts)
    if not (len(golds) == len(teacher_probs) == len(student_probs) == len(divergences) == n):
        raise ValueError("texts, labels, probabilities and divergences must have one entry per example")
    t_pred = [max(range(len(p)), key=p.__getitem__) for p in teacher_probs]
    s_pred = [max(range(len(p)), key=p.__getitem__) for p in student_probs]
    by_kl = sorted(range(n), key=lambda i: (-divergences[i], i))
    disagree = [i for i in by_kl if t_pred[i] != s_pred[i]]
    agree = [i for i in by_kl if t_pred[i] == s_pred[i]]
    chosen = disagree[:MAX_DISAGREEMENT_ROWS] + agree[: max(0, max_rows - len(disagree))]
    rows = [
        {
            "text": texts[i],
            "label": labels[golds[i]],
            "teacher_prediction": labels[t_pred[i]],
            "student_prediction": labels[s_pred[i]],
            "agree": t_pred[i] == s_pred[i],
            "divergence": round(max(float(divergences[i]), 0.0), 6),
            "teacher_probs": [round(float(p), 6) for p in teacher_probs[i]],
            "student_probs": [round(float(p), 6) for p in student_probs[i]],
        }
        for i in chosen
    ]
    return EvaluationExamples(
        task=task,
        divergence="KL(teacher || student) of the example's class probabilities, nats",
        num_evaluated=n,
        max_rows=max_rows,
        selection=(
            f"every disagreement (largest divergence first, at most {MAX_DISAGREEMENT_ROWS}), then the agreeing "
            f"examples with the largest divergence up to {max_rows} rows"
        ),
        rows=rows,
        labels=[str(x) for x in labels],
        num_disagreements=len(disagree),
        all_disagreements=len(disagree) <= MAX_DISAGREEMENT_ROWS,
        by_label=count_by_label(golds, t_pred, s_pred, labels),
    )


def select_lm_examples(
    texts: Sequence[str],
    divergences: Sequence[float],
    agreements: Sequence[float],
    tokens: Sequence[int],
    teacher_nll: Sequence[float],
    student_nll: Sequence[float],
    *,
    task: str,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> EvaluationExamples:
    """The `max_rows` texts with the largest mean per-token KL(teacher ‖ student); texts with no scored token are
    left out. All sequences are per text: mean KL, top-1 agreement share, tokens scored, mean NLL per token.

    Args:
        texts: the evaluated texts.
        divergences: each text's mean per-token KL(teacher ‖ student), in nats.
        agreements: each text's share of positions where the two models' top-1 tokens agree.
        tokens: each text's number of scored positions.
        teacher_nll: each text's mean negative log-likelihood per token under the teacher.
        student_nll: the same under the student.
        task: the pipeline tag the file is for.
        max_rows: the most rows kept.

    Returns:
        The `EvaluationExamples` of a language model (ties broken by text order).
    """
    scored = [i for i in range(len(texts)) if tokens[i] > 0]
    chosen = sorted(scored, key=lambda i: (-divergences[i], i))[:max_rows]
    rows = [
        {
            "text": texts[i],
            "divergence": round(max(float(divergences[i]), 0.0), 6),
            "agreement_top1": round(float(agreements[i]), 6),
            "tokens": int(tokens[i]),
            "teacher_nll": round(float(teacher_nll[i]), 6),
            "student_nll": round(float(student_nll[i]), 6),
        }
        for i in chosen
    ]
    return EvaluationExamples(
        task=task,
        divergence="mean per-token KL(teacher || student) over the positions the evaluation scores, nats",
        num_evaluated=len(texts),
        max_rows=max_rows,
        selection=f"the {max_rows} texts with the largest mean per-token divergence (no sampling: it would cost "
        "more than the whole evaluation)",
        rows=rows,
    )


# -- validation ----------------------------------------------------------------------------------------------


def _bad(where: str, problem: str) -> InvalidReport:
    return InvalidReport(
        f"{EXAMPLES_FILENAME} field {where!r} {problem}: the file is corrupted or was edited by "
        "hand; evaluate again with `hf-distill evaluate`"
    )


def _count(where: str, value: Any, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (high is not None and value > high):
        raise _bad(where, f"must be a whole number in [0, {high if high is not None else '∞'}], got {value!r}")
    return value


def _number(where: str, value: Any, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise _bad(where, f"must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise _bad(where, f"is {value!r}, outside [{low:g}, {high if high is not None else '∞'}]")


def _probabilities(where: str, probs: Any, width: int) -> None:
    if not isinstance(probs, list) or len(probs) != width:
        raise _bad(where, f"must list {width} probabilities (one per label)")
    for p in probs:
        _number(where, p, 0.0, 1.0)
    if abs(sum(probs) - 1.0) > _PROB_SUM_TOLERANCE:
        raise _bad(where, f"sums to {sum(probs):.4f}, not 1")


def validate_examples(ex: EvaluationExamples) -> None:
    """Raise `InvalidReport` (naming the field) for anything no evaluation writes: probabilities outside [0, 1] or
    not summing to 1, predictions that are not the vectors' top classes, counts that do not add up, more rows than
    examples.

    Args:
        ex: the examples, as written or as read from JSON.

    Raises:
        InvalidReport: one line naming the first field in error and why.
    """
    if ex.task not in TASKS:
        raise _bad("task", f"must be one of {TASKS}, got {ex.task!r}")
    n = _count("num_evaluated", ex.num_evaluated)
    _count("max_rows", ex.max_rows)
    if not isinstance(ex.rows, list) or len(ex.rows) > n:
        raise _bad("rows", f"must be a list of at most num_evaluated ({n}) rows")
    for i, row in enumerate(ex.rows):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise _bad(f"rows[{i}]", "must be an object with a 'text' string")
        _number(f"rows[{i}].divergence", row.get("divergence"), 0.0)
    if not ex.classification:
        for i, row in enumerate(ex.rows):
            _number(f"rows[{i}].agreement_top1", row.get("agreement_top1"), 0.0, 1.0)
            _count(f"rows[{i}].tokens", row.get("tokens"))
            for key in ("teacher_nll", "student_nll"):
                _number(f"rows[{i}].{key}", row.get(key), 0.0)
        return
    labels = ex.labels
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise _bad("labels", "must be a non-empty list of label names")
    disagreements = _count("num_disagreements", ex.num_disagreements, n)
    for i, row in enumerate(ex.rows):
        where = f"rows[{i}]"
        for key in ("label", "teacher_prediction", "student_prediction"):
            if row.get(key) not in labels:
                raise _bad(f"{where}.{key}", f"must be one of {labels}, got {row.get(key)!r}")
        for who in ("teacher", "student"):
            probs = row.get(f"{who}_probs")
            _probabilities(f"{where}.{who}_probs", probs, len(labels))
            if probs[labels.index(row[f"{who}_prediction"])] < max(probs):
                raise _bad(f"{where}.{who}_prediction", "is not the class its probabilities rank first")
        if row.get("agree") is not (row["teacher_prediction"] == row["student_prediction"]):
            raise _bad(f"{where}.agree", "contradicts the two predictions")
    disagreeing = sum(not r["agree"] for r in ex.rows)
    if disagreeing > disagreements or (ex.all_disagreements and disagreeing != disagreements):
        raise _bad("num_disagreements", f"is {disagreements}, but the rows hold {disagreeing} disagreements")
    total = 0
    for j, c in enumerate(ex.by_label):
        where = f"by_label[{j}]"
        if c.label not in labels:
            raise _bad(f"{where}.label", f"must be one of {labels}")
        examples = _count(f"{where}.examples", c.examples)
        _count(f"{where}.disagreements", c.disagreements, examples)
        if sum(_count(f"{where}.{k}", getattr(c, k), examples) for k in _OUTCOMES) != examples:
            raise _bad(where, "outcome counts do not add up to its examples")
        if c.teacher_only + c.student_only > c.disagreements or c.disagreements > examples - c.both:
            raise _bad(f"{where}.disagreements", "contradicts who was right")
        total += examples
    if total != n or sum(c.disagreements for c in ex.by_label) != disagreements:
        raise _bad("by_label", f"counts {total} examples, but num_evaluated is {n}")


def read_examples(folder: str | os.PathLike) -> EvaluationExamples | None:
    """The validated examples file in `folder`, or None when there is none (a corrupted one raises)."""
    path = Path(folder) / EXAMPLES_FILENAME
    return EvaluationExamples.from_json(path) if path.is_file() else None


# -- the card's table ----------------------------------------------------------------------------------------


def confusion_rows(ex: EvaluationExamples) -> list[tuple[str, ...]]:
    """The card's "where they disagree" rows: gold label, examples, disagreements (rate), and who was right."""
    rows = []
    for c in [*ex.by_label, _total(ex)]:
        rows.append(
            (
                c.label,
                str(c.examples),
                f"{c.disagreements} ({100 * c.disagreement_rate:.1f}%)",
                str(c.teacher_only),
                str(c.student_only),
                str(c.both),
                str(c.neither),
            )
        )
    return rows


def _total(ex: EvaluationExamples) -> LabelCounts:
    total = LabelCounts(label="**All**")
    for c in ex.by_label:
        for key in ("examples", "disagreements", *_OUTCOMES):
            setattr(total, key, getattr(total, key) + getattr(c, key))
    return total


CONFUSION_HEADER = (
    "Gold label",
    "Examples",
    "Disagreements",
    "Only teacher right",
    "Only student right",
    "Both right",
    "Neither right",
)

__all__ = [
    "CONFUSION_HEADER",
    "DEFAULT_MAX_ROWS",
    "EXAMPLES_FILENAME",
    "EXAMPLES_SCHEMA_VERSION",
    "MAX_DISAGREEMENT_ROWS",
    "EvaluationExamples",
    "LabelCounts",
    "confusion_rows",
    "count_by_label",
    "read_examples",
    "recount_from_rows",
    "select_classification_examples",
    "select_lm_examples",
    "validate_examples",
]
