"""student_from_teacher on Llama-layout decoders (Llama, Mistral, Qwen2/3, Gemma 1-3, SmolLM3, Phi-3) and the other
rows of the layout table: copied blocks and pruned FFNs compute what the teacher computes, per-layer attention kinds
follow the kept blocks, students generate with a KV cache, and what is not supported is refused in one line."""

import copy

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

from hf_distill.students.blocks import LAYOUTS, SUPPORTED, ffn_width, find_blocks, layout_of, student_from_teacher
from tests.tiny_decoders import FAMILIES, VOCAB, decoder

torch.manual_seed(0)
IDS = torch.randint(3, VOCAB, (2, 11))  # longer than the sliding window (4): full and sliding blocks differ
MASK = torch.ones_like(IDS)
MASK[1, :3] = 0  # one left-padded row
CALIBRATION = {"input_ids": torch.randint(3, VOCAB, (4, 9)), "attention_mask": torch.ones(4, 9, dtype=torch.long)}


def logits(model, ids=IDS, mask=MASK):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def skipping(teacher, dropped):
    """The teacher with the blocks `dropped` replaced by the identity (their output is their input)."""
    _, blocks = find_blocks(teacher)

    def identity(_module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return [blocks[i].register_forward_hook(identity, with_kwargs=True) for i in dropped]


@pytest.mark.parametrize("family", FAMILIES)
def test_keeping_every_block_and_every_neuron_is_the_teacher(family):
    teacher = decoder(family)
    assert layout_of(teacher).family in SUPPORTED
    every_block = student_from_teacher(teacher, num_layers=4).eval()
    assert torch.allclose(logits(every_block), logits(teacher), atol=1e-6)
    width = ffn_width(teacher)
    every_neuron = student_from_teacher(teacher, num_layers=4, intermediate_size=width, calibration=CALIBRATION).eval()
    assert torch.allclose(logits(every_neuron), logits(teacher), atol=1e-6)
    tied = teacher.lm_head.weight is teacher.get_input_embeddings().weight
    assert (every_neuron.lm_head.weight is every_neuron.get_input_embeddings().weight) == tied


@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_ffn_is_the_teacher_without_the_dropped_neurons(family):
    """Gate and up rows (both halves of Phi-3's fused gate_up_proj) and down columns are one neuron: the pruned
    student equals the teacher with the dropped neurons' down-projection columns zeroed."""
    teacher = decoder(family)
    student = student_from_teacher(teacher, num_layers=4, intermediate_size=40, calibration=CALIBRATION).eval()
    assert student.config.intermediate_size == 40 and student.config.pruned_from_intermediate_size == 64
    assert ffn_width(student) == 40
    reference = copy.deepcopy(teacher)
    layout = layout_of(teacher)
    for t_block, s_block in zip(find_blocks(reference)[1], find_blocks(student)[1]):
        down = t_block.get_submodule(layout.ffn_out).weight
        kept_columns = {tuple(c.tolist()) for c in s_block.get_submodule(layout.ffn_out).weight.T}
        with torch.no_grad():
            for j in range(down.shape[1]):
                if tuple(down[:, j].tolist()) not in kept_columns:
                    down[:, j] = 0
    assert torch.allclose(logits(student), logits(reference), atol=1e-5)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_kept_blocks_keep_their_attention_kind_and_generate_with_a_cache(family, tmp_path):
    teacher = decoder(family)
    student = student_from_teacher(teacher, layers=[1, 2]).eval()
    assert student.config.num_hidden_layers == 2 and student.config.distilled_from_layers == [1, 2]
    for name in layout_of(teacher).per_layer:
        if getattr(teacher.config, name, None) is not None:
            assert getattr(student.config, name) == [getattr(teacher.config, name)[i] for i in (1, 2)]
    assert student.config.num_key_value_heads == 2
    handles = skipping(teacher, dropped=[0, 3])
    try:
        expected = logits(teacher)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.allclose(logits(student), expected, atol=1e-5)
    # Saved and loaded as a standard model: the per-layer lists travel in config.json.
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.allclose(logits(reloaded), expected, atol=1e-5)
    prompt = IDS[:1, :5]
    cached = student.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True, pad_token_id=0)
    uncached = student.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=0)
    assert cached.shape == (1, 13) and torch.equal(cached, uncached)


@pytest.mark.parametrize("model_type", ["mixtral", "qwen3_moe", "gpt_neo"])
def test_unsupported_decoders_are_refused_in_one_line_naming_the_families(model_type):
    sizes = {"gpt_neo": dict(hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]])}
    config = AutoConfig.for_model(
        model_type,
        vocab_size=VOCAB,
        **sizes.get(
            model_type,
            dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
            ),
        ),
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(ValueError) as err:
        student_from_teacher(model, num_layers=1)
    message = str(err.value)
    assert "\n" not in message and f"model_type {model_type!r}" in message
    assert "Llama-family decoders (llama, mistral, qwen2, qwen3, gemma" in message
    assert "Phi-3 decoders (phi3)" in message


def test_every_model_type_of_the_table_is_tested_here():
    tested = {FAMILIES[f][0] for f in FAMILIES} | {"gptj"} | set(ENCODERS)
    assert {t for layout in LAYOUTS for t in layout.model_types} - {"gpt2", "bert"} == tested


ENCODERS = {"roberta": {}, "xlm-roberta": {}, "electra": {"embedding_size": 32}, "camembert": {}}


@pytest.mark.parametrize("model_type", ENCODERS)
def test_bert_family_rows_copy_and_prune_exactly(model_type):
    config = AutoConfig.for_model(
        model_type,
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        **ENCODERS[model_type],
    )
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    ids = IDS + (IDS < 3) * 3
    full = student_from_teacher(teacher, num_layers=4, intermediate_size=64, calibration=CALIBRATION).eval()
    with torch.no_grad():
        assert torch.allclose(full(input_ids=ids).logits, teacher(input_ids=ids).logits, atol=1e-6)
    assert ffn_width(student_from_teacher(teacher, layers=[0, 3], intermediate_size=16, calibration=CALIBRATION)) == 16


def test_gptj_blocks_and_ffn():
    config = AutoConfig.for_model(
        "gptj",
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=4,
        n_head=4,
        rotary_dim=4,
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    teacher = AutoModelForCausalLM.from_config(config).eval()
    full = student_from_teacher(
        teacher, num_layers=4, intermediate_size=ffn_width(teacher), calibration=CALIBRATION
    ).eval()
    assert torch.allclose(logits(full), logits(teacher), atol=1e-6)
    small = student_from_teacher(teacher, layers=[0, 3], intermediate_size=32, calibration=CALIBRATION)
    assert small.config.n_layer == 2 and small.config.n_inner == 32 and ffn_width(small) == 32
