"""evaluation_examples.json: which examples the evaluate stage keeps, its validation, the card's table, the push."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from hf_distill.core.report import REPORT_FILENAME, InvalidReport
from hf_distill.evaluation.benchmark import BenchmarkSettings
from hf_distill.evaluation.disagreements import (
    EXAMPLES_FILENAME,
    EvaluationExamples,
    LabelCounts,
    count_by_label,
    read_examples,
    recount_from_rows,
    select_classification_examples,
)
from hf_distill.evaluation.eval_data import EvalData
from hf_distill.evaluation.measure import evaluate_pair
from hf_distill.evaluation.pair import evaluate_models
from hf_distill.hub.selection import EXAMPLES_FILENAME as HUB_EXAMPLES_FILENAME
from hf_distill.hub.selection import select_model_files
from hf_distill.publishing.card import write_card
from hf_distill.publishing.publish import prepare_model_publication
from tests import tiny

FAST = BenchmarkSettings(batch_size=2, warmup=0, latency_runs=1, throughput_runs=1, max_length=16, threads=1)
LABELS = ["negative", "positive"]


def _p(x: float) -> list[float]:
    return [1 - x, x]


# Six examples, gold / teacher / student (by probability of "positive") / KL chosen by hand.
HAND = [
    # text, gold, teacher p(pos), student p(pos), divergence
    ("a", 1, 0.9, 0.2, 0.9),  # disagree: only the teacher right
    ("b", 0, 0.8, 0.3, 0.5),  # disagree: only the student right
    ("c", 1, 0.7, 0.6, 0.05),  # agree, both right
    ("d", 0, 0.6, 0.9, 0.3),  # agree, neither right
    ("e", 1, 0.1, 0.8, 1.2),  # disagree: only the student right
    ("f", 0, 0.2, 0.1, 0.01),  # agree, both right
]


def _hand(max_rows: int) -> EvaluationExamples:
    texts, golds, tp, sp, kl = zip(*HAND)
    return select_classification_examples(
        texts, golds, [_p(x) for x in tp], [_p(x) for x in sp], kl, LABELS, max_rows=max_rows
    )


def test_every_disagreement_first_then_the_most_divergent_agreements_up_to_the_cap():
    ex = _hand(max_rows=4)
    # disagreements by divergence (e 1.2, a 0.9, b 0.5), then the most divergent agreement (d 0.3)
    assert [r["text"] for r in ex.rows] == ["e", "a", "b", "d"]
    assert [r["agree"] for r in ex.rows] == [False, False, False, True]
    assert ex.num_disagreements == 3 and ex.all_disagreements and ex.num_evaluated == 6
    # more disagreements than the cap: all of them stay, no agreement is added
    assert [r["text"] for r in _hand(max_rows=2).rows] == ["e", "a", "b"]
    assert ex.rows[0]["teacher_prediction"] == "negative" and ex.rows[0]["student_prediction"] == "positive"
    assert ex.rows[0]["label"] == "positive" and ex.rows[0]["teacher_probs"] == pytest.approx([0.9, 0.1])


def test_counts_by_gold_label_by_hand():
    ex = _hand(max_rows=50)
    assert ex.by_label == [
        LabelCounts("negative", examples=3, disagreements=1, teacher_only=0, student_only=1, both=1, neither=1),
        LabelCounts("positive", examples=3, disagreements=2, teacher_only=1, student_only=1, both=1, neither=0),
    ]
    assert ex.by_label[1].disagreement_rate == pytest.approx(2 / 3)


def test_the_tables_disagreement_counts_equal_a_recount_from_the_files_rows():
    ex = _hand(max_rows=4)  # every disagreement, one agreement of three
    recount = {c.label: c for c in recount_from_rows(ex)}
    for c in ex.by_label:
        r = recount[c.label]
        assert (r.disagreements, r.teacher_only, r.student_only) == (c.disagreements, c.teacher_only, c.student_only)
    # the file holds every example: every cell equals the recount
    full = _hand(max_rows=50)
    assert recount_from_rows(full) == full.by_label


def test_file_round_trips_and_is_validated_on_load(tmp_path):
    ex = _hand(max_rows=4)
    path = ex.to_json(tmp_path)
    assert path.name == EXAMPLES_FILENAME == HUB_EXAMPLES_FILENAME
    assert EvaluationExamples.from_json(tmp_path) == ex
    good = json.loads(path.read_text())

    def broken(edit) -> dict:
        data = json.loads(json.dumps(good))
        edit(data)
        return data

    cases = {
        "teacher_probs": lambda d: d["rows"][0].update(teacher_probs=[1.5, -0.5]),
        "sums to": lambda d: d["rows"][0].update(student_probs=[0.5, 0.6]),
        "rank first": lambda d: d["rows"][0].update(teacher_prediction="positive", agree=True),
        "divergence": lambda d: d["rows"][1].update(divergence=-1.0),
        "newer": lambda d: d.update(schema_version=99),
        "num_disagreements": lambda d: d.update(num_disagreements=1),
        "outcome counts": lambda d: d["by_label"][0].update(both=3),
        "label": lambda d: d["rows"][2].update(label="neutral"),
        "missing": lambda d: d.pop("rows"),
    }
    for needle, edit in cases.items():
        with pytest.raises(InvalidReport, match=needle):
            EvaluationExamples.from_dict(broken(edit))
    path.write_text("{not json")
    with pytest.raises(InvalidReport, match="not valid JSON"):
        read_examples(tmp_path)


def _evaluated(tmp_path, teacher, student):
    data = EvalData([t for t, _ in tiny.SENTIMENT], [y for _, y in tiny.SENTIMENT], dataset="tiny-sentiment")
    return evaluate_pair(
        teacher,
        student,
        data,
        benchmark=FAST,
        output_dir=tmp_path,
        include_exports=False,
        distillation={
            "loss_type": "forward_kl",
            "temperature": 2.0,
            "alpha": 0.5,
            "layers_kept": [0, 2],
            "steps": 10,
            "dataset": "tiny",
        },
        training={"train_seconds": 1.5},
    )


def test_evaluate_writes_the_file_counted_from_both_models(
    tiny_bert_cls_dir, tiny_bert_cls_student_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    report = _evaluated(tmp_path, tiny_bert_cls_dir, tiny_bert_cls_student_dir)
    ex = read_examples(tmp_path)
    assert ex == report.examples and ex.num_evaluated == len(tiny.SENTIMENT)
    # recount from the models directly
    tok = AutoTokenizer.from_pretrained(tiny_bert_cls_dir)
    texts, golds = zip(*tiny.SENTIMENT)
    with torch.no_grad():
        lt = AutoModelForSequenceClassification.from_pretrained(tiny_bert_cls_dir)(
            **tok(list(texts), padding=True, return_tensors="pt")
        ).logits
        ls = AutoModelForSequenceClassification.from_pretrained(tiny_bert_cls_student_dir)(
            **tok(list(texts), padding=True, return_tensors="pt")
        ).logits
    names = [ex.labels[i] for i in range(len(ex.labels))]
    assert ex.by_label == count_by_label(golds, lt.argmax(-1).tolist(), ls.argmax(-1).tolist(), names)
    assert ex.num_disagreements == int((lt.argmax(-1) != ls.argmax(-1)).sum())
    assert ex.num_disagreements == round((1 - report.fidelity.agreement_top1) * len(texts))
    first = ex.rows[0]
    i = texts.index(first["text"])
    assert first["teacher_probs"] == pytest.approx(lt[i].softmax(-1).tolist(), abs=1e-5)
    assert first["student_probs"] == pytest.approx(ls[i].softmax(-1).tolist(), abs=1e-5)
    assert [r["agree"] for r in ex.rows] == sorted(r["agree"] for r in ex.rows)  # disagreements first


def test_card_states_the_table_recounted_from_the_file_and_push_uploads_it(
    tiny_bert_cls_dir, tiny_bert_cls_student_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    out = tmp_path / "student"
    shutil.copytree(tiny_bert_cls_student_dir, out)
    _evaluated(out, tiny_bert_cls_dir, out)
    write_card(out / REPORT_FILENAME, tmp_path / "card", repo_id="alice/tiny", license="mit")
    assert read_examples(tmp_path / "card") == read_examples(out)  # the card's folder gets the file it links
    text = (tmp_path / "card" / "README.md").read_text()
    section = text.split("## Where they disagree", 1)[1].split("\n## ", 1)[0]
    assert f"]({EXAMPLES_FILENAME})" in section
    cells = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| Gold label"):
            row = [c.strip() for c in line.strip("| ").split("|")]
            cells[row[0]] = row
    ex = read_examples(out)
    assert ex.all_disagreements and len(ex.rows) == ex.num_evaluated  # 8 examples, cap 50: the file holds all
    for c in recount_from_rows(ex):
        n_dis = f"{c.disagreements} ({100 * c.disagreement_rate:.1f}%)"
        assert cells[c.label][1:] == [
            str(c.examples),
            n_dis,
            str(c.teacher_only),
            str(c.student_only),
            str(c.both),
            str(c.neither),
        ]
    assert cells["**All**"][1] == str(ex.num_evaluated)

    # push: the file is selected, the published card shows the section and links the Space
    (out / "README.md").write_text(text)
    assert EXAMPLES_FILENAME in select_model_files(out)
    published = prepare_model_publication(out, "alice/tiny", space_id="alice/tiny-demo")["README.md"].decode()
    assert "## Where they disagree" in published
    assert "(https://huggingface.co/spaces/alice/tiny-demo)" in published
    assert "spaces/" not in text  # no Space given to `card`: no link
    # a corrupted file is refused before anything is uploaded
    (out / EXAMPLES_FILENAME).write_text(json.dumps({**ex.to_dict(), "num_evaluated": -1}))
    with pytest.raises(Exception, match="evaluation_examples.json cannot be published"):
        prepare_model_publication(out, "alice/tiny")


def test_causal_lm_keeps_the_texts_with_the_largest_mean_token_divergence(tiny_gpt2_dir, tiny_gpt2_student_dir):
    teacher = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).eval()
    student = AutoModelForCausalLM.from_pretrained(tiny_gpt2_student_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    texts = ["once upon a time", "the wolf ate the grandmother and waited in her bed", "a king", "x"]
    ev = evaluate_models(teacher, student, tok, texts, task="text-generation", batch_size=3)
    ex = ev.examples
    assert not ex.classification and ex.num_evaluated == 4
    by_text = {r["text"]: r for r in ex.rows}
    for text in texts[:3]:  # by hand, one text at a time
        ids = tok(text, return_tensors="pt")["input_ids"]
        if ids.shape[1] < 2:
            continue
        with torch.no_grad():
            p = teacher(ids).logits[0, :-1].log_softmax(-1)
            q = student(ids).logits[0, :-1].log_softmax(-1)
        kl = (p.exp() * (p - q)).sum(-1).mean().item()
        assert by_text[text]["divergence"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
        assert by_text[text]["tokens"] == ids.shape[1] - 1
    divs = [r["divergence"] for r in ex.rows]
    assert divs == sorted(divs, reverse=True)
    assert EvaluationExamples.from_dict(ex.to_dict()) == ex
