"""student_from_teacher: copied blocks behave exactly like the teacher's, sizes shrink, errors are clear."""

import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from hf_distill.students.blocks import select_layers, student_from_teacher
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
    distil = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=50, dim=16, hidden_dim=32, n_layers=2, n_heads=2)
    )
    with pytest.raises(ValueError, match="BERT-family encoders .* GPT-2-family decoders"):
        student_from_teacher(distil, num_layers=1)


def test_non_integer_layers_are_refused(wordpiece_tokenizer):
    teacher = tiny.bert_cls(wordpiece_tokenizer, num_layers=4)
    with pytest.raises(ValueError, match="must be integers"):
        student_from_teacher(teacher, layers=[1.7])
    with pytest.raises(ValueError, match="list of 0-based block indices"):
        student_from_teacher(teacher, layers="13")
    with pytest.raises(ValueError, match="must be integers"):
        student_from_teacher(teacher, layers=[True, 2])
    with pytest.raises(ValueError, match="whole number"):
        student_from_teacher(teacher, num_layers=2.0)
    assert student_from_teacher(teacher, layers=(torch.tensor(0), 2)).config.distilled_from_layers == [0, 2]


def _calibration(tokenizer):
    return tokenizer(tiny.CORPUS[:10], padding=True, return_tensors="pt")


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_ffn_pruning_keeping_all_neurons_is_the_unpruned_student(kind, wordpiece_tokenizer, bpe_tokenizer):
    tok = wordpiece_tokenizer if kind == "bert" else bpe_tokenizer
    teacher = (tiny.bert_cls(tok, num_layers=4) if kind == "bert" else tiny.gpt2(tok, num_layers=4)).eval()
    width = 64 if kind == "bert" else 4 * 32
    plain = student_from_teacher(teacher, num_layers=2).eval()
    full = student_from_teacher(teacher, num_layers=2, intermediate_size=width, calibration=_calibration(tok)).eval()
    batch = _calibration(tok)
    with torch.no_grad():
        assert torch.equal(plain(**batch).logits, full(**batch).logits)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_ffn_pruning_lowers_parameters_by_the_computed_amount(kind, wordpiece_tokenizer, bpe_tokenizer, tmp_path):
    tok = wordpiece_tokenizer if kind == "bert" else bpe_tokenizer
    teacher = (tiny.bert_cls(tok, num_layers=4) if kind == "bert" else tiny.gpt2(tok, num_layers=4)).eval()
    hidden, width, keep = 32, (64 if kind == "bert" else 128), 16
    plain = student_from_teacher(teacher, num_layers=2)
    pruned = student_from_teacher(teacher, num_layers=2, intermediate_size=keep, calibration=_calibration(tok)).eval()
    # per block: up weight + up bias + down weight lose (width - keep) neurons each
    assert n_params(plain) - n_params(pruned) == 2 * (width - keep) * (2 * hidden + 1)
    assert pruned.config.pruned_from_intermediate_size == width
    # the kept neurons are the most active ones, and the saved student reloads as a standard model
    from hf_distill.students.blocks import ffn_importance

    scores = ffn_importance(teacher, _calibration(tok))[1]
    up = (
        pruned.bert.encoder.layer[0].intermediate.dense.weight
        if kind == "bert"
        else pruned.transformer.h[0].mlp.c_fc.weight
    )
    t_up = (
        teacher.bert.encoder.layer[1].intermediate.dense.weight
        if kind == "bert"
        else teacher.transformer.h[1].mlp.c_fc.weight
    )
    top = scores.topk(keep).indices.sort().values
    assert torch.equal(up, t_up[top] if kind == "bert" else t_up[:, top])
    pruned.save_pretrained(tmp_path)
    again = type(pruned).from_pretrained(tmp_path).eval()
    batch = _calibration(tok)
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, pruned(**batch).logits)


def test_width_pruning_errors(wordpiece_tokenizer):
    teacher = tiny.bert_cls(wordpiece_tokenizer, num_layers=4)
    with pytest.raises(ValueError, match="needs calibration"):
        student_from_teacher(teacher, num_layers=2, intermediate_size=16)
    with pytest.raises(ValueError, match="choose 1..64"):
        student_from_teacher(teacher, num_layers=2, intermediate_size=65, calibration=_calibration(wordpiece_tokenizer))
    with pytest.raises(ValueError, match="intermediate_size= instead"):
        student_from_teacher(teacher, num_layers=2, num_attention_heads=2)
