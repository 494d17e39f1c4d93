"""`hf-distill run`: teacher → soft targets → student → evaluation → model card → push, resumable stage by stage.

Each stage writes under ``output_dir`` and, when it has finished, a marker ``.hf_distill/<stage>.json``. A re-run
skips finished stages and redoes unfinished ones (the student resumes from its last checkpoint). The settings and
data fingerprint of the finished stages are kept in ``.hf_distill/run_config.json``; a re-run with other settings or
changed data is refused unless ``overwrite``. Before any stage, `preflight.check_run` reports every problem it can
know. Data preparation lives in `data.RunData`, model building in `models`, folder bookkeeping in `run_state`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from .atomic import atomic_directory, clear_staging, disk_space_for, replace_directory, staging_path
from .config import DistillationConfig
from .data import RunData, to_label_ids
from .preflight import PreflightError, check_run, pushed_targets_repo_id, run_inputs
from .run_state import STAGES, STATE_DIR, VOLATILE, RunLock, RunState  # noqa: F401 - re-exported
from .tasks import TASK_NAMES, get_task

logger = logging.getLogger("hf_distill.pipeline")

TASKS = TASK_NAMES


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
        metadata={
            "help": 'JSON config attributes for the student, e.g. {"resid_pdrop": 0.0} (default: the teacher\'s).'
        },
    )
    student_layer_strategy: str = field(
        default="uniform", metadata={"help": "Which blocks to keep.", "choices": ["uniform", "first", "last"]}
    )
    trim_vocabulary: bool = field(
        default=False,
        metadata={
            "help": "Keep only the tokens the training text uses in the student's vocabulary and embeddings "
            "(sequence classification; see hf_distill.vocabulary)."
        },
    )
    trim_min_corpus_tokens: int = field(
        default=1000,
        metadata={
            "help": "trim_vocabulary refuses a training text of fewer tokens (its vocabulary would turn ordinary "
            "words into characters or [UNK]); lower it only for a text that is all the model will read."
        },
    )
    student_intermediate_size: int | None = field(
        default=None, metadata={"help": "Keep this many FFN neurons per student block, the most active ones."}
    )
    student_num_attention_heads: int | None = field(
        default=None, metadata={"help": "Attention heads per student block (not supported with transformers 5)."}
    )
    dataset: str | None = field(default=None, metadata={"help": "A Hub data set id or local path."})
    dataset_config: str | None = field(default=None, metadata={"help": "Configuration name of the Hub data set."})
    train_file: str | None = field(default=None, metadata={"help": "Local training file (csv/tsv/json/jsonl/txt)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file."})
    student_train_file: str | None = field(
        default=None,
        metadata={
            "help": "Causal LMs: a local file of the rows the student trains on, when they are not the teacher's "
            "(e.g. prompt-only rows for on-policy distillation, lmbda 1, while the teacher learns the text of "
            "train_file). Default: the training split."
        },
    )
    chat_template: str | None = field(
        default=None,
        metadata={
            "help": "A chat template (Jinja text, or a path to a .jinja file) given to the teacher's tokenizer, "
            "so a tokenizer trained from scratch can render conversational rows; saved with teacher and student."
        },
    )
    train_split: str = field(default="train", metadata={"help": "Training split name."})
    validation_split: str = field(default="validation", metadata={"help": "Validation split name."})
    text_column: str | None = field(default=None, metadata={"help": "Text column (default: text/sentence/...)."})
    label_column: str = field(default="label", metadata={"help": "Label column (classification)."})
    class_names: str | None = field(
        default=None, metadata={"help": 'Names of the label ids, e.g. "negative,positive".'}
    )
    num_labelled: int | None = field(
        default=None, metadata={"help": "Use this many training rows with their labels (default: all)."}
    )
    num_transfer: int = field(
        default=0,
        metadata={"help": "Further training rows used without labels: the student learns them from the teacher."},
    )
    max_length: int = field(default=128, metadata={"help": "Truncate tokenized texts to this length."})
    use_soft_targets: bool = field(default=True, metadata={"help": "Cache the teacher's outputs once (stage 2)."})
    top_k: int | None = field(default=None, metadata={"help": "Keep the teacher's top-k per token (token tasks)."})
    soft_target_batch_size: int = field(default=64, metadata={"help": "Batch size of soft-target generation."})
    soft_targets: str | None = field(
        default=None,
        metadata={
            "help": "Published soft targets (a Hub dataset id or a local folder, see hf_distill.shared_targets): "
            "train from them, verified, instead of running the teacher over the training data."
        },
    )
    push_soft_targets: bool = field(
        default=False, metadata={"help": "The push stage also publishes this run's soft targets as a Hub dataset."}
    )
    soft_targets_repo_id: str | None = field(
        default=None, metadata={"help": "Dataset repo for push_soft_targets (default: <hub_model_id>-soft-targets)."}
    )
    selection_size: str | None = field(
        default=None,
        metadata={
            "help": "Hold out a selection split from the training data: a number of rows (e.g. 500) or a share "
            "of them (e.g. 0.1). It is never trained on and is what chooses among settings (the student's "
            "evaluation during training: eval_strategy, load_best_model_at_end; `hf-distill plan`), while the "
            "report measures on the validation split. Default: no selection split."
        },
    )
    selection_seed: int = field(default=0, metadata={"help": "Seed of the rows selection_size holds out."})
    eval_max_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many rows."})
    eval_sample_prompts: int = field(
        default=32,
        metadata={
            "help": "Causal LMs: prompts (first tokens of evaluation texts) both models continue, "
            "scored by the teacher (hf_distill.sample_quality); 0 skips the measure."
        },
    )
    eval_sample_new_tokens: int = field(default=32, metadata={"help": "Causal LMs: new tokens per sample."})
    benchmark_threads: int | None = field(default=None, metadata={"help": "CPU threads for the speed benchmark."})
    benchmark_batch_size: int = field(default=32, metadata={"help": "Batch size of the throughput benchmark."})
    benchmark_runs: int = field(default=20, metadata={"help": "Timed batches per model for throughput (latency: 50)."})
    export_onnx: bool = field(
        default=False, metadata={"help": "Export the student to ONNX (student/onnx/model.onnx), verified, measured."}
    )
    quantize: str | None = field(
        default=None, metadata={"help": "Also write a dynamic int8 ONNX file (needs export_onnx).", "choices": ["int8"]}
    )
    optimize_onnx: bool = field(
        default=True,
        metadata={
            "help": "Fuse an encoder's ONNX graph for onnxruntime (attention, LayerNorm, GELU); "
            "false keeps standard ONNX operators."
        },
    )
    license: str = field(default="apache-2.0", metadata={"help": "License of the published student."})
    base_model: str | None = field(default=None, metadata={"help": "Card `base_model` (default: the teacher)."})
    hub_space_id: str | None = field(default=None, metadata={"help": "Also publish the demo Space under this id."})
    prompt_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Causal LM, prompt-completion training: the first N tokens of each training text are the "
            "prompt and the loss covers the rest; needed by lmbda/seq_kd (the completions are generated from "
            "the prompts; see hf_distill.on_policy)."
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Redo every stage, replacing earlier outputs."})
    stop_after: str | None = field(default=None, metadata={"help": "Stop after this stage.", "choices": list(STAGES)})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} is invalid: choose one of {', '.join(TASKS)}")
        if self.teacher_from_scratch and not self.teacher_config:
            raise ValueError("teacher_from_scratch needs teacher_config (a JSON object with model_type and sizes)")
        if self.num_transfer < 0 or (self.num_labelled is not None and self.num_labelled < 0):
            raise ValueError("num_labelled and num_transfer must be >= 0")
        if self.num_transfer and not get_task(self.task).has_class_labels:
            raise ValueError("num_transfer (unlabelled rows) applies to sequence classification")
        if (self.soft_targets or self.push_soft_targets) and not self.use_soft_targets:
            raise ValueError(
                "soft_targets / push_soft_targets need use_soft_targets: true (the student learns from cached targets)"
            )
        if self.quantize and not self.export_onnx:
            raise ValueError(
                f"quantize={self.quantize!r} needs export_onnx: true (the int8 file is made from the ONNX export)"
            )
        positive = (
            "max_length",
            "tokenizer_vocab_size",
            "teacher_batch_size",
            "soft_target_batch_size",
            "benchmark_batch_size",
            "benchmark_runs",
            "student_layers",
            "eval_max_samples",
            "top_k",
        )
        bad = [
            f"{name}={getattr(self, name)!r}"
            for name in positive
            if getattr(self, name) is not None and getattr(self, name) <= 0
        ]
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be > 0")
        if self.prompt_tokens is not None and not 1 <= self.prompt_tokens < self.max_length:
            raise ValueError(f"prompt_tokens={self.prompt_tokens!r} must be in [1, max_length={self.max_length})")
        if self.eval_sample_prompts < 0 or self.eval_sample_new_tokens < 1:
            raise ValueError(
                f"eval_sample_prompts={self.eval_sample_prompts!r} must be >= 0 (0 skips the measure) and "
                f"eval_sample_new_tokens={self.eval_sample_new_tokens!r} >= 1"
            )
        from .data import parse_selection_size
        from .students import check_compression_arguments

        parse_selection_size(self.selection_size)
        check_compression_arguments(self)


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


class _RunFieldParser(HfArgumentParser):
    """`HfArgumentParser` of `PipelineArguments` and `DistillationConfig` whose errors are one line (argparse's own
    prints the usage of every field, 165 lines), and where a field both classes define (``max_length``) is one
    option, documented by `PipelineArguments`, whose value goes to both."""

    def __init__(self) -> None:
        super().__init__((PipelineArguments, DistillationConfig))

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise ValueError(f"{message}: `hf-distill run --help-fields` lists the fields and their values")

    @staticmethod
    def _parse_dataclass_field(parser, field: dataclasses.Field) -> None:
        if f"--{field.name}" not in parser._option_string_actions:
            HfArgumentParser._parse_dataclass_field(parser, field)

    def parse_args_into_dataclasses(self, args=None, return_remaining_strings=False, **kwargs: Any) -> tuple:
        # HfArgumentParser's own removes each class's fields from the namespace: a shared one would reach one class.
        namespace, remaining = self.parse_known_args(args=args)
        if remaining and not return_remaining_strings:
            raise ValueError(f"unknown arguments: {remaining}")
        outputs = tuple(
            cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init})
            for cls in self.dataclass_types
        )
        return (*outputs, remaining) if return_remaining_strings else outputs


def run_field_parser() -> HfArgumentParser:
    """The parser of `hf-distill run`'s fields (`PipelineArguments` and `DistillationConfig`)."""
    return _RunFieldParser()


def parse_run_config(config_path: str | os.PathLike | None, overrides: list[str] | None = None):
    """Parse a YAML config plus ``--field value`` overrides into (PipelineArguments, DistillationConfig).

    The YAML is turned into command-line form, so both go through `HfArgumentParser` with the same types and
    checks, and a later ``--field`` wins.
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        if not Path(config_path).is_file():
            raise FileNotFoundError(f"config file {config_path} not found")
        try:
            loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}" if where is not None else ""
            raise ValueError(f"{config_path} is not valid YAML{line}: {getattr(err, 'problem', None) or err}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{config_path} is not UTF-8 text") from None
        if not isinstance(loaded, dict):
            raise ValueError(
                f"{config_path}: expected a mapping of field: value (one `field: value` per line), "
                f"got a {type(loaded).__name__}"
            )
        values = loaded
    overrides = list(overrides or [])
    given = set(values) | {k[2:].split("=", 1)[0] for k in overrides if k.startswith("--")}
    if "hub_token" in given:
        raise ValueError(
            "hub_token is refused: a token in the config would be written into the run folder and every checkpoint. "
            "Set the HF_TOKEN environment variable or run `hf auth login` instead"
        )
    for key in (k[2:].split("=", 1)[0] for k in overrides if k.startswith("--")):
        values.pop(key, None)
    parser = run_field_parser()
    argv = _to_argv(values) + overrides
    pipe, cfg, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        raise ValueError(
            f"unknown config field(s) {' '.join(u for u in unknown if u.startswith('--')) or unknown}: "
            "`hf-distill run --help-fields` lists the fields"
        )
    # What the user set (in the YAML or on the command line), as parsed: "400" and 400 are the same setting.
    chosen = set(values) | {k[2:].split("=", 1)[0] for k in overrides if k.startswith("--")}
    return pipe, cfg, _as_recorded(pipe, cfg, chosen)


def _as_recorded(pipe: PipelineArguments, cfg: DistillationConfig, keys: Any) -> dict[str, Any]:
    """The parsed values of `keys`, as JSON would store them (so a recorded setting compares equal to a new one)."""
    settings = {k: getattr(pipe, k) if hasattr(pipe, k) else getattr(cfg, k, None) for k in sorted(keys)}
    return json.loads(json.dumps(settings, default=str))


def effective_settings(settings: dict[str, Any], keys: Any) -> dict[str, Any]:
    """The values `keys` take in a run with these recorded `settings`: a set field as set, an unset one at its
    default as a run resolves it (e.g. `scale_by_temperature_squared` from `loss_type`).

    Recorded settings hold only what the user set, so "alpha unset" and "alpha: 0.5" (its default) are the same run.

    Args:
        settings: recorded settings (`parse_run_config`'s third value, or ``run_config.json``).
        keys: the fields wanted.
    """
    parser = run_field_parser()
    values = {"teacher": "", **{k: v for k, v in settings.items() if v is not None}}
    pipe, cfg = parser.parse_dict(values, allow_extra_keys=True)  # recorded values are typed already (JSON)
    return _as_recorded(pipe, cfg, keys)


# ---- the stages ---------------------------------------------------------------------------------------------------


class Pipeline:
    """The stages of one run; `run()` executes those not finished yet.

    Args:
        args: what to distil, from which data (`PipelineArguments`).
        config: the student's training arguments (`DistillationConfig`); never modified.
        settings: what the user set (from `parse_run_config`), recorded with the finished stages.
    """

    MAIN_ONLY = {"export", "evaluate", "card", "push"}

    def __init__(self, args: PipelineArguments, config: DistillationConfig, settings: dict[str, Any] | None = None):
        from accelerate import PartialState

        self.args = args
        self.config = config
        self.settings = dict(settings) if settings is not None else {}
        self.root = Path(config.output_dir)
        self.state = RunState(self.root)
        self.data = RunData(args, seed=config.seed)
        self.dist = PartialState()
        self.teacher_dir = self.root / "teacher"
        self.student_dir = self.root / "student"

    @property
    def classification(self) -> bool:
        return get_task(self.args.task).has_class_labels

    def teacher_names(self) -> list[str] | None:
        """The saved teacher's class names in id order (classification), else None."""
        if not self.classification:
            return None
        from transformers import AutoConfig

        return list(AutoConfig.from_pretrained(self.teacher_dir).id2label.values())

    # -- stage 1: teacher ---------------------------------------------------------------------------------------

    def stage_teacher(self) -> dict[str, Any]:
        from transformers import Trainer, TrainingArguments

        from .models import build_teacher, teacher_tokenizer
        from .on_policy import PROMPT_LENGTH, PromptCompletionCollator

        corpus = self.data.texts(self.data.train()) if self.args.teacher_from_scratch else None
        tokenizer = teacher_tokenizer(self.args, self.config, corpus)
        names = self.data.label_names() if self.classification else None
        model, needs_training = build_teacher(self.args, self.config, tokenizer, names)
        if self.args.teacher_from_scratch and not self.args.tokenizer:
            # The tokenizer was trained just now: what needs it is checked before the teacher trains.
            from .preflight import model_problems

            problems = model_problems(self.args, self.data, model.config, tokenizer)
            if problems:
                raise PreflightError(problems)
        train = self.args.train_teacher == "yes" or (self.args.train_teacher == "auto" and needs_training)
        info: dict[str, Any] = {"trained": train, "source": self.args.teacher}
        if train:
            labelled, _ = self.data.training_rows()
            if names is not None:
                labelled = to_label_ids(labelled, self.args.label_column, names)
            data = self.data.tokenize(labelled, tokenizer)
            collator = get_task(self.args.task).default_collator(tokenizer)
            if PROMPT_LENGTH in data.column_names:  # LM prompt-completion rows: the teacher learns the completions
                collator = PromptCompletionCollator(tokenizer)
            targs = TrainingArguments(
                output_dir=str(self.root / "teacher_checkpoints"),
                num_train_epochs=self.args.teacher_epochs,
                max_steps=self.args.teacher_max_steps,
                learning_rate=self.args.teacher_learning_rate,
                per_device_train_batch_size=self.args.teacher_batch_size,
                weight_decay=0.01,
                logging_steps=self.config.logging_steps,
                save_strategy="no",
                report_to=[],
                seed=self.config.seed,
                use_cpu=self.config.use_cpu,
                disable_tqdm=self.config.disable_tqdm,
                bf16=self.config.bf16,
                fp16=self.config.fp16,
            )
            started = time.perf_counter()
            trainer = Trainer(
                model=model, args=targs, train_dataset=data, processing_class=tokenizer, data_collator=collator
            )
            result = trainer.train()
            info.update(
                train_seconds=round(time.perf_counter() - started, 1),
                train_loss=result.training_loss,
                train_rows=len(data),
            )
        if self.dist.is_main_process:
            with atomic_directory(self.teacher_dir) as tmp:
                model.save_pretrained(tmp, safe_serialization=True)
                tokenizer.save_pretrained(tmp)
        self.dist.wait_for_everyone()
        return info

    # -- stage 2: soft targets ----------------------------------------------------------------------------------

    def soft_targets(self, teacher, tokenizer):
        """The training rows with the teacher's cached outputs: reused when the cache verifies against its
        manifest (same teacher weights, data and settings, files intact), regenerated otherwise."""
        from .soft_targets import generate_soft_targets

        data = self.data.tokenize(self.data.student_rows(self.teacher_names()), tokenizer)
        # The main process runs the teacher (or verifies the cache) first; the others then find and verify it.
        with self.dist.main_process_first():
            return generate_soft_targets(
                teacher,
                data,
                top_k=self.args.top_k,
                batch_size=self.args.soft_target_batch_size,
                max_length=self.args.max_length,
                temperature=self.config.temperature,
                cache_dir=self.root / "soft_targets",
                teacher_id=str(self.teacher_dir),
                progress=self.dist.is_main_process,
            )

    def shared_targets(self, student_tokenizer, teacher):
        """The published soft targets of `soft_targets`, verified (shards, tokenizer, task, top-k, temperature,
        and that this run's teacher is the one that made them: it builds the student and is the evaluation's
        reference, so targets of another teacher would make the report compare against the wrong model);
        a trimmed student's tokenizer gets its ids mapped (see hf_distill.shared_targets)."""
        from .shared_targets import load_soft_targets
        from .soft_targets import weights_fingerprint

        expect: dict[str, Any] = {
            "task": self.args.task,
            "temperature": self.config.temperature,
            "teacher_weights": weights_fingerprint(teacher),
        }
        if self.args.top_k is not None:
            expect["top_k"] = self.args.top_k
        return load_soft_targets(self.args.soft_targets, student_tokenizer=student_tokenizer, expect=expect)

    def targets_repo_id(self) -> str | None:
        """The Hub dataset the student's soft targets come from or go to, if any (named by the card)."""
        from .card import looks_like_hub_id

        if self.args.soft_targets:
            return self.args.soft_targets if looks_like_hub_id(self.args.soft_targets) else None
        return pushed_targets_repo_id(self.args, self.config)

    def stage_soft_targets(self) -> dict[str, Any]:
        from .models import load_saved

        if self.args.soft_targets:  # published targets: downloaded and verified, the teacher does not run
            from .soft_targets import count_training_rows, soft_target_info

            started = time.perf_counter()
            teacher, tokenizer = load_saved(self.teacher_dir, self.args.task)
            result = self.shared_targets(tokenizer, teacher)
            # The student trains on these rows, not on train_file: the report records them.
            return {
                "rows": len(result),
                "seconds": round(time.perf_counter() - started, 1),
                "source": self.targets_repo_id() or "local folder",
                "revision": (soft_target_info(result) or {}).get("revision"),
                **count_training_rows(result),
            }
        teacher, tokenizer = load_saved(self.teacher_dir, self.args.task)
        started = time.perf_counter()
        result = self.soft_targets(teacher, tokenizer)
        return {
            "rows": len(result),
            "seconds": round(time.perf_counter() - started, 1),
            "path": str(Path(result.cache_files[0]["filename"]).parent.relative_to(self.root.resolve()))
            if result.cache_files
            else None,
        }

    # -- stage 3: student ---------------------------------------------------------------------------------------

    def build_student(self, teacher, tokenizer):
        """The student before training (a hook: other ways of building it go here)."""
        from .models import build_student

        calibration = None
        if self.args.student_intermediate_size is not None:
            from .students import calibration_batch

            # Width pruning keeps the FFN neurons most active on a sample of the training text (Minitron).
            calibration = calibration_batch(
                self.data.texts(self.data.train(), tokenizer), tokenizer, self.args.max_length, seed=self.config.seed
            )
        overrides = json.loads(self.args.student_config) if self.args.student_config else None
        return build_student(self.args, self.config, teacher, calibration=calibration, config_overrides=overrides)

    def trim_student(self, student, tokenizer):
        """Trim the student's vocabulary to the training text and measure what that changes on the validation
        text (the training text without one): `(student, its tokenizer, the change as a dict)`, the change logged."""
        from .vocabulary import trim_vocabulary, trimming_change

        student, trimmed = trim_vocabulary(
            student,
            tokenizer,
            self.data.texts(self.data.train(), tokenizer),
            min_corpus_tokens=self.args.trim_min_corpus_tokens,
        )
        measured = self.data.validation(self.args.eval_max_samples)
        what = "the validation text" if measured is not None else "the training text"
        measured = measured if measured is not None else self.data.train()
        change = trimming_change(
            tokenizer, trimmed, student.config.vocabulary_kept_ids, self.data.texts(measured, tokenizer)
        )
        logger.info(
            "student: vocabulary trimmed %d -> %d tokens; %s", len(tokenizer), len(trimmed), change.describe(what)
        )
        return (
            student,
            trimmed,
            {
                **asdict(change),
                "changed_share": change.changed_share,
                "unk_share": change.unk_share,
                "measured_on": what,
            },
        )

    def student_arguments(self, has_eval_data: bool) -> DistillationConfig:
        """The student's training arguments: the config with the stage's own folder, as a copy."""
        changes: dict[str, Any] = {
            "output_dir": str(self.root / "student_checkpoints"),
            "push_to_hub": False,  # the push stage publishes model, card and report together
            "hub_token": None,  # never pickled into a checkpoint's training_args.bin
        }
        if not has_eval_data and self.config.eval_strategy != "no":
            changes["eval_strategy"] = "no"
        return dataclasses.replace(self.config, **changes)

    def stage_student(self) -> dict[str, Any]:
        from .checkpoints import last_complete_checkpoint
        from .models import load_saved
        from .trainer import DistillationTrainer

        teacher, tokenizer = load_saved(self.teacher_dir, self.args.task)
        teacher_tokenizer = tokenizer
        student = self.build_student(teacher, tokenizer)
        trimming = None
        if self.args.trim_vocabulary:  # from here on `tokenizer` is the student's
            student, tokenizer, trimming = self.trim_student(student, tokenizer)
        # With cached soft targets the teacher does not run on training batches; it stays for the evaluation
        # loss (whose data has no cached columns) and for hidden-state/attention losses. The cache is verified
        # again here: it may have been deleted or damaged since the soft-target stage.
        if self.args.soft_targets:
            train = self.shared_targets(
                tokenizer, teacher
            )  # the student's tokenizer: a trimmed one gets its ids mapped
        elif self.args.use_soft_targets:
            train = self.soft_targets(teacher, teacher_tokenizer)
            if self.args.trim_vocabulary:  # cached rows hold teacher ids; the trimming corpus encodes identically
                from .vocabulary import remap_dataset

                train = remap_dataset(train, student)
        elif self.args.prompt_tokens is not None:  # prompt-completion rows (on-policy / seq_kd need the prompts)
            from .on_policy import tokenize_prompt_completion

            train = tokenize_prompt_completion(
                self.data.student_rows(None),
                tokenizer,
                max_length=self.args.max_length,
                prompt_tokens=self.args.prompt_tokens,
                text_column=self.data.text_column(),
            )
        else:
            rows = self.data.student_train()
            rows = rows if rows is not None else self.data.student_rows(self.teacher_names())
            train = self.data.tokenize(rows, tokenizer, self.config.max_completion_length)
        eval_data = self.choosing_rows()
        if eval_data is not None:
            if self.classification:
                eval_data = to_label_ids(eval_data, self.args.label_column, self.teacher_names())
            eval_data = self.data.tokenize(eval_data, tokenizer, self.config.max_completion_length)
        targs = self.student_arguments(eval_data is not None)
        trainer = DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=targs,
            train_dataset=train,
            eval_dataset=eval_data,
            processing_class=tokenizer,
            teacher_processing_class=teacher_tokenizer,
        )
        last = last_complete_checkpoint(targs.output_dir, remove_incomplete=self.dist.is_main_process)
        self.dist.wait_for_everyone()
        if last:
            logger.info("student: resuming from %s", last)
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - started
        metrics = trainer.evaluate() if eval_data is not None else {}
        if self.dist.is_main_process:
            clear_staging(self.student_dir)
        self.dist.wait_for_everyone()
        staging = staging_path(self.student_dir)
        trainer.save_model(str(staging))  # every process joins (sharded set-ups gather weights); the main one writes
        if self.dist.is_main_process:
            tokenizer.save_pretrained(staging)
            # The publishable folder holds safetensors and JSON only; the pickled arguments stay in the checkpoints.
            (staging / "training_args.bin").unlink(missing_ok=True)
            replace_directory(staging, self.student_dir)
        self.dist.wait_for_everyone()
        return {
            "train_seconds": round(seconds, 1),
            "resumed_from": last,
            "global_step": result.global_step,
            "train_loss": result.training_loss,
            "rows": len(train),
            "trimming": trimming,
            "eval": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "eval_split": "selection" if self.data.selection() is not None else self.args.validation_split,
        }

    # -- selection: which rows choose among settings -------------------------------------------------------------

    def choosing_rows(self):
        """The rows the student's evaluation during training reads (what early stopping and
        load_best_model_at_end choose on): the selection split when there is one, else the validation split."""
        selection = self.data.selection()
        return selection if selection is not None else self.data.validation(self.args.eval_max_samples)

    def selected_on(self) -> str:
        """Which rows chose among settings in this run, in words, for the report and the card."""
        evaluated = self.config.eval_strategy != "no"
        how = "the student's evaluations during training" + (
            " (load_best_model_at_end picked the checkpoint)" if self.config.load_best_model_at_end else ""
        )
        rows = self.data.selection_rows()
        if rows is not None:
            held = (
                f"a selection split of {len(rows[1])} rows held out of the {self.args.train_split} split "
                f"(selection_seed {self.args.selection_seed}), never trained on"
            )
            return f"{held}; {how} read it" if evaluated else f"{held} (this run's training evaluated nothing)"
        if evaluated and self.data.validation() is not None:
            return (
                f"the {self.args.validation_split} split, the same rows these figures are measured on: {how} "
                "read it (set selection_size to hold out a selection split)"
            )
        return "nothing in this run (no evaluation during training)"

    # -- stages 4-6: evaluation, card, push ---------------------------------------------------------------------

    def _validation_file_or_data(self):
        from .evaluation import EvalData

        val = self.data.validation()
        fmt = self.data.lm_format(val)
        text = self.data.text_column() if fmt is None or fmt.kind == "text" else "text"
        labels = None
        if self.classification:
            labels = to_label_ids(val, self.args.label_column, self.teacher_names())["label"]
        source = self.args.validation_file or self.args.dataset or "custom"
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.teacher_dir) if fmt is not None and fmt.conversational else None
        return EvalData(
            texts=self.data.texts(val, tokenizer),
            labels=labels,
            dataset=str(source),
            split=self.args.validation_split,
            text_column=text,
            label_column=self.args.label_column if labels else None,
        )

    def stage_export(self) -> dict[str, Any]:
        from .export import export_onnx

        # Verified on the validation texts (the training texts when there is no validation split).
        rows = self.data.validation() or self.data.train()
        from transformers import AutoTokenizer

        texts = [
            t
            for t in self.data.texts(
                rows.select(range(min(256, len(rows)))), AutoTokenizer.from_pretrained(self.student_dir)
            )
            if t.strip()
        ]
        # The student folder is this run's own output: a previous export in it is replaced.
        result = export_onnx(
            self.student_dir,
            quantize=self.args.quantize,
            texts=texts,
            max_length=self.args.max_length,
            overwrite=True,
            optimize=self.args.optimize_onnx,
        )
        return {"files": result.files, "checks": [dataclasses.asdict(c) for c in result.checks]}

    def stage_evaluate(self) -> dict[str, Any]:
        from transformers import AutoConfig

        from .benchmark import BenchmarkSettings
        from .evaluation import evaluate_pair

        student_info = self.state.done("student") or {}
        teacher_info = self.state.done("teacher") or {}
        cfg = self.config
        student_config = AutoConfig.from_pretrained(self.student_dir)
        settings = {
            "loss_type": cfg.loss_type,
            "temperature": cfg.temperature,
            "alpha": cfg.alpha,
            "layers_kept": getattr(student_config, "distilled_from_layers", None),
            "steps": student_info.get("global_step"),
            "dataset": str(self.args.train_file or self.args.dataset),
            "labelled_rows": self.args.num_labelled,
            "transfer_rows": self.args.num_transfer,
            "soft_targets": "cached" + (f" top-{self.args.top_k}" if self.args.top_k else " full logits")
            if self.args.use_soft_targets
            else "live teacher",
            "hidden_loss_weight": cfg.hidden_loss_weight,
            "attention_loss_weight": cfg.attention_loss_weight,
            "stages": "teacher fine-tuning → soft targets → student"
            if teacher_info.get("trained")
            else "soft targets → student",
        }
        targets = self.state.done("soft_targets") or {}
        if self.args.soft_targets:
            # The student trained on the published rows: name them (a repo id; a local folder by its name only)
            # and count them, instead of the run's train file and its labelled/transfer settings.
            settings["dataset"] = self.targets_repo_id() or f"local:{Path(self.args.soft_targets).name}"
            settings["soft_targets_revision"] = targets.get("revision")
            settings["labelled_rows"] = targets.get("labelled_rows")
            settings["transfer_rows"] = targets.get("transfer_rows")
        if self.targets_repo_id():
            settings["soft_targets_dataset"] = self.targets_repo_id()
            settings["stages"] = (
                f"the teacher's soft targets, published as the Hub dataset {self.targets_repo_id()} → student"
            )
        from .students import compression_facts

        settings.update(compression_facts(student_config))
        trimming = student_info.get("trimming")
        if trimming:  # what trimming changes on text it was not cut to, in words (the card shows it as a row)
            from .vocabulary import TrimmingChange

            change = TrimmingChange(**{k: trimming[k] for k in ("texts", "tokens", "changed_tokens", "unk_tokens")})
            settings["vocabulary_changes"] = change.describe(trimming["measured_on"])
        if cfg.generates or self.args.prompt_tokens is not None:
            settings.update(prompt_tokens=self.args.prompt_tokens, lmbda=cfg.lmbda, seq_kd=cfg.seq_kd)
            if cfg.generates:
                settings.update(max_new_tokens=cfg.max_new_tokens, generation_temperature=cfg.generation_temperature)
        training = {
            "train_seconds": student_info.get("train_seconds"),
            "teacher_train_seconds": teacher_info.get("train_seconds"),
        }
        bench = BenchmarkSettings(
            batch_size=self.args.benchmark_batch_size,
            throughput_runs=self.args.benchmark_runs,
            latency_runs=max(50, self.args.benchmark_runs),
            max_length=self.args.max_length,
            threads=self.args.benchmark_threads,
        )
        report = evaluate_pair(
            str(self.teacher_dir),
            str(self.student_dir),
            self._validation_file_or_data(),
            task=None,
            max_samples=self.args.eval_max_samples,
            max_length=self.args.max_length,
            threads=self.args.benchmark_threads,
            benchmark=bench,
            distillation=settings,
            training=training,
            output_dir=str(self.student_dir),
            selected_on=self.selected_on(),
            **self._sample_arguments(),
        )
        return {
            "report": "student/distillation_report.json",
            "ratios": asdict(report.ratios) if hasattr(report, "ratios") else None,
        }

    def _sample_arguments(self) -> dict[str, Any]:
        """evaluate_pair's sample-quality settings (causal LMs only; other tasks ignore them)."""
        from .sample_quality import SampleSettings

        if not self.args.eval_sample_prompts:
            return {"measure_sample_quality": False}
        return {
            "samples": SampleSettings(
                num_prompts=self.args.eval_sample_prompts, max_new_tokens=self.args.eval_sample_new_tokens
            )
        }

    def stage_card(self) -> dict[str, Any]:
        from .card import write_card

        path = write_card(
            self.student_dir / "distillation_report.json",
            self.student_dir,
            repo_id=self.config.hub_model_id,
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

        info: dict[str, Any] = {}
        if self.args.push_soft_targets and not self.args.soft_targets:
            from .shared_targets import push_soft_targets

            # Pushed first: the model's card names this dataset; its card lists the model.
            cache = self.root / (self.state.done("soft_targets") or {}).get("path", "soft_targets")
            source = self.args.dataset or self.args.train_file
            # The teacher's Hub id only when this run used it as it is; a teacher trained here is named by its
            # weights' hash (and shown as local:RUN/teacher).
            as_is = not self.args.teacher_from_scratch and not (self.state.done("teacher") or {}).get("trained")
            info["soft_targets_commit"] = push_soft_targets(
                cache,
                self.targets_repo_id(),
                tokenizer=self.teacher_dir,
                teacher_id=self.args.teacher if as_is else None,
                teacher_revision=self.config.teacher_revision if as_is else None,
                data_source=str(source) if source else None,
                models=[self.config.hub_model_id],
                private=bool(self.config.hub_private_repo),
                license=self.args.license,
            )
        url = push_to_hub(
            self.student_dir,
            self.config.hub_model_id,
            private=bool(self.config.hub_private_repo),
            space_id=self.args.hub_space_id or None,
        )
        info["model_commit"] = str(url)
        if self.args.hub_space_id:
            teacher_repo = self.args.teacher if not self.args.teacher_from_scratch else self.config.hub_model_id
            report = self.student_dir / "distillation_report.json"
            info["space_commit"] = str(
                push_space(
                    self.args.hub_space_id,
                    self.config.hub_model_id,
                    teacher_repo,
                    report_path=report if report.is_file() else None,
                    student_dir=self.student_dir,
                )
            )
        return info

    # -- driver -------------------------------------------------------------------------------------------------

    def run_settings(self) -> dict[str, Any]:
        """The user's settings plus the fingerprint of the data (so a file edited in place is noticed)."""
        return {**self.settings, "data_fingerprint": self.data.fingerprint()}

    def check(self) -> list[str]:
        """The validation pass: every problem knowable before the first stage (see `preflight.check_run`)."""
        try:
            settings = self.run_settings()
        except Exception:  # noqa: BLE001 - unreadable data: check_run reports it with the other problems
            settings = self.settings
        return check_run(self.args, self.config, data=self.data, settings=settings) + self._trimming_problems()

    def _trimming_problems(self) -> list[str]:
        """trim_vocabulary's corpus rule, checked before the teacher trains (the student stage trims after it).
        A from-scratch teacher's tokenizer does not exist yet; unreadable data or teachers are reported by
        check_run, so they are not reported again here."""
        if not self.args.trim_vocabulary or (self.args.teacher_from_scratch and not self.args.tokenizer):
            return []
        from .models import teacher_tokenizer
        from .vocabulary import check_trimming_corpus

        try:
            tokenizer = teacher_tokenizer(self.args, self.config)
            texts = self.data.texts(self.data.train(), tokenizer)
        except Exception:  # noqa: BLE001 - reported by check_run
            return []
        try:
            check_trimming_corpus(tokenizer, [t for t in texts if isinstance(t, str)], self.args.trim_min_corpus_tokens)
        except ValueError as err:
            return [f"trim_vocabulary: {err}"]
        return []

    def run(self) -> dict[str, Any]:
        """Check the configuration, then run the unfinished stages in order; returns each stage's marker."""
        problems = self.check()
        if problems:
            raise PreflightError(problems)
        settings = self.run_settings()
        lock = RunLock(self.root)
        if self.dist.is_main_process:
            lock.acquire()
        try:
            if self.dist.is_main_process:
                self.state.prepare(settings, self.args.overwrite, inputs=run_inputs(self.args))
            self.dist.wait_for_everyone()
            return self._run_stages(settings)
        finally:
            lock.release()

    def _run_stages(self, settings: dict[str, Any]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for stage in STAGES:
            if (stage == "soft_targets" and not self.args.use_soft_targets) or (
                stage == "export" and not self.args.export_onnx
            ):
                continue
            done = self.state.done(stage)
            if done is not None:
                logger.info("stage %s: finished earlier, skipping", stage)
                results[stage] = {**done, "skipped": True}
            else:
                if stage in self.MAIN_ONLY and not self.dist.is_main_process:
                    self.dist.wait_for_everyone()
                    continue
                logger.info("stage %s: running", stage)
                started = time.perf_counter()
                with disk_space_for(self.root):
                    info = getattr(self, f"stage_{stage}")()
                info["stage_seconds"] = round(time.perf_counter() - started, 1)
                # A run without push leaves that stage open, so a later `--push_to_hub true` run publishes.
                if self.dist.is_main_process and not (stage == "push" and not self.config.push_to_hub):
                    self.state.mark(stage, settings, **info)
                self.dist.wait_for_everyone()
                results[stage] = info
            if self.args.stop_after == stage:
                break
        return results


def run_from_config(
    config_path: str | os.PathLike | None, overrides: list[str] | None = None, *, check_only: bool = False
) -> dict[str, Any]:
    """`hf-distill run` from Python: parse the YAML (and overrides), check it, and run the unfinished stages.

    Args:
        config_path: a YAML file of `PipelineArguments` and `DistillationConfig` fields, or None.
        overrides: ``--field value`` pairs that win over the YAML.
        check_only: only the validation pass (`hf-distill run --check`): nothing is written.

    Raises:
        PreflightError: the configuration has problems (all of them are listed).
    """
    args, config, settings = parse_run_config(config_path, overrides)
    pipeline = Pipeline(args, config, settings)
    if check_only:
        problems = pipeline.check()
        if problems:
            raise PreflightError(problems, source=str(config_path) if config_path else None)
        return {}
    return pipeline.run()
