"""plan_students / `hf-distill plan`: every candidate built and measured; sizes match the students `run` builds."""

import json

import pytest

from hf_distill.evaluation.benchmark import BenchmarkSettings, count_parameters
from hf_distill.pipeline.planning import format_plan, plan_students
from hf_distill.students.blocks import student_from_teacher
from hf_distill.students.vocabulary import trim_vocabulary, trimming_change
from tests import tiny

FAST = BenchmarkSettings(batch_size=2, warmup=0, latency_runs=1, throughput_runs=1, max_length=16, threads=1)
TEXTS = tiny.CORPUS[:6]


def test_plan_students_measures_every_candidate(wordpiece_tokenizer):
    teacher = tiny.bert_cls(wordpiece_tokenizer, num_layers=4)
    # trimmed to half the timing texts: the other half holds words the trimming splits differently
    plans = plan_students(
        teacher,
        wordpiece_tokenizer,
        TEXTS,
        layers=[1, 2],
        intermediate_sizes=[None, 16],
        trim=[False, True],
        trimming_texts=TEXTS[:3],
        settings=FAST,
        min_corpus_tokens=10,
    )
    assert [(p.layers, p.intermediate_size, p.trimmed) for p in plans] == [
        (d, w, t) for d in (1, 2) for w in (None, 16) for t in (False, True)
    ]
    teacher_params = count_parameters(teacher)[0]
    for p in plans:
        assert p.parameter_ratio == pytest.approx(teacher_params / p.parameters)
        assert p.latency_ms_p50 > 0 and p.throughput_per_s > 0 and p.disk_bytes > 0
    # the plan's sizes are those of the students the pipeline builds
    plain = student_from_teacher(teacher, num_layers=2)
    assert plans[4].parameters == count_parameters(plain)[0]
    trimmed, tok = trim_vocabulary(
        student_from_teacher(teacher, num_layers=2), wordpiece_tokenizer, TEXTS[:3], min_corpus_tokens=10
    )
    assert plans[5].parameters == count_parameters(trimmed)[0] < plans[4].parameters
    assert plans[5].vocab_size == len(tok) < len(wordpiece_tokenizer)
    assert plans[6].parameters < plans[4].parameters  # FFN pruned
    # the share of the timing texts' tokens that trimming changes, on the trimmed candidates only
    change = trimming_change(wordpiece_tokenizer, tok, trimmed.config.vocabulary_kept_ids, TEXTS)
    assert 0 < change.changed_share < 1
    assert [p.trim_changed_token_share for p in plans] == [None, change.changed_share] * 4
    assert [p.trim_unk_token_share for p in plans] == [None, change.unk_share] * 4
    table = format_plan(plans)
    assert f"| {100 * change.changed_share:.2f}% ({100 * change.unk_share:.2f}% [UNK]) |" in table
    assert table.count("\n") == len(plans) + 1 and "2/4 layers, FFN 16, trimmed" in table


def test_plan_needs_a_trimming_corpus(wordpiece_tokenizer):
    with pytest.raises(ValueError, match="trimming_texts"):
        plan_students(
            tiny.bert_cls(wordpiece_tokenizer), wordpiece_tokenizer, TEXTS, layers=[1], trim=[True], settings=FAST
        )


def test_cli_plan_prints_a_table_and_writes_json(tmp_path, tiny_bert_cls_dir, capsys):
    from hf_distill.cli.main import main
    from tests.test_pipeline import cls_config

    cfg = cls_config(tmp_path, tiny_bert_cls_dir, benchmark_runs=1, benchmark_batch_size=2, trim_min_corpus_tokens=100)
    out = tmp_path / "plan.json"
    assert main(["plan", str(cfg), "--layers", "1,2", "--widths", "full,16", "--texts", "4", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| 1/4 layers, trimmed |" in printed and "| 2/4 layers, FFN 16 |" in printed
    # the validation sentences are training sentences here: trimming changes none of their tokens
    assert "trimming to the train text changes the encoding of 0.00% of the 4 validation texts' tokens" in printed
    data = json.loads(out.read_text())
    assert len(data["candidates"]) == 8 and data["teacher"] == tiny_bert_cls_dir.name
    assert not (tmp_path / "run").exists()  # planning trains nothing and writes no run folder
    # an existing file is not replaced silently; bad --layers is one clear line
    assert main(["plan", str(cfg), "--json", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["plan", str(cfg), "--layers", "two", "--json", str(tmp_path / "p2.json")]) == 2
    assert "--layers takes" in capsys.readouterr().err
    # the training text (~500 tokens) is under the default minimum of trim_vocabulary: refused in one line
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, benchmark_runs=1, benchmark_batch_size=2)
    assert main(["plan", str(cfg), "--layers", "1", "--trim", "yes", "--json", str(tmp_path / "p3.json")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert (
        last.startswith("hf-distill plan: error: the trimming corpus holds")
        and "needs at least 1,000 (min_corpus_tokens)" in last
    )
