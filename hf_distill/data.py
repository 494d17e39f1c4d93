"""Read training and evaluation data through `datasets`: a Hub id, a local folder, or csv/tsv/json/jsonl/txt files."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset

LOCAL_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}


def _builder_for(path: str) -> tuple[str, dict]:
    suffix = Path(path).suffix.lower()
    if suffix not in LOCAL_FORMATS:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(sorted(LOCAL_FORMATS))}")
    kwargs: dict = {}
    if suffix == ".tsv":
        # TSV corpora such as GLUE contain bare quotes inside sentences; quoting must be off to read them right.
        kwargs = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
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
        if len({_builder_for(p)[0] for p in data_files.values()}) != 1:
            raise ValueError(f"all data files must have the same format, got {sorted(data_files.values())}")
        builder, kwargs = _builder_for(next(iter(data_files.values())))
        return load_dataset(builder, data_files=dict(data_files), **kwargs)
    if not dataset:
        raise ValueError("no data: give `dataset` (a Hub id or local path) or `train_file`/`validation_file`")
    if os.path.isfile(dataset):
        builder, kwargs = _builder_for(dataset)
        return load_dataset(builder, data_files={"train": dataset}, **kwargs)
    return load_dataset(dataset, dataset_config, revision=revision)


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
    raise ValueError(f"label {value!r} is neither an id nor one of the model's labels {sorted(names)}")
