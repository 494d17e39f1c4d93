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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_directory, clear_staging, disk_space_for, replace_directory, staging_path
from ..core.data import RunData, to_label_ids
from ..core.tasks import TASK_NAMES, get_task
from ..training.config import DistillationConfig
from .arguments import (  # noqa: F401 - re-exported
    PipelineArguments,
    effective_settings,
    parse_run_config,
    run_field_parser,
)
from .preflight import PreflightError, check_run, pushed_targets_repo_id, run_inputs
from .run_state import STAGES, STATE_DIR, VOLATILE, RunLock, RunState  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

TASKS = TASK_NAMES


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
        """Whether the run's task predicts class labels (the teacher's class names then matter)."""
        return get_task(self.args.task).has_class_labels

    def teacher_names(self) -> list[str] | None:
        """The saved teacher's class names in id order (classification), else None."""
        if not self.classification:
            return None
        from transformers import AutoConfig

        return list(AutoConfig.from_pretrained(self.teacher_dir).id2label.values())

    # -- stage 1: teacher ---------------------------------------------------------------------------------------

    def stage_teacher(self) -> dict[str, Any]:
        """Stage 1: the teacher, saved to ``output_dir/teacher``.

        `teacher` is loaded (or, with `teacher_from_scratch`, built from its config, with a tokenizer trained on the
        training text unless `tokenizer` names one) and, when `train_teacher` is "yes", or "auto" and the teacher
        needs it (a new classification head, from scratch), fine-tuned on the labelled rows with a plain
        `transformers.Trainer`.

        Returns:
            The stage's marker: whether the teacher was trained, its source, and when trained the training seconds,
            loss and rows.

        Raises:
            PreflightError: a tokenizer trained here does not suit the model or the data.
        """
        from transformers import Trainer, TrainingArguments

        from ..training.on_policy import PROMPT_LENGTH, PromptCompletionCollator
        from .models import build_teacher, teacher_tokenizer

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
        manifest (same teacher weights, data and settings, files intact), regenerated otherwise.

        Args:
            teacher: the saved teacher, loaded.
            tokenizer: the teacher's tokenizer.

        Returns:
            The rows with their soft-target columns (`generate_soft_targets`).
        """
        from ..targets.cache import generate_soft_targets

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
        a trimmed student's tokenizer gets its ids mapped (see `hf_distill.targets.shared`).

        Args:
            student_tokenizer: the tokenizer the student trains with.
            teacher: the saved teacher, loaded (its weights' fingerprint must match the targets').

        Returns:
            The published rows with their soft-target columns.

        Raises:
            SoftTargetCacheError: the targets are damaged or were made with another teacher or other settings.
        """
        from ..targets.cache import weights_fingerprint
        from ..targets.shared import load_soft_targets

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
        from ..publishing.card import looks_like_hub_id

        if self.args.soft_targets:
            return self.args.soft_targets if looks_like_hub_id(self.args.soft_targets) else None
        return pushed_targets_repo_id(self.args, self.config)

    def stage_soft_targets(self) -> dict[str, Any]:
        """Stage 2 (with `use_soft_targets`): the teacher's outputs on the training rows, cached under
        ``output_dir/soft_targets`` (or, with `soft_targets`, the published ones downloaded and verified; the teacher
        does not run).

        Returns:
            The stage's marker: the rows and seconds, and the cache's folder in the run (or the published targets'
            source, revision and labelled/transfer row counts).
        """
        from ..core.loading import load_saved

        if self.args.soft_targets:  # published targets: downloaded and verified, the teacher does not run
            from ..targets.cache import count_training_rows, soft_target_info

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
        """The student before training (a hook: other ways of building it go here).

        Args:
            teacher: the saved teacher, loaded.
            tokenizer: the teacher's tokenizer (tokenizes the calibration text of width pruning).
        """
        from .models import build_student

        calibration = None
        if self.args.student_intermediate_size is not None:
            from ..students.blocks import calibration_batch

            # Width pruning keeps the FFN neurons most active on a sample of the training text (Minitron).
            calibration = calibration_batch(
                self.data.texts(self.data.train(), tokenizer), tokenizer, self.args.max_length, seed=self.config.seed
            )
        overrides = json.loads(self.args.student_config) if self.args.student_config else None
        return build_student(self.args, self.config, teacher, calibration=calibration, config_overrides=overrides)

    def trim_student(self, student, tokenizer):
        """Trim the student's vocabulary to the training text and measure what that changes on the validation
        text (the training text without one); the change is logged.

        Args:
            student: the student built by `build_student`.
            tokenizer: the teacher's (and so far the student's) tokenizer.

        Returns:
            (the trimmed student, its tokenizer, the change as a dict for the stage's marker).
        """
        from ..students.vocabulary import trim_vocabulary, trimming_change

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
        """Stage 3: train the student with `DistillationTrainer` and save it to ``output_dir/student``.

        The student is built (`build_student`), optionally trimmed (`trim_student`), and trained on the cached,
        published or live-teacher rows, evaluated during training on `choosing_rows`; it resumes from its last complete
        checkpoint in ``output_dir/student_checkpoints``. The saved folder holds safetensors and JSON only.

        Returns:
            The stage's marker: training seconds, the checkpoint resumed from, global step, training loss, rows, the
            trimming change, the last evaluation's metrics and the split they were computed on.
        """
        from ..core.checkpoints import last_complete_checkpoint
        from ..core.loading import load_saved
        from ..training.trainer import DistillationTrainer

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
                from ..students.vocabulary import remap_dataset

                train = remap_dataset(train, student)
        elif self.args.prompt_tokens is not None:  # prompt-completion rows (on-policy / seq_kd need the prompts)
            from ..training.on_policy import tokenize_prompt_completion

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
        """Which rows chose among settings in this run, in words, for the report and the card (with
        `recipe_chosen_by`, how the run's settings themselves were chosen, first)."""
        within = self._selected_within()
        chosen_by = self.args.recipe_chosen_by
        return f"the recipe: {chosen_by}; within the run: {within}" if chosen_by else within

    def _selected_within(self) -> str:
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

    def _stages_done(self, teacher_info: dict) -> str:
        """The run's stages as the card lists them: only those that ran (no "soft targets" when the live teacher
        scored each batch instead of a cache, as on-policy runs do)."""
        stages = ["teacher fine-tuning"] if teacher_info.get("trained") else []
        if self.args.use_soft_targets:
            stages += ["soft targets", "student"]
        else:
            stages.append("student, the live teacher scoring each batch")
        return " → ".join(stages)

    def _validation_file_or_data(self):
        from ..evaluation.pair import EvalData

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
        """Stage 4 (with `export_onnx`): export the student to ``student/onnx`` (`export_onnx`, quantized when
        `quantize`), each file checked against PyTorch on up to 256 validation texts (training texts without a
        validation split); a previous export there is replaced.

        Returns:
            The stage's marker: the files written and the checks' results.

        Raises:
            OnnxExportError: the export fails or disagrees with the PyTorch student.
        """
        from ..export.onnx import export_onnx

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
        """Stage 5: measure teacher and student on the validation split with `evaluate_pair` and write
        ``student/distillation_report.json`` (and ``evaluation_examples.json``) with the run's distillation settings,
        training times and `selected_on`.

        Returns:
            The stage's marker: the report's path in the run and its ratios.
        """
        from transformers import AutoConfig

        from ..evaluation.benchmark import BenchmarkSettings
        from ..evaluation.measure import evaluate_pair

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
            "stages": self._stages_done(teacher_info),
        }
        if getattr(self.args, "student_train_file", None):
            # The student trained on its own rows (prompts, say), the teacher on the train file: name both.
            settings["teacher_dataset"] = settings["dataset"]
            settings["dataset"] = str(self.args.student_train_file)
        if not self.classification:
            # Labelled and transfer rows are classification's split of the training text; an LM has neither.
            settings["labelled_rows"] = settings["transfer_rows"] = None
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
        from ..students.blocks import compression_facts

        settings.update(compression_facts(student_config))
        trimming = student_info.get("trimming")
        if trimming:  # what trimming changes on text it was not cut to, in words (the card shows it as a row)
            from ..students.vocabulary import TrimmingChange

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
        from ..evaluation.sample_quality import SampleSettings

        if not self.args.eval_sample_prompts:
            return {"measure_sample_quality": False}
        return {
            "samples": SampleSettings(
                num_prompts=self.args.eval_sample_prompts, max_new_tokens=self.args.eval_sample_new_tokens
            )
        }

    def stage_card(self) -> dict[str, Any]:
        """Stage 6: write the student's model card (``student/README.md``) from the report (`write_card`), naming
        `hub_model_id`, the base model (`base_model`, else the teacher's Hub id) and `license`.

        Returns:
            The stage's marker: the card's path in the run.

        Raises:
            MissingCardField: the report lacks a figure the card needs.
        """
        from ..publishing.card import write_card

        path = write_card(
            self.student_dir / "distillation_report.json",
            self.student_dir,
            repo_id=self.config.hub_model_id,
            base_model=self.args.base_model or (self.args.teacher if not self.args.teacher_from_scratch else None),
            license=self.args.license,
        )
        return {"card": str(Path(path).relative_to(self.root))}

    def stage_push(self) -> dict[str, Any]:
        """Stage 7: publish the student folder (model, card, report) to `hub_model_id`; with `push_soft_targets` the
        soft targets first, as a Hub dataset the card names; with `hub_space_id` a demo Space.

        Without `push_to_hub` nothing is pushed and the stage stays open, so a later run with it publishes.

        Returns:
            The stage's marker: the commits made (or why nothing was pushed).

        Raises:
            ValueError: `push_to_hub` without `hub_model_id`.
            HubPublishError: the upload is refused or fails (the message says why and what to do).
        """
        if not self.config.push_to_hub:
            return {"pushed": False, "reason": "push_to_hub is off"}
        if not self.config.hub_model_id:
            raise ValueError("push_to_hub needs hub_model_id (e.g. your-name/my-distilled-model)")
        from ..publishing.publish import push_to_hub
        from ..publishing.space import push_space

        info: dict[str, Any] = {}
        if self.args.push_soft_targets and not self.args.soft_targets:
            from ..targets.shared import push_soft_targets

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
        from ..students.vocabulary import check_trimming_corpus
        from .models import teacher_tokenizer

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
