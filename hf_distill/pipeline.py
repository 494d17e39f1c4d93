"""`hf-distill run`: teacher → soft targets → student → evaluation → model card → push, resumable stage by stage.

Each stage writes under ``output_dir`` and, when it has finished, a marker ``.hf_distill/<stage>.json``. A re-run
skips finished stages and redoes unfinished ones (the student resumes from its last checkpoint). The settings of the
first run are kept in ``.hf_distill/run_config.json``; a re-run with other settings is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from .config import DistillationConfig

logger = logging.getLogger("hf_distill.pipeline")

STAGES = ("teacher", "soft_targets", "student", "evaluate", "card", "push")
STATE_DIR = ".hf_distill"
# Settings that may change between a run and its resumption without invalidating finished stages.
VOLATILE = {
    "overwrite", "push_to_hub", "hub_model_id", "hub_space_id", "hub_private_repo", "hub_token", "report_to",
    "logging_steps", "logging_strategy", "disable_tqdm", "dataloader_num_workers", "stop_after",
}
TASKS = ("sequence-classification", "causal-lm", "masked-lm")


@dataclass
class PipelineArguments:
    """What to distil, from which data; training settings of the student live in `DistillationConfig`."""

    teacher: str = field(metadata={"help": "Teacher: a local path or a Hub id (a base model when train_teacher)."})
    task: str = field(default="sequence-classification", metadata={"help": "Task.", "choices": list(TASKS)})
    train_teacher: str = field(
        default="auto",
        metadata={
            "help": "Fine-tune the teacher first: auto (when its task head is new or it is built from scratch), "
            "yes, or no.",
            "choices": ["auto", "yes", "no"],
        },
    )
    teacher_from_scratch: bool = field(
        default=False, metadata={"help": "Build the teacher from `teacher_config` instead of loading weights."}
    )
    teacher_config: str | None = field(
        default=None,
        metadata={"help": 'JSON config for a from-scratch teacher, e.g. {"model_type": "gpt2", "n_layer": 4}.'},
    )
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer path/id (default: the teacher's)."})
    tokenizer_vocab_size: int = field(
        default=8000, metadata={"help": "Vocabulary size of a tokenizer trained on the corpus (from scratch)."}
    )
    teacher_epochs: float = field(default=1.0, metadata={"help": "Epochs of teacher fine-tuning."})
    teacher_max_steps: int = field(default=-1, metadata={"help": "Steps of teacher fine-tuning (overrides epochs)."})
    teacher_learning_rate: float = field(default=5e-5, metadata={"help": "Learning rate of the teacher."})
    teacher_batch_size: int = field(default=32, metadata={"help": "Batch size of the teacher."})
    student: str | None = field(default=None, metadata={"help": "Student path/id; default: built from the teacher."})
    student_layers: int | None = field(
        default=None, metadata={"help": "Blocks to keep when building the student from the teacher (default: half)."}
    )
    student_config: str | None = field(
        default=None,
        metadata={"help": 'JSON config attributes for the student, e.g. {"resid_pdrop": 0.0} (default: the teacher\'s).'},
    )
    student_layer_strategy: str = field(
        default="uniform", metadata={"help": "Which blocks to keep.", "choices": ["uniform", "first", "last"]}
    )
    dataset: str | None = field(default=None, metadata={"help": "A Hub data set id or local path."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration name of the Hub data set."})
    train_file: str | None = field(default=None, metadata={"help": "Local training file (csv/tsv/json/jsonl/txt)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file."})
    train_split: str = field(default="train", metadata={"help": "Training split name."})
    validation_split: str = field(default="validation", metadata={"help": "Validation split name."})
    text_column: str | None = field(default=None, metadata={"help": "Text column (default: text/sentence/...)."})
    label_column: str = field(default="label", metadata={"help": "Label column (classification)."})
    class_names: str | None = field(default=None, metadata={"help": 'Names of the label ids, e.g. "negative,positive".'})
    num_labelled: int | None = field(
        default=None, metadata={"help": "Use this many training rows with their labels (default: all)."}
    )
    num_transfer: int = field(
        default=0, metadata={"help": "Further training rows used without labels: the student learns them from the teacher."}
    )
    max_length: int = field(default=128, metadata={"help": "Truncate tokenized texts to this length."})
    use_soft_targets: bool = field(default=True, metadata={"help": "Cache the teacher's outputs once (stage 2)."})
    top_k: int | None = field(default=None, metadata={"help": "Keep the teacher's top-k per token (token tasks)."})
    soft_target_batch_size: int = field(default=64, metadata={"help": "Batch size of soft-target generation."})
    eval_max_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many rows."})
    benchmark_threads: int | None = field(default=None, metadata={"help": "CPU threads for the speed benchmark."})
    benchmark_batch_size: int = field(default=32, metadata={"help": "Batch size of the throughput benchmark."})
    benchmark_runs: int = field(default=20, metadata={"help": "Timed batches per model for throughput (latency: 50)."})
    license: str = field(default="apache-2.0", metadata={"help": "License of the published student."})
    base_model: str | None = field(default=None, metadata={"help": "Card `base_model` (default: the teacher)."})
    hub_space_id: str | None = field(default=None, metadata={"help": "Also publish the demo Space under this id."})
    overwrite: bool = field(default=False, metadata={"help": "Redo every stage, replacing earlier outputs."})
    stop_after: str | None = field(default=None, metadata={"help": "Stop after this stage.", "choices": list(STAGES)})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} is invalid: choose one of {', '.join(TASKS)}")
        if self.teacher_from_scratch and not self.teacher_config:
            raise ValueError("teacher_from_scratch needs teacher_config (a JSON object with model_type and sizes)")
        if self.num_transfer < 0 or (self.num_labelled is not None and self.num_labelled < 0):
            raise ValueError("num_labelled and num_transfer must be >= 0")
        if self.num_transfer and self.task != "sequence-classification":
            raise ValueError("num_transfer (unlabelled rows) applies to sequence classification")


# ---- configuration ------------------------------------------------------------------------------------------------


def _to_argv(values: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        argv.append(f"--{key}")
        if isinstance(value, (list, tuple)):
            argv.extend(str(v) for v in value)
        else:
            argv.append(str(value))
    return argv


def parse_run_config(config_path: str | os.PathLike | None, overrides: list[str] | None = None):
    """Parse a YAML config plus ``--field value`` overrides into (PipelineArguments, DistillationConfig).

    The YAML is turned into command-line form, so both go through `HfArgumentParser` with the same types and
    checks, and a later ``--field`` wins.
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        text = Path(config_path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_path}: expected a mapping of field: value")
        values = loaded
    overrides = list(overrides or [])
    for key in (k[2:].split("=", 1)[0] for k in overrides if k.startswith("--")):
        values.pop(key, None)
    parser = HfArgumentParser((PipelineArguments, DistillationConfig))
    argv = _to_argv(values) + overrides
    pipe, cfg, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(
            f"unknown config field(s) {' '.join(u for u in unknown if u.startswith('--')) or unknown}: "
            "`hf-distill run --help-fields` lists the fields"
        )
    # What the user set (in the YAML or on the command line), as parsed: "400" and 400 are the same setting.
    chosen = set(values) | {k[2:].split("=", 1)[0] for k in overrides if k.startswith("--")}
    settings = {k: getattr(pipe, k) if hasattr(pipe, k) else getattr(cfg, k) for k in sorted(chosen)}
    settings = json.loads(json.dumps(settings, default=str))
    return pipe, cfg, settings


# ---- stage bookkeeping --------------------------------------------------------------------------------------------


class RunState:
    """Completion markers and the recorded settings of a run folder."""

    def __init__(self, output_dir: Path) -> None:
        self.root = output_dir
        self.dir = output_dir / STATE_DIR

    def done(self, stage: str) -> dict[str, Any] | None:
        path = self.dir / f"{stage}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def mark(self, stage: str, **info: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{stage}.json.tmp"
        tmp.write_text(json.dumps({"stage": stage, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}, indent=1))
        os.replace(tmp, self.dir / f"{stage}.json")

    def prepare(self, settings: dict[str, Any], overwrite: bool) -> None:
        """Refuse to mix runs: a folder holds one run's settings, unless `overwrite` starts it afresh."""
        recorded = self.dir / "run_config.json"
        if overwrite and self.root.exists():
            for stage in STAGES:
                (self.dir / f"{stage}.json").unlink(missing_ok=True)
            for sub in ("teacher", "soft_targets", "student", "student_checkpoints"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
        elif recorded.is_file():
            before = json.loads(recorded.read_text())
            changed = sorted(
                k for k in set(before) | set(settings) if k not in VOLATILE and before.get(k) != settings.get(k)
            )
            if changed:
                details = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
                raise RuntimeError(
                    f"{self.root} holds a run with other settings ({details}). Use another output_dir, or pass "
                    "--overwrite to redo every stage."
                )
        elif self.root.exists() and any(self.root.iterdir()):
            raise RuntimeError(
                f"{self.root} is not empty and is not an hf-distill run folder; choose another output_dir or pass "
                "--overwrite (which deletes the stage folders teacher/, soft_targets/, student/ in it)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        recorded.write_text(json.dumps(settings, indent=1, sort_keys=True, default=str))


# ---- the stages ---------------------------------------------------------------------------------------------------


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _wait_for_everyone() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


class Pipeline:
    """The stages of one run; `run()` executes those not finished yet."""

    def __init__(self, args: PipelineArguments, config: DistillationConfig, settings: dict[str, Any] | None = None):
        self.args = args
        self.config = config
        self.settings = settings if settings is not None else {}
        self.root = Path(config.output_dir)
        self.state = RunState(self.root)
        self.teacher_dir = self.root / "teacher"
        self.student_dir = self.root / "student"
        self._data = None
        self._tokenizer = None

    # -- data ---------------------------------------------------------------------------------------------------

    def raw_data(self):
        if self._data is None:
            from .data import load_splits

            files = {}
            if self.args.train_file:
                files[self.args.train_split] = self.args.train_file
            if self.args.validation_file:
                files[self.args.validation_split] = self.args.validation_file
            splits = load_splits(self.args.dataset, dataset_config=self.args.dataset_config, data_files=files or None)
            if self.args.train_split not in splits:
                raise ValueError(f"no {self.args.train_split!r} split in the data (found {list(splits)})")
            self._data = splits
        return self._data

    def text_column(self) -> str:
        from .data import text_column_of

        return text_column_of(self.raw_data()[self.args.train_split], self.args.text_column)

    def label_names(self) -> list[str]:
        train = self.raw_data()[self.args.train_split]
        if self.args.label_column not in train.column_names:
            raise ValueError(f"label column {self.args.label_column!r} not found; the data has {train.column_names}")
        values = sorted({v for v in train[self.args.label_column] if v is not None and v != -1})
        if self.args.class_names:
            names = [n.strip() for n in self.args.class_names.split(",")]
            if all(isinstance(v, int) for v in values) and max(values) >= len(names):
                raise ValueError(f"class_names has {len(names)} names but the data has label id {max(values)}")
            return names
        return [str(v) for v in values] if not all(isinstance(v, int) for v in values) else [f"LABEL_{i}" for i in range(max(values) + 1)]

    def _label_ids(self, ds, names: list[str]):
        col = self.args.label_column
        lookup = {n: i for i, n in enumerate(names)}

        def convert(row):
            value = row[col]
            if value is None or value == -1:
                return {"label": -1}
            return {"label": int(value) if isinstance(value, int) else lookup[str(value)]}

        ds = ds.map(convert)
        return ds if col == "label" else ds.remove_columns(col)

    def training_rows(self):
        """Labelled rows first, then transfer rows with their label replaced by -1 (shuffled with the seed)."""
        train = self.raw_data()[self.args.train_split].shuffle(seed=self.config.seed)
        n_lab = len(train) if self.args.num_labelled is None else min(self.args.num_labelled, len(train))
        n_tr = min(self.args.num_transfer, len(train) - n_lab)
        labelled = train.select(range(n_lab))
        if self.args.task != "sequence-classification":
            return labelled, None
        transfer = train.select(range(n_lab, n_lab + n_tr)).map(lambda r: {self.args.label_column: -1}) if n_tr else None
        return labelled, transfer

    def tokenize(self, ds, tokenizer):
        text = self.text_column()
        ds = ds.filter(lambda r: isinstance(r[text], str) and r[text].strip() != "")
        keep = {"label"} if self.args.task == "sequence-classification" else set()
        remove = [c for c in ds.column_names if c not in keep]
        return ds.map(
            lambda b: tokenizer(b[text], truncation=True, max_length=self.args.max_length),
            batched=True,
            remove_columns=remove,
        )

    # -- stage 1: teacher ---------------------------------------------------------------------------------------

    def _auto_class(self):
        from .tasks import AUTO_CLASSES

        return AUTO_CLASSES[self.args.task]

    def _teacher_tokenizer(self):
        from transformers import AutoTokenizer

        if self.args.teacher_from_scratch and not self.args.tokenizer:
            return self._train_tokenizer()
        source = self.args.tokenizer or self.args.teacher
        return AutoTokenizer.from_pretrained(source, revision=self.config.teacher_revision if not self.args.tokenizer else None,
                                             trust_remote_code=self.config.trust_remote_code)

    def _train_tokenizer(self):
        """Train a tokenizer on the training text: byte-level BPE for causal LM, WordPiece otherwise."""
        from .tokenizer_training import train_bpe_tokenizer, train_wordpiece_tokenizer

        corpus = (t for t in self.raw_data()[self.args.train_split][self.text_column()] if t)
        train = train_bpe_tokenizer if self.args.task == "causal-lm" else train_wordpiece_tokenizer
        return train(corpus, self.args.tokenizer_vocab_size, model_max_length=self.args.max_length)

    def _build_teacher(self, tokenizer):
        from transformers import AutoConfig

        auto = self._auto_class()
        extra: dict[str, Any] = {}
        if self.args.task == "sequence-classification":
            names = self.label_names()
            extra = {"num_labels": len(names), "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
        if self.args.teacher_from_scratch:
            spec = json.loads(self.args.teacher_config)
            model_type = spec.pop("model_type")
            config = AutoConfig.for_model(
                model_type, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **spec, **extra)
            return auto.from_config(config), True
        model, info = auto.from_pretrained(
            self.args.teacher, revision=self.config.teacher_revision, trust_remote_code=self.config.trust_remote_code,
            output_loading_info=True, **extra)
        fresh_head = bool(info.get("missing_keys"))
        if fresh_head and self.args.train_teacher == "no":
            raise ValueError(
                f"the teacher {self.args.teacher} has newly initialised weights ({sorted(info['missing_keys'])[:4]}...): "
                "it is not trained for this task; set train_teacher: auto or yes"
            )
        return model, fresh_head

    def stage_teacher(self) -> dict[str, Any]:
        from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding, Trainer, TrainingArguments

        tokenizer = self._teacher_tokenizer()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model, needs_training = self._build_teacher(tokenizer)
        train = self.args.train_teacher == "yes" or (self.args.train_teacher == "auto" and needs_training)
        info: dict[str, Any] = {"trained": train, "source": self.args.teacher}
        if train:
            labelled, _ = self.training_rows()
            names = self.label_names() if self.args.task == "sequence-classification" else None
            if names is not None:
                labelled = self._label_ids(labelled, names)
            data = self.tokenize(labelled, tokenizer)
            collator = (
                DataCollatorWithPadding(tokenizer) if self.args.task == "sequence-classification"
                else DataCollatorForLanguageModeling(tokenizer, mlm=self.args.task == "masked-lm")
            )
            targs = TrainingArguments(
                output_dir=str(self.root / "teacher_checkpoints"), num_train_epochs=self.args.teacher_epochs,
                max_steps=self.args.teacher_max_steps, learning_rate=self.args.teacher_learning_rate,
                per_device_train_batch_size=self.args.teacher_batch_size,
                weight_decay=0.01, logging_steps=self.config.logging_steps, save_strategy="no", report_to=[],
                seed=self.config.seed, use_cpu=self.config.use_cpu, disable_tqdm=self.config.disable_tqdm,
                bf16=self.config.bf16, fp16=self.config.fp16,
            )
            started = time.perf_counter()
            trainer = Trainer(model=model, args=targs, train_dataset=data, processing_class=tokenizer, data_collator=collator)
            result = trainer.train()
            info.update(train_seconds=round(time.perf_counter() - started, 1), train_loss=result.training_loss,
                        train_rows=len(data))
        if _is_main_process():
            tmp = self.root / "teacher.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            shutil.rmtree(self.teacher_dir, ignore_errors=True)
            os.replace(tmp, self.teacher_dir)
        _wait_for_everyone()
        return info

    # -- stage 2: soft targets ----------------------------------------------------------------------------------

    def _load_teacher(self):
        from transformers import AutoTokenizer

        model = self._auto_class().from_pretrained(self.teacher_dir)
        return model, AutoTokenizer.from_pretrained(self.teacher_dir)

    def student_train_data(self, tokenizer):
        from datasets import concatenate_datasets

        labelled, transfer = self.training_rows()
        if self.args.task == "sequence-classification":
            names = list(self._teacher_config().id2label.values())
            labelled = self._label_ids(labelled, names)
            if transfer is not None:
                transfer = self._label_ids(transfer, names)
                labelled = concatenate_datasets([labelled, transfer])
        return self.tokenize(labelled, tokenizer)

    def _teacher_config(self):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.teacher_dir)

    def stage_soft_targets(self) -> dict[str, Any]:
        from .soft_targets import generate_soft_targets

        teacher, tokenizer = self._load_teacher()
        data = self.student_train_data(tokenizer)
        started = time.perf_counter()
        options = dict(
            top_k=self.args.top_k, batch_size=self.args.soft_target_batch_size, max_length=self.args.max_length,
            temperature=self.config.temperature, cache_dir=self.root / "soft_targets", teacher_id=str(self.teacher_dir),
        )
        # One process runs the teacher; the others then find the same cache (same key) and only verify it.
        if _is_main_process():
            result = generate_soft_targets(teacher, data, **options)
        _wait_for_everyone()
        if not _is_main_process():
            result = generate_soft_targets(teacher, data, progress=False, **options)
        return {"rows": len(result), "seconds": round(time.perf_counter() - started, 1),
                "path": str(Path(result.cache_files[0]["filename"]).parent.relative_to(self.root.resolve()))
                if result.cache_files else None}

    # -- stage 3: student ---------------------------------------------------------------------------------------

    def _build_student(self, teacher):
        from .students import student_from_teacher

        overrides = json.loads(self.args.student_config) if self.args.student_config else None
        if self.args.student:
            extra = dict(overrides or {})
            if self.args.task == "sequence-classification":
                cfg = teacher.config
                extra.update(num_labels=cfg.num_labels, id2label=cfg.id2label, label2id=cfg.label2id)
            return self._auto_class().from_pretrained(self.args.student, trust_remote_code=self.config.trust_remote_code, **extra)
        return student_from_teacher(teacher, num_layers=self.args.student_layers, strategy=self.args.student_layer_strategy,
                                    config_overrides=overrides)

    def stage_student(self) -> dict[str, Any]:
        from datasets import load_from_disk

        from .trainer import DistillationTrainer

        teacher, tokenizer = self._load_teacher()
        student = self._build_student(teacher)
        marker = self.state.done("soft_targets")
        # With cached soft targets the teacher does not run on training batches; it stays for the evaluation
        # loss (whose data has no cached columns) and for hidden-state/attention losses.
        if self.args.use_soft_targets and marker and marker.get("path"):
            train = load_from_disk(str(self.root / marker["path"]))
        else:
            train = self.student_train_data(tokenizer)
        eval_data = None
        if self.args.validation_split in self.raw_data():
            val = self.raw_data()[self.args.validation_split]
            if self.args.eval_max_samples:
                val = val.select(range(min(self.args.eval_max_samples, len(val))))
            if self.args.task == "sequence-classification":
                val = self._label_ids(val, list(teacher.config.id2label.values()))
            eval_data = self.tokenize(val, tokenizer)
        cfg = self.config
        work = self.root / "student_checkpoints"
        cfg.output_dir = str(work)
        cfg.push_to_hub = False  # the push stage publishes model, card and report together
        if eval_data is None and cfg.eval_strategy != "no":
            cfg.eval_strategy = "no"
        trainer = DistillationTrainer(
            model=student, teacher_model=teacher, args=cfg, train_dataset=train, eval_dataset=eval_data,
            processing_class=tokenizer,
        )
        from .checkpoints import last_complete_checkpoint

        last = last_complete_checkpoint(work, remove_incomplete=_is_main_process())
        _wait_for_everyone()
        if last:
            logger.info("student: resuming from %s", last)
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - started
        metrics = trainer.evaluate() if eval_data is not None else {}
        tmp = self.root / "student.partial"
        if _is_main_process():
            shutil.rmtree(tmp, ignore_errors=True)
        _wait_for_everyone()
        trainer.save_model(str(tmp))  # every process joins (sharded set-ups gather weights); the main one writes
        if _is_main_process():
            tokenizer.save_pretrained(tmp)
            # The publishable folder holds safetensors and JSON only; the pickled arguments stay in the checkpoints.
            (tmp / "training_args.bin").unlink(missing_ok=True)
            shutil.rmtree(self.student_dir, ignore_errors=True)
            os.replace(tmp, self.student_dir)
        _wait_for_everyone()
        cfg.output_dir = str(self.root)
        return {"train_seconds": round(seconds, 1), "resumed_from": last, "global_step": result.global_step,
                "train_loss": result.training_loss, "rows": len(train),
                "eval": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}

    # -- stages 4-6: evaluation, card, push ---------------------------------------------------------------------

    def _validation_file_or_data(self):
        from .evaluation import EvalData

        val = self.raw_data()[self.args.validation_split]
        text = self.text_column()
        labels = None
        if self.args.task == "sequence-classification":
            names = list(self._teacher_config().id2label.values())
            labels = self._label_ids(val, names)["label"]
        source = self.args.validation_file or self.args.dataset or "custom"
        return EvalData(texts=list(val[text]), labels=labels, dataset=str(source), split=self.args.validation_split,
                        text_column=text, label_column=self.args.label_column if labels else None)

    def stage_evaluate(self) -> dict[str, Any]:
        from .benchmark import BenchmarkSettings
        from .evaluation import evaluate_pair

        student_info = self.state.done("student") or {}
        teacher_info = self.state.done("teacher") or {}
        cfg = self.config
        settings = {
            "loss_type": cfg.loss_type, "temperature": cfg.temperature, "alpha": cfg.alpha,
            "layers_kept": getattr(self._student_config(), "distilled_from_layers", None),
            "steps": student_info.get("global_step"), "dataset": str(self.args.train_file or self.args.dataset),
            "labelled_rows": self.args.num_labelled, "transfer_rows": self.args.num_transfer,
            "soft_targets": "cached" + (f" top-{self.args.top_k}" if self.args.top_k else " full logits")
            if self.args.use_soft_targets else "live teacher",
            "hidden_loss_weight": cfg.hidden_loss_weight, "attention_loss_weight": cfg.attention_loss_weight,
            "stages": "teacher fine-tuning → soft targets → student" if teacher_info.get("trained") else "soft targets → student",
        }
        training = {"train_seconds": student_info.get("train_seconds"), "teacher_train_seconds": teacher_info.get("train_seconds")}
        bench = BenchmarkSettings(
            batch_size=self.args.benchmark_batch_size, throughput_runs=self.args.benchmark_runs,
            latency_runs=max(50, self.args.benchmark_runs), max_length=self.args.max_length,
            threads=self.args.benchmark_threads,
        )
        report = evaluate_pair(
            str(self.teacher_dir), str(self.student_dir), self._validation_file_or_data(), task=None,
            max_samples=self.args.eval_max_samples, max_length=self.args.max_length, threads=self.args.benchmark_threads,
            benchmark=bench, distillation=settings, training=training, output_dir=str(self.student_dir),
        )
        return {"report": "student/distillation_report.json", "ratios": asdict(report.ratios) if hasattr(report, "ratios") else None}

    def _student_config(self):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(self.student_dir)

    def stage_card(self) -> dict[str, Any]:
        from .card import write_card

        path = write_card(
            self.student_dir / "distillation_report.json", self.student_dir, repo_id=self.config.hub_model_id,
            base_model=self.args.base_model or (self.args.teacher if not self.args.teacher_from_scratch else None),
            license=self.args.license,
        )
        return {"card": str(Path(path).relative_to(self.root))}

    def stage_push(self) -> dict[str, Any]:
        if not self.config.push_to_hub:
            return {"pushed": False, "reason": "push_to_hub is off"}
        if not self.config.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (e.g. your-name/my-distilled-model)")
        from .hub import push_space, push_to_hub

        url = push_to_hub(self.student_dir, self.config.hub_model_id, private=bool(self.config.hub_private_repo))
        info: dict[str, Any] = {"model_commit": str(url)}
        if self.args.hub_space_id:
            teacher_repo = self.args.teacher if not self.args.teacher_from_scratch else self.config.hub_model_id
            info["space_commit"] = str(push_space(self.args.hub_space_id, self.config.hub_model_id, teacher_repo))
        return info

    # -- driver -------------------------------------------------------------------------------------------------

    MAIN_ONLY = {"evaluate", "card", "push"}

    def run(self) -> dict[str, Any]:
        """Run the unfinished stages in order; returns each stage's marker."""
        if _is_main_process():
            self.state.prepare(self.settings, self.args.overwrite)
        _wait_for_everyone()
        results: dict[str, Any] = {}
        for stage in STAGES:
            if stage == "soft_targets" and not self.args.use_soft_targets:
                continue
            done = self.state.done(stage)
            if done is not None:
                logger.info("stage %s: finished earlier, skipping", stage)
                results[stage] = {**done, "skipped": True}
            else:
                if stage in self.MAIN_ONLY and not _is_main_process():
                    _wait_for_everyone()
                    continue
                logger.info("stage %s: running", stage)
                started = time.perf_counter()
                info = getattr(self, f"stage_{stage}")()
                info["stage_seconds"] = round(time.perf_counter() - started, 1)
                # A run without push leaves that stage open, so a later `--push_to_hub true` run publishes.
                if _is_main_process() and not (stage == "push" and not self.config.push_to_hub):
                    self.state.mark(stage, **info)
                _wait_for_everyone()
                results[stage] = info
            if self.args.stop_after == stage:
                break
        return results


def run_from_config(config_path: str | os.PathLike | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """`hf-distill run` from Python: parse the YAML (and overrides) and run the unfinished stages."""
    args, config, settings = parse_run_config(config_path, overrides)
    return Pipeline(args, config, settings).run()


def main(argv: list[str] | None = None) -> int:
    """Entry point used by `hf-distill run` (and `python -m hf_distill.pipeline`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("--") and argv[0] not in ("--help", "-h"):
        config_path, overrides = None, argv
    elif argv[0] in ("--help", "-h"):
        HfArgumentParser((PipelineArguments, DistillationConfig)).print_help()
        return 0
    else:
        config_path, overrides = argv[0], argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = run_from_config(config_path, overrides)
    if _is_main_process():
        for stage, info in results.items():
            state = "skipped (finished earlier)" if info.get("skipped") else f"done in {info.get('stage_seconds')} s"
            print(f"[hf-distill] {stage}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
