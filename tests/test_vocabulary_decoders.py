"""trim_vocabulary for the tokenizers of Llama-layout decoders: byte-level BPE behind other pre-tokenizer regexes
(Llama 3, Qwen2) and SentencePiece BPE with byte fallback (Llama 2, Mistral), each built here from a small corpus.
On the trimming corpus the encodings and the logits stay the teacher's; other text falls back to bytes."""

import copy

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from hf_distill.students.blocks import student_from_teacher
from hf_distill.students.vocabulary import trim_vocabulary
from tests.tiny_decoders import TEXTS, TOKENIZERS, decoder, decoder_for

CORPUS = TEXTS[:4] + ["the wolf ate the grandmother and waited in her bed", "hansel and gretel found a house"]
UNSEEN = "Zebras quietly juggle 4096 xylophones — ĳ 🐺 ∑"


@pytest.fixture(scope="module")
def tokenizers():
    return {name: build() for name, build in TOKENIZERS.items()}


@pytest.mark.parametrize(
    ("family", "kind"),
    [
        ("llama", "llama3"),
        ("gemma3", "llama3"),
        ("qwen2", "qwen2"),
        ("qwen3", "qwen2"),
        ("mistral", "sentencepiece"),
        ("llama-tied", "sentencepiece"),
        ("gemma", "sentencepiece"),
        ("phi3", "sentencepiece"),
    ],
)
def test_trimming_keeps_encodings_and_logits_on_the_corpus(family, kind, tokenizers, tmp_path):
    tok = tokenizers[kind]
    teacher = decoder(
        family,
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    student = student_from_teacher(teacher, layers=[0, 3]).eval()
    before = copy.deepcopy(student)
    tied = student.lm_head.weight is student.get_input_embeddings().weight
    trimmed, new_tok = trim_vocabulary(student, copy.deepcopy(tok), CORPUS, min_corpus_tokens=1)
    kept = trimmed.config.vocabulary_kept_ids
    assert len(new_tok) == len(kept) < len(tok) and trimmed.config.vocab_size == len(kept)
    assert (trimmed.lm_head.weight is trimmed.get_input_embeddings().weight) == tied
    assert type(trimmed.get_input_embeddings()) is type(before.get_input_embeddings())  # Gemma's scaled embeddings
    if before.get_input_embeddings().padding_idx is not None:  # the padding row follows the renumbering
        assert trimmed.get_input_embeddings().padding_idx == trimmed.config.pad_token_id == kept.index(tok.pad_token_id)
    for text in CORPUS:
        ids = tok(text)["input_ids"]
        new_ids = new_tok(text)["input_ids"]
        assert [kept[i] for i in new_ids] == ids, text
        with torch.no_grad():
            expected = before(torch.tensor([ids])).logits[..., kept]
            assert torch.allclose(trimmed(torch.tensor([new_ids])).logits, expected, atol=1e-5), text
    # Other text falls back to bytes: never unknown, and it decodes to itself.
    unseen = new_tok(UNSEEN, add_special_tokens=False)["input_ids"]
    assert new_tok.unk_token_id not in unseen or kind == "qwen2"  # Qwen's unk is its <|endoftext|>, never produced
    assert new_tok.decode(unseen) == UNSEEN
    # Saved and loaded as standard files, then generating with a KV cache.
    trimmed.save_pretrained(tmp_path)
    new_tok.save_pretrained(tmp_path)
    again, again_tok = AutoModelForCausalLM.from_pretrained(tmp_path).eval(), AutoTokenizer.from_pretrained(tmp_path)
    assert [again_tok(t)["input_ids"] for t in CORPUS] == [new_tok(t)["input_ids"] for t in CORPUS]
    prompt = torch.tensor([new_tok(CORPUS[0])["input_ids"][:6]])
    with torch.no_grad():
        assert torch.allclose(again(prompt).logits, trimmed(prompt).logits, atol=1e-6)
    out = again.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=again.config.pad_token_id)
    assert out.shape == (1, 11) and int(out.max()) < len(kept)


def test_a_token_built_by_a_later_duplicate_merge_keeps_its_path():
    """Vocabularies converted from tiktoken (Llama 3, Qwen) hold several merges producing one token. Here "abc" is
    produced by ("a", "bc") at rank 3 and by ("ab", "c") at rank 4, but in "abcd" it is built through "ab" (rank 0
    fires first): the trimmed tokenizer must keep "ab" and its merges, or "abcd" would become a + bcd."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    for token in ("ab", "bc", "bcd", "abc", "<|end|>"):
        vocab[token] = len(vocab)
    merges = [("a", "b"), ("b", "c"), ("bc", "d"), ("a", "bc"), ("ab", "c")]
    bpe = Tokenizer(models.BPE(vocab, merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|end|>", pad_token="<|end|>")
    corpus = ["abcd", "bcd"]
    assert tok.convert_ids_to_tokens(tok("abcd")["input_ids"]) == ["abc", "d"]
    model = decoder(
        "llama", vocab_size=len(vocab), pad_token_id=vocab["<|end|>"], bos_token_id=None, eos_token_id=vocab["<|end|>"]
    )
    _, trimmed = trim_vocabulary(model, tok, corpus, min_corpus_tokens=1)
    assert [trimmed.convert_ids_to_tokens(trimmed(t)["input_ids"]) for t in corpus] == [["abc", "d"], ["bcd"]]


def test_other_tokenizers_are_refused_in_one_line(tokenizers):
    no_fallback = TOKENIZERS["sentencepiece"](byte_fallback=False)
    model = decoder("mistral", vocab_size=len(no_fallback))
    with pytest.raises(ValueError) as err:
        trim_vocabulary(model, no_fallback, CORPUS, min_corpus_tokens=1)
    message = str(err.value)
    assert "\n" not in message and "neither byte-level nor falls back to bytes" in message
    assert "byte-level BPE (GPT-2, Llama 3, Qwen)" in message and "byte fallback (Llama 2, Mistral)" in message
    unigram = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], unk_id=0))
    with pytest.raises(ValueError, match=r"^trim_vocabulary supports .* tokenizers; this one is Unigram$"):
        trim_vocabulary(
            decoder("gemma", vocab_size=3),
            PreTrainedTokenizerFast(tokenizer_object=unigram),
            ["a b"],
            min_corpus_tokens=1,
        )


def test_planning_a_llama_student_measures_pruned_and_trimmed_candidates(tokenizers):
    from hf_distill.evaluation.benchmark import BenchmarkSettings
    from hf_distill.pipeline.planning import plan_students

    tok = tokenizers["llama3"]
    teacher = decoder(
        "llama",
        vocab_size=len(tok),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    fast = BenchmarkSettings(batch_size=2, warmup=0, latency_runs=1, throughput_runs=1, max_length=16, threads=1)
    plans = plan_students(
        teacher,
        tok,
        CORPUS,
        layers=[2],
        intermediate_sizes=[None, 32],
        trim=[False, True],
        trimming_texts=CORPUS,
        settings=fast,
        min_corpus_tokens=1,
    )
    assert [p.name for p in plans] == [
        "2/4 layers",
        "2/4 layers, trimmed",
        "2/4 layers, FFN 32",
        "2/4 layers, FFN 32, trimmed",
    ]
    assert plans[3].parameters < plans[2].parameters < plans[0].parameters and plans[1].vocab_size < len(tok)
    assert plans[1].trim_changed_token_share == 0  # the timing texts are the trimming corpus


@pytest.mark.parametrize(("family", "kind"), [("llama", "llama3"), ("llama-tied", "sentencepiece"), ("gpt2", None)])
def test_teacher_on_kept_ids_is_trainings_renormalisation(family, kind, tokenizers, bpe_tokenizer):
    """The teacher evaluation compares a trimmed student with: training's map (the student's ids to the teacher's,
    the teacher's logits restricted to the kept ids), as one model that shares the teacher's weights and generates."""
    from hf_distill.students.vocabulary import restrict_to_kept_ids, teacher_on_kept_ids, to_teacher_ids
    from tests import tiny

    tok = bpe_tokenizer if kind is None else tokenizers[kind]
    if family == "gpt2":
        teacher = tiny.gpt2(tok, num_layers=2).eval()
    else:
        teacher = decoder_for(family, tok)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, new_tok = trim_vocabulary(
        student_from_teacher(teacher, num_layers=1), copy.deepcopy(tok), CORPUS, min_corpus_tokens=1
    )
    kept = student.config.vocabulary_kept_ids
    view = teacher_on_kept_ids(teacher, kept)
    n = len(new_tok(CORPUS[4])["input_ids"])
    ids = torch.tensor([new_tok(CORPUS[4])["input_ids"], new_tok(UNSEEN)["input_ids"][:n]])  # unseen: byte fallback
    with torch.no_grad():
        expected = restrict_to_kept_ids(teacher(to_teacher_ids(ids, kept)).logits, kept)
        got = view(ids).logits
    assert got.shape[-1] == len(kept) < len(tok)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # the body is shared, the teacher untouched; the view generates in the student's ids (EOS renumbered)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert teacher.get_input_embeddings().weight.shape[0] == len(tok)
    body = [p for n, p in teacher.named_parameters() if "layers.0." in n or ".h.0." in n]
    view_body = [p for n, p in view.named_parameters() if "layers.0." in n or ".h.0." in n]
    assert body and all(a is b for a, b in zip(body, view_body))
    if tok.eos_token_id in kept:
        assert view.config.eos_token_id == kept.index(tok.eos_token_id)
    out = view.generate(ids[:1, :4], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert int(out.max()) < len(kept)
