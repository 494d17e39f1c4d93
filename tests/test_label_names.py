"""Two label-name functions, named for what they read: a data set's class names and a model config's output names."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from datasets import Dataset
from transformers import BertConfig

from hf_distill.core.data import data_label_names
from hf_distill.students.compatibility import config_label_names, label_permutation


def test_data_label_names_reads_the_labels_of_the_data():
    names = Dataset.from_dict({"label": ["pos", "neg", None, "pos", "-1"]})
    assert data_label_names(names, "label") == ["neg", "pos"]  # sorted; None and -1 are unlabelled
    ids = Dataset.from_dict({"label": [2, 0, -1]})
    assert data_label_names(ids, "label") == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert data_label_names(ids, "label", "a, b, c") == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"not in class_names"):
        data_label_names(ids, "label", ["a", "b"])


def test_config_label_names_reads_the_outputs_of_the_model():
    config = BertConfig(num_labels=3, id2label={0: "neg", 1: "neutral", 2: "pos"})
    assert config_label_names(config) == ["neg", "neutral", "pos"]
    # ids as JSON spells them (strings), and outputs the config names not: LABEL_i, as transformers does
    assert config_label_names(SimpleNamespace(num_labels=3, id2label={"0": "neg", "2": 5})) == ["neg", "LABEL_1", "5"]
    assert config_label_names(SimpleNamespace(num_labels=2, id2label=None)) == ["LABEL_0", "LABEL_1"]


def test_the_evaluation_and_the_label_check_read_a_config_the_same_way():
    """One definition: the label check (by name) and the evaluation examples' labels agree on a permuted student."""
    teacher = BertConfig(num_labels=2, id2label={0: "neg", 1: "pos"})
    student = BertConfig(num_labels=2, id2label={0: "pos", 1: "neg"})
    perm = label_permutation(teacher, student)
    assert [config_label_names(student)[i] for i in perm] == config_label_names(teacher)
