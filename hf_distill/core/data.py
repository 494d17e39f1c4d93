"""Read training and evaluation data through `datasets` (a Hub id, a local folder, or csv/tsv/json/jsonl/txt files)
and prepare it for a run: label names and ids, labelled/transfer rows, tokenization, and a fingerprint of the data.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset

from ..errors import HfDistillError

LOCAL_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}


def _builder_for(path: str) -> tuple[str, dict]:
    suffix = Path(path).suffix.lower()
    if suffix not in LOCAL_FORMATS:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(sorted(LOCAL_FORMATS))}")
    kwargs: dict = {}
    if suffix == ".tsv":
        # TSV corpora such as GLUE contain bare quotes inside sentences; quoting must be off to read them right.
        kwargs = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    if suffix == ".txt":
        # A byte-order mark (Windows editors write one) is not text: csv (pandas) and json drop it, text keeps it.
        kwargs = {"encoding": "utf-8-sig"}
    return LOCAL_FORMATS[suffix], kwargs


def load_splits(
    dataset: str | None = None,
    *,
    dataset_config: str | None = None,
    data_files: dict[str, str] | None = None,
    revision: str | None = None,
) -> DatasetDict:
    """Load a `DatasetDict` from local files (`data_files` split → path) or a Hub id / local path (`dataset`)."""
    if data_files:
        missing = [p for p in data_files.values() if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(f"data file(s) not found: {', '.join(missing)}")
        headers = {split: check_data_file(path) for split, path in data_files.items()}
        if len({_builder_for(p)[0] for p in data_files.values()}) != 1:
            raise ValueError(f"all data files must have the same format, got {sorted(data_files.values())}")
        if len({tuple(h) for h in headers.values() if h is not None}) > 1:
            described = "; ".join(f"{data_files[s]} has {h}" for s, h in headers.items())
            raise DataFileError(f"the data files have different columns ({described}): use one header in every file")
        builder, kwargs = _builder_for(next(iter(data_files.values())))
        # One split at a time: loaded together, every split takes the first one's column types, and a training file
        # whose labels are all empty (type null) made the validation labels unreadable ("cannot cast int64 to null")
        return DatasetDict(
            {split: _load(builder, data_files={split: path}, **kwargs)[split] for split, path in data_files.items()}
        )
    if not dataset:
        raise ValueError("no data: give `dataset` (a Hub id or local path) or `train_file`/`validation_file`")
    if os.path.isfile(dataset):
        check_data_file(dataset)
        builder, kwargs = _builder_for(dataset)
        return _load(builder, data_files={"train": dataset}, **kwargs)
    return _load(dataset, dataset_config, revision=revision)


def _load(*args, **kwargs) -> DatasetDict:
    """`load_dataset`, with its generation error (a wrapper around the real cause) replaced by that cause."""
    from datasets.exceptions import DatasetGenerationError

    try:
        return load_dataset(*args, **kwargs)
    except DatasetGenerationError as err:
        cause = err.__cause__ or err.__context__ or err
        text = (str(cause).strip() or type(cause).__name__).splitlines()[0]
        raise ValueError(f"cannot read the data ({args[0]}, {kwargs.get('data_files') or ''}): {text}") from err


def text_column_of(ds: Dataset, requested: str | None) -> str:
    """The text column to use: `requested`, or the single obvious one ("text", "sentence", ...)."""
    if requested:
        if requested not in ds.column_names:
            raise ValueError(f"text column {requested!r} not found; the data has columns {ds.column_names}")
        return requested
    for name in ("text", "sentence", "content", "review", "document"):
        if name in ds.column_names:
            return name
    raise ValueError(f"cannot tell which column holds the text among {ds.column_names}: set text_column")


def label_to_id(value: Any, label2id: Mapping[str, int], *, allow_unlabelled: bool = False) -> int:
    """The class id of one label: an id as is, a name through the model's `label2id`.

    The one label mapping of hf-distill. With `allow_unlabelled`, a missing label (None or -1) gives -1 (a
    transfer-set row that only gets the distillation term); otherwise it is an error.

    Args:
        value: the label as read from the data (an int id or a label name).
        label2id: the model's label names to ids (`config.label2id`).
        allow_unlabelled: whether None / -1 are accepted as "no label".

    Raises:
        ValueError: for a missing label (unless allowed), an id outside the model's labels, or an unknown name.
    """
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        if allow_unlabelled:
            return -1
        raise ValueError(f"missing label {value!r}: every evaluated row needs a label")
    names = {str(k): int(v) for k, v in label2id.items()}
    if isinstance(value, bool):
        raise ValueError(f"invalid label {value!r}: use a label id or one of the names {sorted(names)}")
    if isinstance(value, int):
        if names and value not in names.values():
            raise ValueError(f"label id {value} is outside the model's labels {sorted(names.values())}")
        return value
    if str(value) in names:
        return names[str(value)]
    raise ValueError(f"label {value!r} is not one of the model's classes {sorted(names)}")


class DataFileError(HfDistillError, ValueError):
    """A local data file that cannot be read as the table it should be (one line naming the file and the fix)."""


def check_data_file(path: str | os.PathLike) -> list[str] | None:
    """Refuse a local data file that `datasets` would read wrongly or fail on with a long traceback.

    Args:
        path: a csv/tsv/json/jsonl/txt file.

    Returns:
        The header (column names) of a csv/tsv file, else None.

    Raises:
        DataFileError: the file is missing, not a file, empty, not UTF-8, or (csv/tsv) a row has another number of
            fields than the header or repeats it.
    """
    path = str(path)
    if not os.path.exists(path):
        raise DataFileError(f"data file {path} not found: check train_file/validation_file")
    if not os.path.isfile(path):
        raise DataFileError(f"data file {path} is a folder, not a file: give the file itself (or use `dataset`)")
    _builder_for(path)
    if os.path.getsize(path) == 0 or not Path(path).read_bytes().strip():
        raise DataFileError(f"data file {path} is empty: it needs a header line and at least one row")
    try:
        # utf-8-sig: a byte-order mark before the header is not part of the first column's name (pandas drops it)
        with open(path, encoding="utf-8-sig", newline="") as f:
            suffix = Path(path).suffix.lower()
            if suffix in (".csv", ".tsv"):
                return _check_table(path, f, suffix)
            for _ in iter(lambda: f.read(1 << 20), ""):
                pass
            return None
    except UnicodeDecodeError as err:
        raise DataFileError(
            f"data file {path} is not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at offset "
            f"{err.start}): convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def _check_table(path: str, f: Any, suffix: str) -> list[str]:
    """The header of an open csv/tsv file, after checking every row against it (see `check_data_file`)."""
    dialect = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if suffix == ".tsv" else {}
    rows = csv.reader(f, **dialect)
    limit = csv.field_size_limit()
    # csv's 131,072-character field limit is not the reader's: pandas (which `datasets` uses) reads longer texts
    csv.field_size_limit(2**31 - 1)
    try:
        header = next(rows, [])
        start = rows.line_num + 1
        for row in rows:
            if row == header:
                raise DataFileError(
                    f"data file {path}, line {start} repeats the header {header} (files joined "
                    "together?): delete that line"
                )
            if row and len(row) != len(header):
                sep = "tab" if suffix == ".tsv" else "comma"
                spans = f" (it runs to line {rows.line_num}: an unclosed quote?)" if rows.line_num > start else ""
                raise DataFileError(
                    f"data file {path}, line {start}: {len(row)} fields where the header has "
                    f"{len(header)} ({header}){spans}; a stray {sep} in the text? Fix or quote that line"
                )
            start = rows.line_num + 1
    except csv.Error as err:
        raise DataFileError(f"data file {path}, line {start}: {err}: fix that line") from None
    finally:
        csv.field_size_limit(limit)
    if rows.line_num <= 1:
        raise DataFileError(f"data file {path} has a header but no rows")
    return header


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's contents (hex), read in chunks by `huggingface_hub`'s own helper."""
    from huggingface_hub.utils.sha import sha_fileobj

    with open(path, "rb") as f:
        return sha_fileobj(f).hex()


def data_label_names(train: Dataset, label_column: str, class_names: str | list[str] | None = None) -> list[str]:
    """The class names of a classification data set, index = label id.

    What the data's labels are; the names a model's config gives its outputs are
    `hf_distill.students.compatibility.config_label_names`.

    Args:
        train: the training split.
        label_column: its label column; values are ids (int) or names (str); None and -1 mean unlabelled.
        class_names: names of the ids ("negative,positive" or a list). Required for names to be checked.

    Returns:
        `class_names` when given (after checking every label is one of them), else the sorted string labels,
        else ``LABEL_0 .. LABEL_{max id}``.
    """
    if label_column not in train.column_names:
        raise ValueError(
            f"label column {label_column!r} not found; the data has columns {train.column_names}: set label_column"
        )
    values = {v for v in train.unique(label_column) if v is not None and v != -1 and v != "-1"}
    names = [n.strip() for n in class_names.split(",")] if isinstance(class_names, str) else class_names
    if names:
        unknown = sorted(str(v) for v in values if not _label_fits(v, names))
        if unknown:
            raise ValueError(
                f"labels {unknown[:5]} in column {label_column!r} are not in class_names {names}: "
                "add them to class_names or fix the data"
            )
        return list(names)
    if not values:
        raise ValueError(f"column {label_column!r} has no labels (every row is empty or -1)")
    if all(isinstance(v, int) for v in values):
        if min(values) < 0:
            raise ValueError(
                f"label ids must be >= 0 (or -1 for unlabelled); column {label_column!r} has {min(values)}"
            )
        return [f"LABEL_{i}" for i in range(max(values) + 1)]
    return sorted(str(v) for v in values)


def _label_fits(value: Any, names: list[str]) -> bool:
    if isinstance(value, int):
        return 0 <= value < len(names)
    return str(value) in names


def integral_labels(ds: Dataset, label_column: str) -> Dataset:
    """Turn a label column that was read as floats back into ids: ``1.0`` -> ``1``, an empty cell stays None.

    A csv/tsv label column with an empty cell (an unlabelled row) is read by pandas as floats, and `datasets` gives
    every split of the same files that type: without this, the labels ``0``/``1`` read as ``0.0``/``1.0`` and match
    neither the ids nor the names of the classes.

    Args:
        ds: a split.
        label_column: its label column (left as is when absent, not float, or holding a non-whole number).
    """
    from datasets import Value

    feature = ds.features.get(label_column)
    if not (isinstance(feature, Value) and feature.dtype.startswith("float")):
        return ds
    if any(v is not None and not (v == v and float(v).is_integer()) for v in ds.unique(label_column)):
        return ds  # 1.5 is no class id: the label checks name it
    return ds.cast_column(label_column, Value("int64"))


def to_label_ids(ds: Dataset, label_column: str, names: list[str], *, unlabelled: bool = False) -> Dataset:
    """Replace `label_column` by an int ``label`` column: ids stay, names become their index, empty/-1 become -1.

    Args:
        ds: rows with a label column holding ids or names.
        label_column: that column.
        names: class names, index = id (e.g. the model's ``id2label`` values in order).
        unlabelled: set every row's label to -1 (transfer rows that the student learns from the teacher only).
    """
    lookup = {name: i for i, name in enumerate(names)}

    def convert(row: dict[str, Any]) -> dict[str, int]:
        value = row[label_column]
        if unlabelled or value == "-1" or value == "":
            return {"label": -1}
        return {"label": label_to_id(value, lookup, allow_unlabelled=True)}

    from datasets import Value

    features = ds.features.copy()
    del features[label_column]
    features["label"] = Value("int64")
    return ds.map(convert, remove_columns=[label_column], features=features)


def parse_selection_size(value: str | int | float | None) -> int | float | None:
    """`selection_size` as rows (an integer, e.g. "500") or a share of the training rows (a fraction in (0, 1),
    e.g. "0.1"), as `datasets.Dataset.train_test_split` reads `test_size`; None when not set.

    Args:
        value: the setting as given: a string from the command line or a config file, a number, or None
            ("", "none" and "null" also mean not set).

    Returns:
        An `int` (rows), a `float` in (0, 1) (a share), or None.

    Raises:
        ValueError: one line naming the value and what is accepted.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    text = str(value).strip()
    try:
        size: int | float = int(text) if text.lstrip("+").isdigit() else float(text)
    except ValueError:
        size = -1
    if isinstance(size, int) and size >= 1 or isinstance(size, float) and 0.0 < size < 1.0:
        return size
    raise ValueError(
        f"selection_size={value!r} is invalid: give a number of training rows (an integer >= 1, e.g. 500) "
        "or a share of them (a fraction between 0 and 1, e.g. 0.1)"
    )


def selection_split(num_rows: int, size: int | float, seed: int) -> tuple[list[int], list[int]]:
    """Row indices (kept for training, held out for selection) of a training split of `num_rows` rows.

    The held-out rows are a seeded random choice (`numpy.random.default_rng(seed).permutation`), so the same
    (num_rows, size, seed) always hold out the same rows; both lists are in the data's order.

    Args:
        num_rows: rows in the training split.
        size: rows to hold out (int) or their share (float in (0, 1), rounded up as `train_test_split` does).
        seed: the selection seed.

    Raises:
        ValueError: when the selection would leave no training row or hold out none.
    """
    import math

    import numpy as np

    held = size if isinstance(size, int) else math.ceil(size * num_rows)
    if not 1 <= held < num_rows:
        raise ValueError(
            f"selection_size={size} holds out {held} of the {num_rows} training rows: it must leave "
            "at least one row for training and hold out at least one; lower or raise it"
        )
    chosen = np.zeros(num_rows, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(num_rows)[:held]] = True
    return np.flatnonzero(~chosen).tolist(), np.flatnonzero(chosen).tolist()


class RunData:
    """The data of one run, loaded once: splits, text column, class names, training rows, tokenized sets.

    With `selection_size`, a selection split is held out of the training split (`selection_split`, seeded by
    `selection_seed`): `train()` is then the rest, which every stage trains on, and `selection()` the held-out rows,
    which choose among settings (the student's evaluation during training, `hf-distill plan`); the validation split
    stays for the report.

    Args:
        args: the run's `PipelineArguments` (data fields: dataset, train_file, validation_file, splits, columns,
            class_names, num_labelled, num_transfer, max_length, task, selection_size, selection_seed).
        seed: shuffling seed for the labelled/transfer selection.
    """

    def __init__(self, args: Any, seed: int) -> None:
        self.args = args
        self.seed = seed
        self._splits: DatasetDict | None = None
        self._rows: tuple[list[int], list[int]] | None = None

    @property
    def classification(self) -> bool:
        """Whether the run's task predicts class labels (then labels are made integral and named)."""
        from .tasks import get_task

        return get_task(self.args.task).has_class_labels

    def files(self) -> dict[str, str]:
        """The local data files the run names, as `datasets` data_files: {train split: train_file, validation split:
        validation_file}; empty when the data comes from `dataset` alone.
        """
        files = {}
        if self.args.train_file:
            files[self.args.train_split] = self.args.train_file
        if self.args.validation_file:
            files[self.args.validation_split] = self.args.validation_file
        return files

    def splits(self) -> DatasetDict:
        """Every split of the data, loaded on first call and kept; for classification, labels given as names are
        turned into ids.

        Raises:
            ValueError: when the data has no training split (names the splits found and the fix).
        """
        if self._splits is None:
            splits = load_splits(
                self.args.dataset, dataset_config=self.args.dataset_config, data_files=self.files() or None
            )
            if self.args.train_split not in splits:
                raise ValueError(
                    f"no {self.args.train_split!r} split in the data (found {list(splits)}): "
                    "set train_split or train_file"
                )
            if self.classification:
                splits = DatasetDict({name: integral_labels(ds, self.args.label_column) for name, ds in splits.items()})
            self._splits = splits
        return self._splits

    def selection_size(self) -> int | float | None:
        """The parsed `selection_size` setting (see `parse_selection_size`): rows, a share, or None."""
        return parse_selection_size(getattr(self.args, "selection_size", None))

    def selection_rows(self) -> tuple[list[int], list[int]] | None:
        """(training, selection) row indices of the training split, or None without a selection split."""
        size = self.selection_size()
        if size is None:
            return None
        if self._rows is None:
            n = len(self.splits()[self.args.train_split])
            self._rows = selection_split(n, size, int(getattr(self.args, "selection_seed", 0)))
        return self._rows

    def train(self) -> Dataset:
        """The rows the run trains on: the training split, less the selection split when there is one."""
        train = self.splits()[self.args.train_split]
        rows = self.selection_rows()
        return train if rows is None else train.select(rows[0])

    def selection(self) -> Dataset | None:
        """The held-out selection rows (never trained on), or None without `selection_size`."""
        rows = self.selection_rows()
        return None if rows is None else self.splits()[self.args.train_split].select(rows[1])

    def student_train(self) -> Dataset | None:
        """The rows of `student_train_file` (the student's own training rows), or None when it trains on `train()`."""
        path = getattr(self.args, "student_train_file", None)
        if not path:
            return None
        if getattr(self, "_student_train", None) is None:
            self._student_train = load_splits(data_files={"train": path})["train"]
        return self._student_train

    def validation(self, max_samples: int | None = None) -> Dataset | None:
        """The validation split, or None when the data has none.

        Args:
            max_samples: keep only its first `max_samples` rows (None or 0: all of them).
        """
        if self.args.validation_split not in self.splits():
            return None
        val = self.splits()[self.args.validation_split]
        return val.select(range(min(max_samples, len(val)))) if max_samples else val

    def text_column(self) -> str:
        """The name of the training data's text column: `text_column` when set, else the first of the usual names
        (see `text_column_of`).
        """
        return text_column_of(self.train(), self.args.text_column)

    def lm_format(self, ds: Dataset | None = None) -> Any:
        """Causal LMs: the format of `ds` (default: the training data), decided by
        `hf_distill.core.lm_data.detect_lm_format` as in `DistillationTrainer`; None for other tasks.

        Args:
            ds: the rows to look at; None for `train()`.

        Returns:
            The detected `LMFormat`, or None when the task is not causal language modelling.
        """
        from .lm_data import detect_lm_format
        from .tasks import get_task

        task = get_task(self.args.task)
        if not (task.per_token and task.shift):
            return None
        try:  # the run's text column (text/sentence/content/...), when there is one
            column = text_column_of(self.train(), self.args.text_column)
        except ValueError:
            column = self.args.text_column
        return detect_lm_format(self.train() if ds is None else ds, column)

    def texts(self, ds: Dataset, tokenizer: Any = None) -> list[str]:
        """The rows as plain text, for what reads text (tokenizer training, trimming, calibration, evaluation):
        the text column; for causal-LM prompt(-completion) rows prompt + completion; conversations rendered with
        `tokenizer`'s chat template.

        Args:
            ds: the rows.
            tokenizer: renders conversational rows with its chat template; unused for other formats.

        Returns:
            One string per row (rows whose text is not a string are dropped).

        Raises:
            ValueError: conversational rows and a tokenizer without a chat template.
        """
        fmt = self.lm_format(ds)
        if fmt is None or fmt.kind in ("text", "tokenized"):
            return [t for t in ds[self.text_column()] if isinstance(t, str)]
        if fmt.conversational:
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(
                    f"{fmt} rows are rendered with the tokenizer's chat template, and it has none: give "
                    "a tokenizer with a chat_template"
                )
            if fmt.kind == "messages":
                conversations = ds["messages"]
            else:
                completions = ds["completion"] if fmt.kind == "prompt-completion" else [[] for _ in range(len(ds))]
                conversations = [p + c for p, c in zip(ds["prompt"], completions)]
            return [
                tokenizer.apply_chat_template(
                    m, tokenize=False, add_generation_prompt=not m or m[-1]["role"] != "assistant"
                )
                for m in conversations
            ]
        if fmt.kind == "prompt-only":
            return list(ds["prompt"])
        return [p + c for p, c in zip(ds["prompt"], ds["completion"])]

    def label_names(self) -> list[str]:
        """The class names of the run's data, index = label id (see `data_label_names`), read from the whole training
        split: a class seen only in the selection rows is still one of the classes.
        """
        return data_label_names(self.splits()[self.args.train_split], self.args.label_column, self.args.class_names)

    def fingerprint(self) -> dict[str, str]:
        """What identifies the data's contents: SHA-256 of local files, else `datasets`' fingerprint per split.

        Recorded in the run settings, so a file edited in place after a finished stage is noticed (paths alone
        would not change).
        """
        files = self.files()
        if not files and self.args.dataset and os.path.isfile(self.args.dataset):
            files = {"train": self.args.dataset}
        student = getattr(self.args, "student_train_file", None)
        extra = {"student_train": file_sha256(student)} if student and os.path.isfile(student) else {}
        if files:
            return {**{split: file_sha256(path) for split, path in sorted(files.items())}, **extra}
        return {**{name: split._fingerprint for name, split in sorted(self.splits().items())}, **extra}

    def training_rows(self) -> tuple[Dataset, Dataset | None]:
        """Labelled rows, and (classification) transfer rows whose labels are not used; shuffled with the seed."""
        train = self.train().shuffle(seed=self.seed)
        n_lab = len(train) if self.args.num_labelled is None else min(self.args.num_labelled, len(train))
        n_tr = min(self.args.num_transfer, len(train) - n_lab)
        labelled = train.select(range(n_lab))
        if not self.classification or not n_tr:
            return labelled, None
        return labelled, train.select(range(n_lab, n_lab + n_tr))

    def student_rows(self, names: list[str] | None) -> Dataset:
        """Labelled rows first, then transfer rows with label -1 (classification: labels as ids of `names`)."""
        from datasets import concatenate_datasets

        labelled, transfer = self.training_rows()
        if not self.classification:
            return labelled
        col = self.args.label_column
        labelled = to_label_ids(labelled, col, names)
        if transfer is not None:
            labelled = concatenate_datasets([labelled, to_label_ids(transfer, col, names, unlabelled=True)])
        return labelled

    def tokenize(self, ds: Dataset, tokenizer: Any, max_completion_length: int | None = None) -> Dataset:
        """Drop empty texts, tokenize (truncated to max_length), keep only model inputs and ``label``.

        Causal-LM prompt(-completion) and conversational rows become prompt-completion rows
        (`hf_distill.core.lm_data.prepare_lm_dataset`, as `DistillationTrainer` makes them).

        Args:
            ds: the rows to tokenize.
            tokenizer: the tokenizer of the model the rows are for.
            max_completion_length: prompt-completion rows: the most completion tokens kept (None: no limit beyond
                `max_length`).

        Returns:
            The tokenized data set.
        """
        fmt = self.lm_format(ds)
        if fmt is not None and fmt.kind not in ("text", "tokenized"):
            from .lm_data import prepare_lm_dataset

            return prepare_lm_dataset(
                ds, tokenizer, max_length=self.args.max_length, max_completion_length=max_completion_length, fmt=fmt
            )
        text, max_length = self.text_column(), self.args.max_length
        ds = ds.filter(lambda r: isinstance(r[text], str) and r[text].strip() != "")
        keep = {"label"} if self.classification else set()
        remove = [c for c in ds.column_names if c not in keep]
        return ds.map(
            lambda b: tokenizer(b[text], truncation=True, max_length=max_length), batched=True, remove_columns=remove
        )
