"""trim_vocabulary: the trimming corpus encodes and predicts exactly as before; other text still tokenizes; LM KD
with a trimmed student is KD renormalised over the kept ids."""

import copy
import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, PreTrainedTokenizerFast

from hf_distill.core import losses
from hf_distill.students.vocabulary import (
    MIN_CORPUS_TOKENS,
    remap_ids,
    restrict_to_kept_ids,
    teacher_logits_for_student,
    to_teacher_ids,
    trim_vocabulary,
    trimming_change,
)
from tests import tiny

# A corpus that uses part of the tiny tokenizers' vocabulary (they were trained on all of tiny.CORPUS).
CORPUS = [
    "the movie was wonderful and the actors were great",
    "a dull , boring film with a terrible plot",
    "once upon a time there lived a king",
]
# The test corpora are a few sentences: below the default minimum, accepted knowingly.
SMALL = {"min_corpus_tokens": 10}
UNSEEN = "hansel and gretel found a house made of bread"


def _encodings_equal(original, trimmed, kept, texts):
    before = original(texts)["input_ids"]
    after = trimmed(texts)["input_ids"]
    return remap_ids(before, kept) == after


def test_wordpiece_classifier_trim_keeps_encodings_and_logits(wordpiece_tokenizer, tmp_path):
    teacher = tiny.bert_cls(wordpiece_tokenizer).eval()
    model, tok = trim_vocabulary(copy.deepcopy(teacher), wordpiece_tokenizer, CORPUS, **SMALL)
    kept = model.config.vocabulary_kept_ids
    assert model.config.trimmed_from_vocab_size == len(wordpiece_tokenizer)
    assert len(tok) == len(kept) == model.config.vocab_size < len(wordpiece_tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(kept)
    assert _encodings_equal(wordpiece_tokenizer, tok, kept, CORPUS)
    # special tokens kept, their ids renumbered in tokenizer and config
    for name in ("pad_token", "cls_token", "sep_token", "unk_token", "mask_token"):
        assert getattr(tok, name) == getattr(wordpiece_tokenizer, name)
        assert kept[getattr(tok, f"{name}_id")] == getattr(wordpiece_tokenizer, f"{name}_id")
    assert model.config.pad_token_id == tok.pad_token_id
    a = wordpiece_tokenizer(CORPUS, padding=True, return_tensors="pt")
    b = tok(CORPUS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(teacher(**a).logits, model(**b).logits)
    # save / load: the same tokenizer and model
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = type(model).from_pretrained(tmp_path).eval()
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    assert again.config.vocabulary_kept_ids == kept
    assert tok2(CORPUS)["input_ids"] == tok(CORPUS)["input_ids"]
    with torch.no_grad():
        assert torch.equal(again(**b).logits, model(**b).logits)


def test_wordpiece_unseen_words_fall_back_to_shorter_pieces(wordpiece_tokenizer):
    _, tok = trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, CORPUS, **SMALL)
    pieces = tok.tokenize(UNSEEN)
    # every character of UNSEEN occurs in CORPUS: its words split into shorter kept pieces, never [UNK]
    assert "[UNK]" not in pieces and len(pieces) > len(wordpiece_tokenizer.tokenize(UNSEEN))
    assert tok.convert_tokens_to_string(pieces) == UNSEEN
    # a character absent from the corpus ('q' is in the original vocabulary, not in CORPUS) has no kept piece
    assert "q" in wordpiece_tokenizer.get_vocab() and tok.tokenize("quiet") == ["[UNK]"]


def test_mlm_head_and_bias_sliced_and_tied_after_save_load(wordpiece_tokenizer, tmp_path):
    teacher = tiny.bert_mlm(wordpiece_tokenizer).eval()
    with torch.no_grad():
        teacher.cls.predictions.bias.normal_()  # a non-zero bias, so slicing it is checked
    model, tok = trim_vocabulary(copy.deepcopy(teacher), wordpiece_tokenizer, CORPUS, **SMALL)
    kept = model.config.vocabulary_kept_ids
    a = wordpiece_tokenizer(CORPUS, padding=True, return_tensors="pt")
    b = tok(CORPUS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(teacher(**a).logits[..., kept], model(**b).logits, atol=1e-6)
    model.save_pretrained(tmp_path)
    again = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert again.cls.predictions.decoder.weight.data_ptr() == again.bert.embeddings.word_embeddings.weight.data_ptr()
    assert torch.equal(again.cls.predictions.decoder.bias, teacher.cls.predictions.bias[kept])
    with torch.no_grad():
        assert torch.allclose(again.eval()(**b).logits, model(**b).logits, atol=1e-6)


def test_bpe_trim_keeps_encodings_merges_and_lm_logits(bpe_tokenizer, tmp_path):
    teacher = tiny.gpt2(bpe_tokenizer).eval()
    model, tok = trim_vocabulary(copy.deepcopy(teacher), bpe_tokenizer, CORPUS, **SMALL)
    kept = model.config.vocabulary_kept_ids
    assert len(tok) == len(kept) < len(bpe_tokenizer)
    # the 256 byte symbols stay, so any text still encodes (no unknown token) and decodes back
    vocab = tok.get_vocab()
    assert all(c in vocab for c in pre_tokenizers.ByteLevel.alphabet())
    assert _encodings_equal(bpe_tokenizer, tok, kept, CORPUS)
    ids = tok(UNSEEN)["input_ids"]
    assert tok.decode(ids) == UNSEEN and len(ids) >= len(bpe_tokenizer(UNSEEN)["input_ids"])
    # merges: a subset of the original, in the original order
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    original = json.loads(bpe_tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    positions = [original.index(m) for m in merges]
    assert positions == sorted(positions) and len(merges) < len(original)
    a = torch.tensor(bpe_tokenizer(CORPUS[0])["input_ids"]).unsqueeze(0)
    b = torch.tensor(tok(CORPUS[0])["input_ids"]).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(teacher(a).logits[..., kept], model(b).logits, atol=1e-6)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert model.config.eos_token_id == tok.eos_token_id and kept[tok.eos_token_id] == bpe_tokenizer.eos_token_id
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert again.lm_head.weight.data_ptr() == again.transformer.wte.weight.data_ptr()
    assert AutoTokenizer.from_pretrained(tmp_path)(CORPUS)["input_ids"] == tok(CORPUS)["input_ids"]
    with torch.no_grad():
        assert torch.allclose(again(b).logits, model(b).logits, atol=1e-6)


def test_min_frequency_and_keep_tokens(wordpiece_tokenizer):
    _, all_used = trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, CORPUS, **SMALL)
    _, frequent = trim_vocabulary(
        tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, CORPUS, min_frequency=2, keep_tokens=["queen"], **SMALL
    )
    assert "the" in frequent.get_vocab() and "dull" not in frequent.get_vocab() and "dull" in all_used.get_vocab()
    assert "queen" in frequent.get_vocab() and "queen" not in all_used.get_vocab()


def test_clear_errors(wordpiece_tokenizer, bpe_tokenizer):
    model = tiny.bert_cls(wordpiece_tokenizer)
    with pytest.raises(ValueError, match="not one string"):
        trim_vocabulary(model, wordpiece_tokenizer, "the movie")
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        trim_vocabulary(model, wordpiece_tokenizer, CORPUS, keep_tokens=["notaword"], **SMALL)
    unigram = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], unk_id=0))
    uni = PreTrainedTokenizerFast(tokenizer_object=unigram, unk_token="<unk>")
    with pytest.raises(ValueError, match="this one is Unigram"):
        trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), uni, ["a b"])
    plain_bpe = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    plain_bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match="neither byte-level nor falls back to bytes"):
        trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), PreTrainedTokenizerFast(tokenizer_object=plain_bpe), ["ab"])
    trimmed, tok = trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, CORPUS, **SMALL)
    with pytest.raises(ValueError, match="trimmed already"):
        trim_vocabulary(trimmed, tok, CORPUS, **SMALL)
    with pytest.raises(ValueError, match="do not belong together"):
        trim_vocabulary(tiny.gpt2(bpe_tokenizer, vocab_size=10), bpe_tokenizer, CORPUS, **SMALL)
    with pytest.raises(ValueError, match="dropped by the vocabulary trimming"):
        remap_ids(wordpiece_tokenizer(UNSEEN)["input_ids"], trimmed.config.vocabulary_kept_ids)


def test_a_corpus_that_covers_too_little_is_refused(wordpiece_tokenizer):
    # empty: a vocabulary of the special tokens only, every word [UNK]; refused whatever the minimum
    for corpus, kw in (([], {}), ([], {"min_corpus_tokens": 1}), ([""] * 5, {}), (CORPUS, {})):
        with pytest.raises(
            ValueError,
            match=r"^the trimming corpus holds \d+ tokens but trim_vocabulary needs at "
            r"least [\d,]+ \(min_corpus_tokens\).*trim to the training text",
        ):
            trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, corpus, **kw)
    with pytest.raises(ValueError, match="min_corpus_tokens=0 is invalid"):
        trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, CORPUS, min_corpus_tokens=0)
    # the default rule: 1,000 tokens (tiny.CORPUS holds more; CORPUS, a few sentences, less)
    assert MIN_CORPUS_TOKENS == 1000
    model, tok = trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, tiny.CORPUS)
    assert len(tok) < len(wordpiece_tokenizer)


def test_trimming_change_counts_the_tokens_of_words_that_encode_differently(wordpiece_tokenizer):
    model, tok = trim_vocabulary(tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, CORPUS, **SMALL)
    kept = model.config.vocabulary_kept_ids
    # the trimming corpus itself: nothing changes
    same = trimming_change(wordpiece_tokenizer, tok, kept, CORPUS)
    assert same.changed_tokens == same.unk_tokens == 0 and same.tokens > 0 and same.texts == len(CORPUS)
    # by hand: each word of UNSEEN whose pieces differ counts its original tokens; [UNK] where a character is new
    texts = [UNSEEN, CORPUS[0]]
    expected_changed = expected_unk = 0
    for word in UNSEEN.split():
        before = wordpiece_tokenizer(word, add_special_tokens=False)["input_ids"]
        after = [kept[i] for i in tok(word, add_special_tokens=False)["input_ids"]]
        if before != after:
            expected_changed += len(before)
            expected_unk += after.count(wordpiece_tokenizer.unk_token_id)
    change = trimming_change(wordpiece_tokenizer, tok, kept, texts)
    total = sum(len(wordpiece_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    assert 0 < expected_changed < total
    assert (change.tokens, change.changed_tokens, change.unk_tokens) == (total, expected_changed, expected_unk)
    assert change.changed_share == pytest.approx(expected_changed / total)
    share = f"{100 * expected_changed / total:.2f}%"
    assert change.describe().startswith(f"{share} of the validation text's {total:,} tokens")


def test_restrict_to_kept_ids_renormalises_hand_computed():
    # teacher probabilities 0.1, 0.2, 0.3, 0.4 over 4 ids; the student kept ids 1 and 3
    logits = torch.tensor([0.1, 0.2, 0.3, 0.4]).log()
    restricted = restrict_to_kept_ids(logits, [1, 3])
    assert torch.allclose(restricted.softmax(-1), torch.tensor([0.2 / 0.6, 0.4 / 0.6]))
    # forward KL of a student q = (0.5, 0.5) against it: sum p log p/q
    p = torch.tensor([1 / 3, 2 / 3])
    expected = float((p * (p / 0.5).log()).sum())  # = 0.0566
    student = torch.zeros(1, 2)
    got = losses.distillation_loss(student, restricted.unsqueeze(0), "forward_kl", temperature=1.0)
    assert got.item() == pytest.approx(expected, abs=1e-6) and expected == pytest.approx(0.05663, abs=1e-4)


def test_teacher_logits_for_student_and_teacher_ids(bpe_tokenizer):
    model, _ = trim_vocabulary(tiny.gpt2(bpe_tokenizer), bpe_tokenizer, CORPUS, **SMALL)
    kept = model.config.vocabulary_kept_ids
    t = torch.randn(3, len(bpe_tokenizer))
    assert torch.equal(teacher_logits_for_student(t, model, "causal-lm"), t[:, kept])
    assert torch.equal(teacher_logits_for_student(t[:, kept], model, "causal-lm"), t[:, kept])  # already restricted
    cls = torch.randn(3, 2)
    assert torch.equal(teacher_logits_for_student(cls, model, "sequence-classification"), cls)
    ids = torch.tensor([[0, 5, len(kept) - 1]])
    assert to_teacher_ids(ids, kept).tolist() == [[kept[0], kept[5], kept[-1]]]


def test_lm_kd_with_trimmed_student_equals_kd_on_kept_ids(bpe_tokenizer, tmp_path):
    """DistillationTrainer with a live teacher: the loss equals KD renormalised over the kept ids, computed by hand."""
    from datasets import Dataset

    from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher

    teacher = tiny.gpt2(bpe_tokenizer, num_layers=2).eval()
    student, tok = trim_vocabulary(student_from_teacher(teacher, num_layers=1), bpe_tokenizer, CORPUS, **SMALL)
    data = Dataset.from_dict({"input_ids": [tok(CORPUS[0])["input_ids"]]})
    cfg = DistillationConfig(
        output_dir=str(tmp_path), alpha=1.0, temperature=2.0, report_to=[], use_cpu=True, per_device_train_batch_size=1
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=cfg,
        train_dataset=data,
        processing_class=tok,
        teacher_processing_class=bpe_tokenizer,
    )
    batch = trainer.data_collator([data[0]])
    loss = trainer.compute_loss(student, batch)
    s_ids = torch.tensor([data[0]["input_ids"]])
    t_ids = torch.tensor([bpe_tokenizer(CORPUS[0])["input_ids"]])  # the teacher's own encoding: the same text
    kept = student.config.vocabulary_kept_ids
    with torch.no_grad():
        s = student(s_ids).logits[0, :-1] / 2.0
        t = teacher(t_ids).logits[0, :-1, kept] / 2.0
    expected = (F.softmax(t, -1) * (F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1).mean() * 4.0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    # cached full logits (over the teacher's vocabulary, rows in teacher ids, remapped): the same loss
    from hf_distill.students.vocabulary import remap_dataset
    from hf_distill.targets.cache import generate_soft_targets

    cached = generate_soft_targets(
        teacher, Dataset.from_dict({"input_ids": t_ids.tolist()}), cache_dir=tmp_path / "cache", progress=False
    )
    assert len(cached[0]["teacher_logits"][0]) == len(bpe_tokenizer)
    cached = remap_dataset(cached, student)
    assert cached[0]["input_ids"] == data[0]["input_ids"]
    from_cache = DistillationTrainer(
        model=student, teacher_model=None, args=cfg, train_dataset=cached, processing_class=tok
    )
    loss = from_cache.compute_loss(student, from_cache.data_collator([cached[0]]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_trainer_refuses_topk_targets_for_a_trimmed_student(bpe_tokenizer, tmp_path):
    from datasets import Dataset

    from hf_distill import DistillationConfig, DistillationTrainer

    student, tok = trim_vocabulary(tiny.gpt2(bpe_tokenizer, num_layers=1), bpe_tokenizer, CORPUS, **SMALL)
    ids = tok(CORPUS[0])["input_ids"]
    data = Dataset.from_dict(
        {
            "input_ids": [ids],
            "teacher_topk_ids": [[[0, 1]] * len(ids)],
            "teacher_topk_logprobs": [[[-1.0, -2.0]] * len(ids)],
            "teacher_tail_mass": [[0.5] * len(ids)],
        }
    )
    cfg = DistillationConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match="top-k soft targets"):
        DistillationTrainer(model=student, teacher_model=None, args=cfg, train_dataset=data, processing_class=tok)


@pytest.mark.slow
def test_pipeline_trims_and_prunes_the_student_and_reports_it(tmp_path, tiny_bert_cls_dir, wordpiece_tokenizer, caplog):
    """`hf-distill run` with trim_vocabulary + student_intermediate_size: cached rows are remapped (equal to
    tokenizing with the trimmed tokenizer), the student keeps its own tokenizer, the card shows the facts."""
    from datasets import load_from_disk

    from hf_distill.pipeline.run import run_from_config
    from hf_distill.students.vocabulary import remap_dataset
    from tests.test_pipeline import cls_config

    cfg = cls_config(
        tmp_path, tiny_bert_cls_dir, trim_vocabulary=True, student_intermediate_size=16, trim_min_corpus_tokens=100
    )
    # validation text the trimming was not cut to: some of its words encode differently
    val_texts = [t for t, _ in tiny.SENTIMENT] + [UNSEEN]
    (tmp_path / "validation.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(val_texts))
    )
    caplog.set_level(logging.INFO, logger="hf_distill.pipeline.run")
    results = run_from_config(cfg)
    student_dir = tmp_path / "run" / "student"
    config = json.loads((student_dir / "config.json").read_text())
    assert config["intermediate_size"] == 16 and config["pruned_from_intermediate_size"] == 64
    assert config["trimmed_from_vocab_size"] == len(wordpiece_tokenizer) > config["vocab_size"]
    student_tok = AutoTokenizer.from_pretrained(student_dir)
    assert len(student_tok) == config["vocab_size"]
    # the cached rows, remapped, are what the trimmed tokenizer makes of the same sentences
    cached = load_from_disk(str(tmp_path / "run" / results["soft_targets"]["path"]))
    from transformers import AutoModelForSequenceClassification

    student = AutoModelForSequenceClassification.from_pretrained(student_dir)
    remapped = remap_dataset(cached, student)
    teacher_tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "teacher")
    texts = [teacher_tok.decode(ids, skip_special_tokens=True) for ids in cached["input_ids"]]
    assert remapped["input_ids"] == student_tok(texts, truncation=True, max_length=32)["input_ids"]
    report = json.loads((student_dir / "distillation_report.json").read_text())
    facts = report["distillation"]
    assert (
        facts["vocabulary"]
        == f"{len(wordpiece_tokenizer):,} → {config['vocab_size']:,} tokens, trimmed to the training text"
    )
    assert facts["width"].startswith("FFN 64 → 16 neurons per block")
    card = (student_dir / "README.md").read_text()
    assert f"{len(wordpiece_tokenizer):,} → {config['vocab_size']:,} tokens" in card
    # the share of the validation text's tokens that trimming changes: in the run's results, report and card
    change = trimming_change(teacher_tok, student_tok, config["vocabulary_kept_ids"], val_texts)
    assert change.changed_tokens > 0 and change.tokens == results["student"]["trimming"]["tokens"]
    assert results["student"]["trimming"]["changed_share"] == change.changed_share
    assert facts["vocabulary_changes"] == change.describe("the validation text")
    assert f"| Vocabulary changes | {change.describe('the validation text')} |" in card
    assert (
        f"vocabulary trimmed {len(wordpiece_tokenizer)} -> {config['vocab_size']} tokens; "
        f"{change.describe('the validation text')}" in caplog.text
    )


def test_pipeline_refuses_a_small_trimming_corpus_before_training(tmp_path, tiny_bert_cls_dir):
    from hf_distill.pipeline.preflight import PreflightError
    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import cls_config

    # the training text holds ~500 tokens: under the default 1,000, refused by --check and by run before the teacher
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, trim_vocabulary=True)
    for check_only in (True, False):
        with pytest.raises(
            PreflightError,
            match=r"trim_vocabulary: the trimming corpus holds \d+ tokens but "
            r"trim_vocabulary needs at least 1,000",
        ):
            run_from_config(cfg, check_only=check_only)
    assert not (tmp_path / "run" / "teacher").exists()


def test_pipeline_refuses_compression_it_cannot_honour(tmp_path, tiny_bert_cls_dir):
    from hf_distill.pipeline.run import parse_run_config
    from tests.test_pipeline import cls_config, lm_config

    parse_run_config(lm_config(tmp_path, trim_vocabulary=True))  # a causal LM is trimmed too (see below)
    with pytest.raises(ValueError, match="use student_intermediate_size"):
        parse_run_config(cls_config(tmp_path, tiny_bert_cls_dir, student_num_attention_heads=2))
    with pytest.raises(ValueError, match="leave `student` unset"):
        parse_run_config(cls_config(tmp_path, tiny_bert_cls_dir, trim_vocabulary=True, student=str(tiny_bert_cls_dir)))


LLAMA_TEACHER = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_pipeline_trims_an_lm_student_and_measures_it_over_its_kept_ids(family, tmp_path, bpe_tokenizer):
    """`hf-distill run` with trim_vocabulary on a causal LM: the student is trimmed to the training text, and the
    report's perplexities and fidelity are training's map computed by hand (the student's tokenization, the teacher
    reading it in its own ids, its logits restricted to the kept ids), including text the trimming encodes
    differently; the card says so."""
    from transformers import AutoModelForCausalLM

    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import lm_config
    from tests.tiny_decoders import llama3_tokenizer

    tokenizer = bpe_tokenizer if family == "gpt2" else llama3_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    train = tmp_path / "train.txt"
    train.write_text("\n".join(tiny.CORPUS[i % 5] for i in range(40)) + "\n")  # half the sentences
    valid = tmp_path / "valid.txt"
    val_texts = list(dict.fromkeys(tiny.CORPUS))  # all ten: five use ids the trimming dropped
    valid.write_text("\n".join(val_texts) + "\n")
    extra = {"teacher_config": json.dumps(LLAMA_TEACHER)} if family == "llama" else {}
    cfg = lm_config(
        tmp_path,
        tokenizer=str(tmp_path / "tok"),
        train_file=str(train),
        validation_file=str(valid),
        trim_vocabulary=True,
        trim_min_corpus_tokens=100,
        use_soft_targets=False,
        top_k=None,
        eval_sample_prompts=4,
        eval_sample_new_tokens=4,
        **extra,
    )
    run_from_config(cfg)
    run = tmp_path / "lmrun"
    teacher = AutoModelForCausalLM.from_pretrained(run / "teacher").eval()
    student = AutoModelForCausalLM.from_pretrained(run / "student").eval()
    student_tok = AutoTokenizer.from_pretrained(run / "student")
    kept = student.config.vocabulary_kept_ids
    assert type(student).__name__.lower().startswith(family) and len(kept) < len(tokenizer) == teacher.config.vocab_size
    changed = [t for t in val_texts if [kept[i] for i in student_tok(t)["input_ids"]] != tokenizer(t)["input_ids"]]
    assert changed  # the evaluation reads text outside the trimming corpus

    nll, tokens, kl = [0.0, 0.0], 0, 0.0
    with torch.no_grad():
        for text in val_texts:
            ids = torch.tensor([student_tok(text, truncation=True, max_length=32)["input_ids"]])
            t_logits = restrict_to_kept_ids(teacher(to_teacher_ids(ids, kept)).logits, kept)[0, :-1]
            s_logits = student(ids).logits[0, :-1]
            for k, logits in enumerate((t_logits, s_logits)):
                nll[k] += F.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
            kl += F.kl_div(F.log_softmax(s_logits, -1), F.log_softmax(t_logits, -1), log_target=True, reduction="sum")
            tokens += ids.shape[1] - 1
    report = json.loads((run / "student" / "distillation_report.json").read_text())
    assert report["evaluation"]["scored_tokens"] == tokens
    assert report["teacher"]["metrics"]["perplexity"] == pytest.approx(math.exp(nll[0] / tokens), rel=1e-4)
    assert report["student"]["metrics"]["perplexity"] == pytest.approx(math.exp(nll[1] / tokens), rel=1e-4)
    assert report["fidelity"]["kl_teacher_student"] == pytest.approx(float(kl) / tokens, rel=1e-3, abs=1e-6)
    assert report["evaluation"]["vocabulary"].startswith(f"the student's {len(kept):,} kept token ids")
    assert report["sample_quality"]["student"]["num_tokens"] > 0
    card = (run / "student" / "README.md").read_text()
    assert f"Teacher and student are compared over the student's {len(kept):,} kept token ids" in card
