"""The texts (and labels) an evaluation runs on, read through `datasets` and `hf_distill.data`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.data import LOCAL_FORMATS, load_splits, text_column_of

LABEL_COLUMNS = ("label", "labels")


@dataclass
class EvalData:
    """Texts (and labels, for classification) to evaluate on, with where they came from."""

    texts: list[str]
    labels: list[Any] | None = None
    dataset: str = "custom"
    split: str | None = None
    text_column: str | None = None
    label_column: str | None = None


def load_texts(
    dataset: str | os.PathLike,
    *,
    split: str | None = None,
    dataset_config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_samples: int | None = None,
) -> EvalData:
    """Read an evaluation set through `datasets`: a local csv/tsv/json/jsonl/txt file or a Hub id.

    Args:
        dataset: a local file or a Hub dataset id.
        split: split of a Hub dataset (default "validation").
        dataset_config: Hub dataset configuration.
        text_column: the text column (default: `hf_distill.data.text_column_of`'s choice).
        label_column: the label column (default "label"/"labels" when present).
        max_samples: keep the first N non-empty rows (N >= 1); None keeps all.

    Raises:
        ValueError: a bad `max_samples`, a missing column, or no text at all.
        FileNotFoundError: a local file that does not exist.
    """
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(
            f"max_samples={max_samples!r} is invalid: give a whole number >= 1, or leave it unset for all rows"
        )
    path = Path(dataset)
    if path.is_file():
        ds = load_splits(data_files={"eval": str(path)})["eval"]
        name = str(path)
    elif path.suffix.lower() in LOCAL_FORMATS and not path.exists():
        raise FileNotFoundError(f"evaluation data {str(path)!r} not found: give an existing file or a Hub dataset id")
    else:
        import datasets

        split = split or "validation"
        ds = datasets.load_dataset(str(dataset), dataset_config, split=split)
        name = str(dataset)
    columns = list(ds.column_names)
    text_column = text_column_of(ds, text_column)
    if label_column is None:
        label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
    elif label_column not in columns:
        raise ValueError(f"label column {label_column!r} not found; the data has columns {columns}")
    texts, labels = [], []
    for row in ds:
        text = row[text_column]
        if text is None or not str(text).strip():
            continue  # blank lines of a .txt file carry nothing to score
        texts.append(str(text).strip())
        if label_column:
            labels.append(row[label_column])
        if max_samples is not None and len(texts) >= max_samples:
            break
    if not texts:
        raise ValueError(f"no non-empty text in {name}")
    return EvalData(texts, labels if label_column else None, name, split, text_column, label_column)
