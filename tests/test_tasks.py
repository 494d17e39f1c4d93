"""The Task registry: lookup by name and pipeline tag, detection, and the one valid-position rule."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig

from hf_distill.core import losses
from hf_distill.core.tasks import CAUSAL_LM, MASKED_LM, SEQUENCE_CLASSIFICATION, all_tasks, detect_task, get_task
from tests import tiny


def test_lookup_by_name_tag_or_task():
    for task in all_tasks():
        assert get_task(task.name) is task and get_task(task.pipeline_tag) is task and get_task(task) is task
    assert get_task("text-generation").lower_is_better and get_task("text-generation").primary_metric == "perplexity"
    assert not get_task("sequence-classification").lower_is_better
    assert get_task("fill-mask").auto_class.__name__ == "AutoModelForMaskedLM"
    with pytest.raises(ValueError, match="unknown task 'translation'.*causal-lm \\(text-generation\\)"):
        get_task("translation")


def test_detect_task_from_models_and_configs(wordpiece_tokenizer, bpe_tokenizer):
    assert detect_task(tiny.bert_cls(wordpiece_tokenizer, 1)) is SEQUENCE_CLASSIFICATION
    assert detect_task(tiny.bert_mlm(wordpiece_tokenizer, 1)) is MASKED_LM
    assert detect_task(tiny.gpt2(bpe_tokenizer, 1)) is CAUSAL_LM
    assert detect_task(BertConfig(architectures=["BertLMHeadModel"])) is CAUSAL_LM  # only in the causal mapping
    with pytest.raises(ValueError, match="cannot tell the task"):
        detect_task(torch.nn.Linear(2, 2))


def test_causal_valid_positions_are_shifted_labelled_and_real_on_both_sides():
    ids = torch.tensor([[5, 6, 7, 0], [0, 0, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])
    labels = torch.tensor([[5, -100, 7, -100], [-100, -100, 8, 9]])
    valid = CAUSAL_LM.valid_mask(labels, mask, ids)
    # row 0: target 6 is -100; row 1 (left padding): token 8 is "predicted" from padding, so it does not count
    assert valid.tolist() == [[False, True, False], [False, False, True]]
    assert torch.equal(valid, losses.causal_lm_valid_mask(labels, mask, ids))
    assert CAUSAL_LM.targets(ids)[valid].tolist() == [7, 9]
    logits = torch.randn(2, 4, 3)
    assert torch.equal(CAUSAL_LM.at_valid(logits, valid), logits[:, :-1][valid])
    assert CAUSAL_LM.count_items(labels, mask, ids) == (2, 2)


def test_classification_and_masked_rules():
    ids = torch.tensor([[5, 6, 7], [8, 9, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert SEQUENCE_CLASSIFICATION.valid_mask(None, mask, ids).tolist() == [True, True]
    assert SEQUENCE_CLASSIFICATION.count_items(torch.tensor([1, -1]), mask, ids) == (1, 2)  # unlabelled: KD only
    mlm_labels = torch.tensor([[-100, 6, -100], [8, -100, -100]])
    assert MASKED_LM.valid_mask(mlm_labels, mask, ids).tolist() == [[False, True, False], [True, False, False]]
    assert not MASKED_LM.caches_soft_targets and CAUSAL_LM.caches_soft_targets
    logits = torch.randn(2, 4)
    flat_logits, flat_labels = SEQUENCE_CLASSIFICATION.ce_targets(
        logits, torch.tensor([1, -1]), torch.ones(2, dtype=torch.bool)
    )
    assert flat_labels.tolist() == [1, -100] and flat_logits is logits
