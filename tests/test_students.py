"""student_from_teacher: copied blocks behave exactly like the teacher's, sizes shrink, errors are clear."""

import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from hf_distill.students import select_layers, student_from_teacher
from tests import tiny


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def block_out(block, x):
    out = block(x)
    return out[0] if isinstance(out, tuple) else out


def test_select_layers():
    assert select_layers(6, 3) == [1, 3, 5]
    assert select_layers(6, 2) == [2, 5]
    assert select_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert select_layers(6, 2, "first") == [0, 1]
    assert select_layers(6, 2, "last") == [4, 5]
    with pytest.raises(ValueError, match="choose 1..6"):
        select_layers(6, 7)
    with pytest.raises(ValueError, match="uniform, first, last"):
        select_layers(6, 2, "random")


def test_bert_blocks_copied_exactly(wordpiece_tokenizer):
    teacher = tiny.bert_cls(wordpiece_tokenizer, num_layers=4).eval()
    student = student_from_teacher(teacher, num_layers=2).eval()
    assert type(student) is type(teacher)
    assert student.config.num_hidden_layers == 2 and student.config.distilled_from_layers == [1, 3]
    assert teacher.config.num_hidden_layers == 4  # teacher untouched
    x = torch.randn(2, 5, teacher.config.hidden_size)
    for new, old in enumerate([1, 3]):
        assert torch.equal(block_out(student.bert.encoder.layer[new], x), block_out(teacher.bert.encoder.layer[old], x))
    for name in ("bert.embeddings.word_embeddings.weight", "bert.pooler.dense.weight", "classifier.weight"):
        assert torch.equal(student.state_dict()[name], teacher.state_dict()[name])
    per_block = n_params(teacher.bert.encoder.layer[0])
    assert n_params(teacher) - n_params(student) == 2 * per_block


def test_gpt2_blocks_and_final_norm_copied(bpe_tokenizer):
    teacher = tiny.gpt2(bpe_tokenizer, num_layers=4).eval()
    student = student_from_teacher(teacher, layers=[0, 2, 3]).eval()
    assert student.config.n_layer == 3 and student.config.distilled_from_layers == [0, 2, 3]
    x = torch.randn(1, 6, teacher.config.n_embd)
    for new, old in enumerate([0, 2, 3]):
        assert torch.equal(block_out(student.transformer.h[new], x), block_out(teacher.transformer.h[old], x))
    assert torch.equal(student.transformer.ln_f.weight, teacher.transformer.ln_f.weight)
    # tied LM head still tied to the copied embeddings
    assert student.lm_head.weight.data_ptr() == student.transformer.wte.weight.data_ptr()
    assert n_params(teacher) - n_params(student) == n_params(teacher.transformer.h[0])
    # keeping every block gives the teacher's function
    full = student_from_teacher(teacher, num_layers=4).eval()
    ids = torch.tensor([[3, 4, 5, 6]])
    assert torch.allclose(full(ids).logits, teacher(ids).logits, atol=1e-6)


def test_bad_layers_and_unsupported_architecture(wordpiece_tokenizer):
    teacher = tiny.bert_cls(wordpiece_tokenizer, num_layers=4)
    with pytest.raises(ValueError, match="distinct, increasing"):
        student_from_teacher(teacher, layers=[3, 1])
    with pytest.raises(ValueError, match="0..3"):
        student_from_teacher(teacher, layers=[0, 4])
    with pytest.raises(ValueError, match="either num_layers or layers"):
        student_from_teacher(teacher, num_layers=2, layers=[0, 1])
    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=16, hidden_dim=32, n_layers=2, n_heads=2))
    with pytest.raises(ValueError, match="BERT-family encoders .* GPT-2-family decoders"):
        student_from_teacher(distil, num_layers=1)
