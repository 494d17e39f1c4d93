"""The fields of `hf-distill run` (`PipelineArguments`, beside `DistillationConfig`'s) and how a YAML config and
command-line overrides become them; `effective_settings` resolves recorded settings against their defaults."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from ..core.tasks import TASK_NAMES, get_task
from ..training.config import DistillationConfig

TASKS = TASK_NAMES
# The stages of a run, in order (each writes a marker in the run folder: `hf_distill.pipeline.run_state`).
STAGES = ("teacher", "soft_targets", "student", "export", "evaluate", "card", "push")


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
    recipe_chosen_by: str | None = field(
        default=None,
        metadata={
            "help": "How this run's settings were chosen when that happened outside the run, e.g. 'a recipe sweep "
            "(benchmarks/sst2_recipe.py) on the selection split'; the card states it beside the rows that measured. "
            "A sweep that chose on the split the card reports is what selection_size is there to avoid."
        },
    )
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
        from ..core.data import parse_selection_size
        from ..students.blocks import check_compression_arguments

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

    Args:
        config_path: the YAML file (a mapping of field: value), or None for overrides alone.
        overrides: command-line arguments (``--field value`` or ``--field=value``; ``--max-steps`` and
            ``--max_steps`` are the same field).

    Returns:
        (PipelineArguments, DistillationConfig, settings): settings are the fields the user set, as parsed and as
        JSON stores them (what the run folder records).

    Raises:
        FileNotFoundError: the config file does not exist.
        ValueError: the file is not UTF-8 YAML holding a mapping, a field is unknown, or `hub_token` is given.
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
    # `--max-steps 3` is `--max_steps 3`: the field's name, as the YAML spells it (and as the checks below read it)
    overrides = [
        "--" + o[2:].split("=", 1)[0].replace("-", "_") + o[2:][len(o[2:].split("=", 1)[0]) :]
        if o.startswith("--")
        else o
        for o in overrides or []
    ]
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
