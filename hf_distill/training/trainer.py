"""`DistillationTrainer`: a `transformers.Trainer` whose loss mixes a teacher's soft targets with true labels."""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, Trainer
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.utils import can_return_loss, find_labels, logging

from ..core import lm_data, losses
from ..core.loading import check_weights, max_positions
from ..core.tasks import Task, detect_task, unwrap
from ..students import vocabulary
from ..students.compatibility import check_label_counts, check_label_order, check_vocabularies
from ..targets.cache import SOFT_TARGET_COLUMNS, SoftTargetCollator, soft_target_info
from . import chunked_losses, on_policy
from .config import DistillationConfig
from .projections import PROJECTIONS_FILE, HiddenStateProjections, StudentWithProjections, split_state_dict

logger = logging.get_logger(__name__)

__all__ = ["DistillationTrainer", "PROJECTIONS_FILE"]
COMPONENTS = ("loss_ce", "loss_kd", "loss_hidden", "loss_attn")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class DistillationTrainer(Trainer):
    """Train a student on a teacher's soft targets mixed with the true labels.

    Every `Trainer` argument is passed through. The teacher (a model, a `PeftModel`, or a local path / Hub id loaded
    with the student's auto class) is frozen, kept in eval mode, placed on the training device and never handed to
    the optimizer or to DDP. With `peft_config` the student is wrapped with `peft.get_peft_model` first.

    When the hidden-state loss compares layers of different widths, the student and its learned projections
    (`hf_distill.projections`) are handed to the Trainer as one module, so optimizer, checkpointing and
    DDP/FSDP/DeepSpeed treat the projections as part of the trained model; `trainer.projections` is that module,
    and saving writes the plain student folder plus ``distillation_projections.safetensors``.

    Language models (causal and masked LM) never materialise (batch, length, vocabulary) logits in training: both
    models' final hidden states are projected through their output embeddings a chunk of valid positions at a time
    (`hf_distill.chunked_losses`, `DistillationConfig.chunk_size`), for the KD and the CE term alike. Only a caller
    that asks for the logits (`compute_loss(..., return_outputs=True)` outside loss-only evaluation) gets the
    materialised path, which is also kept for models that post-process their logits (soft-capping, logit scale).
    """

    # The loss is normalised by the item count of the whole accumulated (and gathered) batch: see compute_loss.
    loss_is_scaled_for_ga = True
    _tag_names = ["distillation", "knowledge-distillation", "hf-distill"]

    def __init__(
        self,
        model: PreTrainedModel | nn.Module | str | None = None,
        teacher_model: PreTrainedModel | nn.Module | str | None = None,
        args: DistillationConfig | None = None,
        data_collator: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        peft_config: Any = None,
        teacher_processing_class: Any = None,
        **kwargs: Any,
    ) -> None:
        if args is None:
            raise ValueError(
                "DistillationTrainer needs args=DistillationConfig(output_dir=..., temperature=..., alpha=...)"
            )
        if not isinstance(args, DistillationConfig):
            raise TypeError(
                f"args must be a DistillationConfig (got {type(args).__name__}); it subclasses TrainingArguments and "
                "adds temperature, alpha, loss_type, ..."
            )
        if model is None or isinstance(model, str):
            raise ValueError(
                "pass the student as a model instance (e.g. AutoModelForSequenceClassification.from_pretrained(...))"
            )
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        self.task: Task = detect_task(model)

        if isinstance(teacher_model, str):
            teacher_model, loaded_tok = self._load_teacher(teacher_model, args)
            teacher_processing_class = teacher_processing_class or loaded_tok
        self.teacher = teacher_model
        # Causal-LM rows as TRL takes them (text, prompt/completion, prompt-only, messages) are tokenized here.
        train_dataset, eval_dataset = lm_data.prepare_trainer_datasets(
            self.task, args, processing_class, train_dataset, eval_dataset
        )
        self._check_soft_targets(train_dataset, args)
        self._check_on_policy(model, train_dataset, args, processing_class)
        self._generates = args.generates
        vocabulary.check_trimmed_student(model, self.teacher, train_dataset, processing_class, teacher_processing_class)
        self._needs_teacher_forward = self.teacher is not None and (
            args.alpha > 0 or args.hidden_loss_weight > 0 or args.attention_loss_weight > 0
        )
        if self.teacher is not None:
            self._check_compatible(model, self.teacher, processing_class, teacher_processing_class)
            self.teacher.requires_grad_(False)
            self.teacher.eval()
            if args.teacher_dtype != "auto":
                self.teacher.to(dtype=_DTYPES[args.teacher_dtype])
        if args.attention_loss_weight > 0:
            for m in (model, self.teacher):
                if m is not None:
                    unwrap(m).set_attn_implementation("eager")

        self.layer_pairs = self._resolve_layer_pairs(model, args)
        self.projections = self._build_projections(model, args)
        student = model
        if self.projections is not None:
            model = StudentWithProjections(student, self.projections)

        if data_collator is None and on_policy.PROMPT_LENGTH in _columns(train_dataset, eval_dataset):
            data_collator = on_policy.PromptCompletionCollator(processing_class)
        data_collator = SoftTargetCollator(
            data_collator if data_collator is not None else self.task.default_collator(processing_class),
            self.task,
            getattr(processing_class, "padding_side", "right"),
        )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        # Our compute_loss takes the item counts and never passes them to the model.
        self.model_accepts_loss_kwargs = True
        if self.projections is not None and self.args.label_names is None:
            # Trainer read these from the wrapper's forward(**kwargs); they are the student's.
            self.label_names = find_labels(type(unwrap(student)))
            self.can_return_loss = can_return_loss(type(unwrap(student)))
        if self.teacher is not None:
            self.teacher = self._place_teacher(self.teacher)
        self._component_sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "eval": {}}
        self._component_batches = {"train": 0, "eval": 0}
        # Whether a phase's components were divided by counts over all processes (then each process holds its share
        # of the global value, and the shares are summed), else by local counts (local means, averaged).
        self._component_global = {"train": False, "eval": False}
        # Micro-batches since the last log: [not generated by the student, generated by the student] (logged as
        # `student_generated_share`, the on-policy share lmbda asks for).
        self._generated_batches = [0, 0]
        self._last_component_step = -1

    # ---- set-up -------------------------------------------------------------------------------------------------

    def _load_teacher(self, name_or_path: str, args: DistillationConfig):
        """Load a teacher given by path or Hub id with the student's auto class (and its tokenizer when present)."""
        auto = self.task.auto_class
        kwargs = {"revision": args.teacher_revision, "trust_remote_code": args.trust_remote_code}
        if args.teacher_dtype != "auto":
            kwargs["dtype"] = _DTYPES[args.teacher_dtype]
        check_weights(name_or_path, "teacher")
        teacher = auto.from_pretrained(name_or_path, **kwargs)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                name_or_path, revision=args.teacher_revision, trust_remote_code=args.trust_remote_code
            )
        except (OSError, ValueError):
            tokenizer = None
        return teacher, tokenizer

    def _check_soft_targets(self, train_dataset: Any, args: DistillationConfig) -> None:
        columns = set(getattr(train_dataset, "column_names", None) or [])
        has_soft = bool(columns & set(SOFT_TARGET_COLUMNS))
        if has_soft and not self.task.caches_soft_targets:
            raise ValueError(
                "cached soft targets cannot serve masked LM: the teacher must see the same random masking as the "
                "student; drop the teacher_* columns and pass teacher_model"
            )
        if self.teacher is None:
            if not has_soft and args.alpha > 0:
                raise ValueError(
                    "no teacher: pass teacher_model, or a train_dataset with cached soft targets "
                    "(hf_distill.soft_targets.generate_soft_targets), or set alpha=0"
                )
            if args.hidden_loss_weight > 0 or args.attention_loss_weight > 0:
                raise ValueError("hidden-state and attention losses need a live teacher_model, not cached soft targets")
        info = soft_target_info(train_dataset)
        if has_soft and info and info.get("top_k") is not None:
            if abs(info["temperature"] - args.temperature) > 1e-9:
                raise ValueError(
                    f"the top-k soft targets were cached at temperature {info['temperature']} but "
                    f"DistillationConfig.temperature={args.temperature}: regenerate them at this temperature"
                )
            if args.loss_type == "mse":
                raise ValueError("loss_type='mse' needs full teacher logits; cache soft targets with top_k=None")

    def _check_on_policy(self, model, train_dataset: Any, args: DistillationConfig, processing_class: Any) -> None:
        """Refuse, at construction, what cannot generate or score completions during training."""
        if not args.generates:
            return
        mode = "lmbda > 0 (on-policy)" if args.lmbda > 0 else "seq_kd"
        if not (self.task.per_token and self.task.shift):
            raise ValueError(f"{mode} applies to causal LMs (the student generates text); this is a {self.task} model")
        columns = set(getattr(train_dataset, "column_names", None) or [])
        if self.teacher is None:
            raise ValueError(
                f"{mode} needs a live teacher_model to score the generated completions: pass teacher_model"
            )
        if columns & set(SOFT_TARGET_COLUMNS):
            raise ValueError(
                f"{mode}: cached soft targets cannot serve generated completions, the live teacher must score them; "
                "pass teacher_model and a train_dataset without teacher_* columns"
            )
        if args.lmbda > 0 and args.alpha == 0 and args.hidden_loss_weight == 0 and args.attention_loss_weight == 0:
            raise ValueError(
                "lmbda > 0 with alpha=0: student-generated batches have no CE (the student's samples are no ground "
                "truth), so they would train nothing; set alpha > 0"
            )
        if args.seq_kd and vocabulary.kept_ids_of(unwrap(model)) is not None:
            # The student's own samples are student ids (the teacher reads them mapped, as any batch); the teacher's
            # samples could hold ids the trimming dropped.
            raise ValueError(
                "seq_kd needs the teacher's vocabulary in the student (the teacher's samples may hold ids the "
                "trimming dropped): use lmbda (on-policy) with a trimmed student, or an untrimmed student"
            )
        if columns and on_policy.PROMPT_LENGTH not in columns:
            raise ValueError(
                f"{mode} needs prompt-completion data (a {on_policy.PROMPT_LENGTH} column): tokenize with "
                "hf_distill.on_policy.tokenize_prompt_completion (prompt/completion columns, or prompt_tokens=N)"
            )
        limit = min(n for n in (max_positions(unwrap(model)), max_positions(unwrap(self.teacher)), 10**9) if n)
        if columns and len(train_dataset):
            longest = max(train_dataset[on_policy.PROMPT_LENGTH])
            if longest + args.generated_tokens > limit:
                raise ValueError(
                    f"prompts of up to {longest} tokens + {args.generated_tokens} generated tokens (max_new_tokens, "
                    f"max_completion_length) exceed the models' "
                    f"{limit} positions: lower max_new_tokens or shorten the prompts"
                )
        pad = getattr(processing_class, "pad_token_id", None)
        eos = getattr(processing_class, "eos_token_id", None)
        gen = getattr(unwrap(model), "generation_config", None)
        if (
            pad is None
            and eos is None
            and getattr(gen, "pad_token_id", None) is None
            and getattr(gen, "eos_token_id", None) is None
        ):
            raise ValueError(
                f"{mode}: neither the tokenizer nor the student's generation config has a pad or EOS token"
            )

    def _place_teacher(self, teacher: nn.Module) -> nn.Module:
        """Put the teacher where it runs: its own device, or a DeepSpeed inference engine under ZeRO-3.

        It is never handed to `accelerator.prepare`, so DDP never wraps it (it has no trainable parameters).
        """
        if self.is_deepspeed_enabled:
            return _deepspeed_inference_engine(teacher, self.accelerator)
        if self.is_fsdp_enabled and self.args.teacher_device is None:
            logger.warning(
                "FSDP shards the student only: the teacher is replicated on every device. For a teacher too large for "
                "one device, cache its soft targets first (hf_distill.soft_targets) and pass teacher_model=None."
            )
        return teacher.to(self.args.teacher_device or self.args.device)

    def _check_compatible(self, student, teacher, student_tok, teacher_tok) -> None:
        teacher_task = detect_task(teacher)
        if teacher_task != self.task:
            raise ValueError(f"the teacher is a {teacher_task} model but the student is a {self.task} model")
        s_cfg, t_cfg = unwrap(student).config, unwrap(teacher).config
        if self.task.has_class_labels:
            check_label_counts(t_cfg, s_cfg)
            check_label_order(t_cfg, s_cfg)
        # A teacher that runs during training reads the student's input ids (evaluation loss included).
        check_vocabularies(
            t_cfg,
            s_cfg,
            teacher_tok,
            student_tok,
            task=self.task,
            # seq_kd: the student reads the teacher's generated ids too
            teacher_reads_student_ids=self._needs_teacher_forward or self._generates,
        )

    def _resolve_layer_pairs(self, student, args: DistillationConfig) -> list[tuple[int, int]]:
        if (args.hidden_loss_weight == 0 and args.attention_loss_weight == 0) or self.teacher is None:
            return []
        n_s = unwrap(student).config.num_hidden_layers
        n_t = unwrap(self.teacher).config.num_hidden_layers
        mapping = args.layer_pairs
        if mapping == "uniform":
            return [(i, round(i * n_t / n_s)) for i in range(1, n_s + 1)]
        if mapping == "last":
            return [(n_s, n_t)]
        for s, t in mapping:
            if s > n_s or t > n_t:
                raise ValueError(
                    f"DistillationConfig.layer_mapping pair {s}:{t} is out of range: the student has layers 0..{n_s} "
                    f"and the teacher 0..{n_t} (0 = embeddings)"
                )
        return list(mapping)

    def _build_projections(self, student, args: DistillationConfig) -> HiddenStateProjections | None:
        if args.hidden_loss_weight == 0 or not self.layer_pairs:
            return None
        d_s = unwrap(student).config.hidden_size
        d_t = unwrap(self.teacher).config.hidden_size
        if d_s == d_t:
            return None
        # One learned map per pair, trained with the student and saved beside it (not inside it).
        return HiddenStateProjections(d_s, d_t, [s for s, _ in self.layer_pairs])

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None and isinstance(self.model, StudentWithProjections):
            # The wrapper's forward takes **kwargs; the columns to keep are those the student accepts.
            params = inspect.signature(unwrap(self.model).forward).parameters
            self._signature_columns = list(params) + list({"label", "label_ids", *self.label_names})
        super()._set_signature_columns_if_needed()
        for column in (*SOFT_TARGET_COLUMNS, on_policy.PROMPT_LENGTH, on_policy.COMPLETION_MASK):
            if column not in self._signature_columns:
                self._signature_columns.append(column)

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        """`transformers.Trainer`'s weight-decayed parameters, less the hidden-state projections: they are trained
        without weight decay, as a plain linear probe would be.

        Args:
            model: the model being trained.
        """
        return [n for n in super().get_decay_parameter_names(model) if not n.startswith("projections.")]

    # ---- generated completions (on-policy / sequence-level KD) ---------------------------------------------------

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """The optimizer step's micro-batches, completions generated where due, then counted by
        `_get_num_items_in_batch`: the counts are those of the generated tokens, over the whole accumulated batch
        and all processes, so the loss is per generated token however the batch is split.

        Args:
            epoch_iterator: the data loader's iterator.
            num_batches: micro-batches in the optimizer step.
            device: where the counts are made.

        Returns:
            (micro-batches, items in the whole accumulated batch), as `transformers.Trainer.get_batch_samples`.
        """
        if not self.args.generates:
            return super().get_batch_samples(epoch_iterator, num_batches, device)
        step = self.state.global_step
        batches = (self.generated_batch(batch, step, i) for i, batch in enumerate(epoch_iterator))
        return super().get_batch_samples(batches, num_batches, device)

    def generated_batch(self, batch: dict[str, Any], step: int, index: int) -> dict[str, Any]:
        """`batch` with its completions replaced, or as is (the data's completions).

        With probability `lmbda` the student generates them (on-policy), else with `seq_kd` the teacher. The draw
        and the sampling are seeded from (seed, step, i * world_size + process index) for micro-batch i: runs are
        reproducible, and processes of a DDP run make the draws one process makes over the same global batch with
        gradient accumulation. Each process generates alone with the unwrapped model (no collective call, so
        processes may generate different lengths; padding is local). Sharded models (ZeRO-3, FSDP) generate in
        step on every process, so there the draw is the same on every process (seeded without the process index).

        Args:
            batch: a collated micro-batch (with ``prompt_input_ids`` when anything is to be generated).
            step: the optimizer step.
            index: the micro-batch's index in the step.

        Raises:
            ValueError: a batch to generate for has no prompts (names the tokenizer and collator to use).
        """
        args: DistillationConfig = self.args
        seed = on_policy.generation_seed(args.seed, step, index * args.world_size + args.process_index)
        draw_seed = on_policy.generation_seed(args.seed, step, index) if self._synced_generation() else seed
        on_policy_batch = args.lmbda > 0 and np.random.default_rng(draw_seed).random() < args.lmbda
        self._generated_batches[int(on_policy_batch)] += 1
        if not on_policy_batch and not args.seq_kd:
            return batch
        if on_policy.PROMPT_IDS not in batch:
            raise ValueError(
                "on-policy / seq_kd batches need prompts (prompt_input_ids): tokenize the data with "
                "hf_distill.on_policy.tokenize_prompt_completion and use its PromptCompletionCollator"
            )
        model = self._generation_model() if on_policy_batch else self.teacher
        if not on_policy_batch and self.is_deepspeed_enabled:
            model = model.module  # the teacher's DeepSpeed inference engine: generate with the module it holds
        with self.autocast_smart_context_manager():  # the precision the training forward runs in
            completions, mask = on_policy.generate_completions(
                model,
                batch[on_policy.PROMPT_IDS],
                batch[on_policy.PROMPT_MASK],
                self._generation_config(),
                seed=seed,
                synced_gpus=self._synced_generation(),
            )
        source = on_policy.SOURCE_STUDENT if on_policy_batch else on_policy.SOURCE_TEACHER
        return on_policy.completion_batch(
            batch[on_policy.PROMPT_IDS],
            batch[on_policy.PROMPT_MASK],
            completions,
            mask,
            self._generation_config().pad_token_id,
            source,
        )

    def _generation_model(self) -> nn.Module:
        """The student as it generates: unwrapped from DDP/compile, the projections wrapper removed, PEFT kept."""
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        return model.student if isinstance(model, StudentWithProjections) else model

    def _synced_generation(self) -> bool:
        # Sharded parameters (ZeRO-3, FSDP) are gathered layer by layer: every process must run the same number of
        # forwards, so generate keeps stepping on finished processes. Unsharded (DDP) processes generate alone.
        if self.is_fsdp_enabled:
            return True
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return bool(self.is_deepspeed_enabled and plugin is not None and plugin.zero_stage == 3)

    def _generation_config(self):
        if getattr(self, "_gen_config", None) is None:
            from transformers import GenerationConfig

            args: DistillationConfig = self.args
            tok = self.processing_class
            base = getattr(unwrap(self.model), "generation_config", None)
            eos = getattr(tok, "eos_token_id", None)
            eos = eos if eos is not None else getattr(base, "eos_token_id", None)
            pad = getattr(tok, "pad_token_id", None)
            pad = pad if pad is not None else getattr(base, "pad_token_id", None)
            pad = pad if pad is not None else (eos[0] if isinstance(eos, list) else eos)
            sample = args.generation_temperature > 0
            options = (
                dict(temperature=args.generation_temperature, top_p=args.generation_top_p, top_k=args.generation_top_k)
                if sample
                else {}
            )
            self._gen_config = GenerationConfig(
                max_new_tokens=args.generated_tokens,
                do_sample=sample,
                pad_token_id=pad,
                eos_token_id=eos,
                use_cache=True,
                **options,
            )
        return self._gen_config

    # ---- item counts --------------------------------------------------------------------------------------------

    def _count_items(self, batch: dict[str, Any]) -> torch.Tensor:
        """[CE items, KD items, real tokens] of one batch (the denominators of the loss terms).

        A student-generated batch has no CE items: its tokens are the student's samples, not ground truth."""
        input_ids = batch["input_ids"]
        attention_mask = batch.get("attention_mask")
        n_ce, n_kd = self.task.count_items(batch.get("labels"), attention_mask, input_ids)
        if _student_generated(batch):
            n_ce = 0
        n_tok = int(attention_mask.sum()) if attention_mask is not None else input_ids.numel()
        return torch.tensor([n_ce, n_kd, n_tok], dtype=torch.long)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Counts over all micro-batches of the optimizer step and, when averaging across devices, all processes."""
        if not batch_samples:
            return None
        counts = sum(self._count_items(b) for b in batch_samples).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.gather(counts[None]).sum(0)
        return counts

    # ---- the loss -----------------------------------------------------------------------------------------------

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """alpha·KD + (1 − alpha)·CE + hidden and attention terms, each summed over valid items and divided by the
        number of such items in the whole accumulated batch.

        `num_items_in_batch` is what `_get_num_items_in_batch` returns ([CE, KD, token] counts); a plain number is
        used for every term; `None` counts this batch alone.

        Args:
            model: the student (wrapped as the Trainer wraps it).
            inputs: the micro-batch: model inputs, ``labels``, cached soft-target columns, prompts.
            return_outputs: also return the student's outputs (its logits; none on the chunked LM path).
            num_items_in_batch: the accumulated batch's item counts.

        Returns:
            The loss, or (loss, outputs) with `return_outputs`. Each term is also logged (`COMPONENTS`).
        """
        args: DistillationConfig = self.args
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        student_generated = _student_generated(inputs)
        for key in on_policy.BATCH_KEYS:  # prompts and the completions' source are not model inputs
            inputs.pop(key, None)
        soft = {k: inputs.pop(k) for k in SOFT_TARGET_COLUMNS if k in inputs}
        want_hidden = args.hidden_loss_weight > 0 and bool(self.layer_pairs)
        want_attn = args.attention_loss_weight > 0 and bool(self.layer_pairs)
        extra = {}
        if want_hidden:
            extra["output_hidden_states"] = True
        if want_attn:
            extra["output_attentions"] = True
        # Language models: the final hidden states go to the chunked losses, the model computes no logits.
        head = self._chunked_head(model, return_outputs)
        with chunked_losses.capture_head_inputs(head) as captured:
            outputs = model(**inputs, **extra)
        device = (captured.hidden if head is not None else outputs.logits).device
        counts, global_counts = self._resolve_counts(inputs, labels, num_items_in_batch, student_generated)
        n_ce, n_kd, n_tok = (c.clamp(min=1).to(device, torch.float32) for c in counts)

        teacher_out, t_final = None, None
        if self._needs_teacher_forward and not (soft and not want_hidden and not want_attn):
            teacher_out, t_final = self._teacher_outputs(inputs, extra, chunked=head is not None and not soft)

        logits = outputs.logits if head is None else None
        input_ids, attention_mask = inputs["input_ids"], inputs.get("attention_mask")
        valid = self.task.valid_mask(labels, attention_mask, input_ids)

        zero = torch.zeros((), dtype=torch.float32, device=device)
        terms = {name: zero for name in COMPONENTS}
        want_ce = labels is not None and args.alpha < 1 and not student_generated
        want_kd = args.alpha > 0 and (teacher_out is not None or bool(soft))
        if head is not None:
            lm_loss, kd_sum, ce_sum = self._chunked_loss(
                head,
                captured.hidden,
                teacher_out if want_kd else None,
                t_final,
                soft if want_kd else {},
                valid,
                labels if want_ce else None,
                args.alpha / n_kd if want_kd else 0.0,
                (1 - args.alpha) / n_ce if want_ce else 0.0,
            )
            if want_ce:
                terms["loss_ce"] = ce_sum / n_ce
            if want_kd:
                terms["loss_kd"] = kd_sum / n_kd
        else:
            s_logits = self.task.at_valid(logits, valid)
            if want_ce:
                ce_logits, ce_labels = self.task.ce_targets(logits, labels, valid)
                terms["loss_ce"] = losses.cross_entropy_sum(ce_logits, ce_labels, args.label_smoothing_factor) / n_ce
            if want_kd:
                terms["loss_kd"] = self._kd_sum(s_logits, teacher_out, soft, valid) / n_kd
        token_mask = (
            attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        )
        if want_hidden and teacher_out is not None:
            total = zero
            projected = self._projected_hidden_states(outputs)
            for k, (s, t) in enumerate(self.layer_pairs):
                s_hidden = projected[k] if projected is not None else outputs.hidden_states[s]
                t_hidden = teacher_out.hidden_states[t].to(s_hidden.device)
                total = total + losses.hidden_state_loss_sum(s_hidden, t_hidden, token_mask, args.hidden_loss)
            terms["loss_hidden"] = total / (n_tok * len(self.layer_pairs))
        if want_attn and teacher_out is not None:
            total = zero
            for s, t in self.layer_pairs:
                if s == 0 or t == 0:
                    continue  # the embedding layer has no attention map
                t_attn = teacher_out.attentions[t - 1].to(device)
                total = total + losses.attention_loss_sum(outputs.attentions[s - 1], t_attn, token_mask)
            terms["loss_attn"] = total / (n_tok * len(self.layer_pairs))

        if head is None:
            lm_loss = args.alpha * terms["loss_kd"] + (1 - args.alpha) * terms["loss_ce"]
        loss = (
            lm_loss + args.hidden_loss_weight * terms["loss_hidden"] + args.attention_loss_weight * terms["loss_attn"]
        )
        across_processes = bool(global_counts and args.average_tokens_across_devices and args.world_size > 1)
        self._record_components(terms, "train" if model.training else "eval", across_processes)
        if across_processes:
            # DDP averages gradients over processes; the counts already cover all of them.
            loss = loss * args.world_size
        if return_outputs:
            return loss, ({"logits": logits} if logits is not None else {})
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """`transformers.Trainer.prediction_step`, with the LM loss chunked only when evaluation reads the loss alone
        (otherwise it wants the logits back).

        Args:
            model: the student.
            inputs: the evaluation batch.
            prediction_loss_only: return the loss alone.
            ignore_keys: output keys left out of the returned logits.
        """
        self._loss_only = prediction_loss_only
        try:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        finally:
            self._loss_only = False

    def _chunked_head(self, model: nn.Module, return_outputs: bool) -> nn.Module | None:
        """The student's output embeddings when the loss is computed chunked from hidden states (language models,
        when no caller asked for the logits), else None (the model computes its logits)."""
        if not self.task.per_token or (return_outputs and not getattr(self, "_loss_only", False)):
            return None
        return chunked_losses.output_head(unwrap(model))

    def _chunked_loss(
        self,
        head: nn.Module,
        hidden: torch.Tensor,
        teacher_out: Any,
        t_hidden: torch.Tensor | None,
        soft: dict[str, torch.Tensor],
        valid: torch.Tensor,
        labels: torch.Tensor | None,
        kd_weight: torch.Tensor | float,
        ce_weight: torch.Tensor | float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weighted loss, KD sum, CE sum) over the valid positions by `chunked_losses.chunked_lm_loss`: the student's
        head on its hidden states, the teacher from its hidden states and head, cached full logits (gathered a chunk
        at a time from the batch's cache; also a teacher whose logits needed its own post-processing) or cached top-k
        targets."""
        args: DistillationConfig = self.args
        student = unwrap(self.model)
        teacher: dict[str, Any] = {}
        if "teacher_topk_ids" in soft:
            teacher["topk"] = tuple(self.task.at_valid(soft[c], valid) for c in SOFT_TARGET_COLUMNS[1:])
        elif "teacher_logits" in soft or (teacher_out is not None and t_hidden is None):
            # Rows of the cache are gathered per chunk (no (N, V) copy of the cache).
            cache = self.task.aligned(soft["teacher_logits"] if soft else teacher_out.logits)
            teacher["teacher_hidden"] = valid.to(cache.device).nonzero()
            teacher["teacher_head"] = lambda at: vocabulary.teacher_logits_for_student(
                cache[at[:, 0], at[:, 1]], student, self.task
            )
        elif t_hidden is not None:
            t_head = chunked_losses.output_head(unwrap(self.teacher))
            kept = vocabulary.kept_ids_of(student)
            width = t_head.weight.shape[0] if hasattr(t_head, "weight") else None
            rows = kept if kept is not None and width != len(kept) else None
            teacher["teacher_hidden"] = self.task.at_valid(t_hidden, valid)
            teacher["teacher_head"] = chunked_losses.module_head(t_head, rows)
        return chunked_losses.chunked_lm_loss(
            self.task.at_valid(hidden, valid),
            chunked_losses.module_head(head),
            labels=self.task.targets(labels)[valid] if labels is not None else None,
            kd_weight=kd_weight,
            ce_weight=ce_weight,
            loss_type=args.loss_type,
            temperature=args.temperature,
            jsd_beta=args.jsd_beta,
            skew_lambda=args.skew_lambda,
            scale_by_temperature_squared=args.scale_by_temperature_squared,
            label_smoothing=args.label_smoothing_factor,
            vocab_size=head.weight.shape[0] if hasattr(head, "weight") else None,
            chunk_size=args.chunk_size,
            **teacher,
        )

    def _projected_hidden_states(self, outputs) -> tuple[torch.Tensor, ...] | None:
        """The student's projected hidden states: computed inside `StudentWithProjections.forward` when the
        Trainer's model ran, else (the bare student called directly) by the same projections here."""
        if self.projections is None:
            return None
        projected = outputs.get("projected_hidden_states") if hasattr(outputs, "get") else None
        return projected if projected is not None else self.projections.project(outputs.hidden_states)

    def _resolve_counts(
        self, inputs, labels, num_items_in_batch, student_generated: bool = False
    ) -> tuple[tuple[torch.Tensor, ...], bool]:
        if num_items_in_batch is None:
            source = on_policy.SOURCE_STUDENT if student_generated else on_policy.SOURCE_DATA
            local = self._count_items({**inputs, "labels": labels, on_policy.SOURCE_KEY: source})
            return tuple(local), False
        if torch.is_tensor(num_items_in_batch) and num_items_in_batch.numel() == 3:
            return tuple(num_items_in_batch), True
        value = torch.as_tensor(num_items_in_batch).reshape(())
        return (value, value, value), True

    def _teacher_outputs(self, inputs: dict[str, Any], extra: dict[str, bool], chunked: bool = False):
        """The teacher's outputs, and with `chunked` its final hidden states (its logits are then not computed;
        None for a teacher whose logits need its own post-processing: the loss then reads its logits)."""
        head = chunked_losses.output_head(unwrap(self.teacher)) if chunked else None
        with chunked_losses.capture_head_inputs(head) as captured:
            outputs = self._teacher_forward(inputs, extra)
        return outputs, captured.hidden

    def _teacher_forward(self, inputs: dict[str, Any], extra: dict[str, bool]):
        teacher = self.teacher
        if teacher.training:
            teacher.eval()
        device = next(teacher.parameters()).device
        t_inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        kept = vocabulary.kept_ids_of(unwrap(self.model))
        if kept is not None:  # a trimmed student: the teacher reads its own ids
            t_inputs["input_ids"] = vocabulary.to_teacher_ids(t_inputs["input_ids"], kept)
        with torch.no_grad():
            return teacher(**t_inputs, **extra)

    def _kd_sum(self, s_logits: torch.Tensor, teacher_out, soft: dict[str, torch.Tensor], valid: torch.Tensor):
        """Sum of the KD divergence over valid items, from the live teacher or cached soft targets."""
        args: DistillationConfig = self.args
        options = dict(
            temperature=args.temperature,
            jsd_beta=args.jsd_beta,
            skew_lambda=args.skew_lambda,
            scale_by_temperature_squared=args.scale_by_temperature_squared,
        )
        if "teacher_topk_ids" in soft:
            ids, logp, tail = (self.task.at_valid(soft[c], valid) for c in SOFT_TARGET_COLUMNS[1:])
            return losses.topk_distillation_loss(s_logits, ids, logp, tail, args.loss_type, **options).sum()
        t_logits = soft["teacher_logits"] if "teacher_logits" in soft else teacher_out.logits
        t_logits = self.task.at_valid(t_logits, valid).to(s_logits.device)
        t_logits = vocabulary.teacher_logits_for_student(t_logits, unwrap(self.model), self.task)
        # Vocabularies that differ only by padding rows (50257 vs 50304) share their first ids.
        shared = min(s_logits.shape[-1], t_logits.shape[-1])
        return losses.distillation_loss(s_logits[..., :shared], t_logits[..., :shared], args.loss_type, **options).sum()

    # ---- logging of the components ------------------------------------------------------------------------------

    def _record_components(self, terms: dict[str, torch.Tensor], phase: str, across_processes: bool = False) -> None:
        sums = self._component_sums[phase]
        self._component_global[phase] = across_processes
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach().float()
        if phase == "eval":
            self._component_batches["eval"] += 1
        elif self.state.global_step != self._last_component_step:
            # Micro-batches of one optimizer step add up to that step's value; count steps, not micro-batches.
            self._last_component_step = self.state.global_step
            self._component_batches["train"] += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss term since the last log (`loss_ce`, `loss_kd`, `loss_hidden`, `loss_attn`, with
        ``eval_`` in evaluation) and, with generation, the share of batches the student generated, then log.

        Args:
            logs: the values `transformers.Trainer` logs.
            start_time: as in `transformers.Trainer.log`.
        """
        phase = "eval" if any(k.startswith("eval_") for k in logs) else "train" if "loss" in logs else None
        if phase is not None and self._component_batches[phase]:
            values = torch.stack([torch.as_tensor(self._component_sums[phase][n]) for n in COMPONENTS])
            if self.args.world_size > 1:
                # Shares of a global per-item value add up to it; per-process means are averaged, as DDP averages
                # the gradients.
                reduction = "sum" if self._component_global[phase] else "mean"
                values = self.accelerator.reduce(values.to(self.args.device), reduction=reduction)
            prefix = "eval_" if phase == "eval" else ""
            for name, value in zip(COMPONENTS, values.tolist()):
                logs[prefix + name] = round(value / self._component_batches[phase], 6)
            self._component_sums[phase] = {}
            self._component_batches[phase] = 0
        if phase == "train" and self.args.generates and sum(self._generated_batches):
            counts = torch.tensor(self._generated_batches, dtype=torch.float64)
            if self.args.world_size > 1:
                counts = self.accelerator.reduce(counts.to(self.args.device), reduction="sum").cpu()
            logs["student_generated_share"] = round(float(counts[1] / counts.sum()), 6)
            self._generated_batches = [0, 0]
        super().log(logs, start_time)

    # ---- saving: a plain student folder, the projections beside it ----------------------------------------------

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if not isinstance(self.model, StudentWithProjections):
            return super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save and not self.is_distributed_loading_by_transformers:
            return None
        # `state_dict` is the gathered one under DeepSpeed/FSDP; else the wrapper's own.
        if state_dict is None:
            state_dict = self.model.state_dict()
        student_state, projection_state = split_state_dict(state_dict)
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
        unwrapped = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        unwrapped.student.save_pretrained(output_dir, state_dict=student_state, is_main_process=self.args.should_save)
        if not self.args.should_save:
            return None
        tensors = {k: v.detach().cpu().contiguous() for k, v in projection_state.items()}
        save_file(tensors, os.path.join(output_dir, PROJECTIONS_FILE), metadata={"layer_pairs": str(self.layer_pairs)})
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        if model is not None or not isinstance(self.model, StudentWithProjections) or self.is_fsdp_enabled:
            # FSDP checkpoints hold the whole wrapped module, projections included.
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        super()._load_from_checkpoint(resume_from_checkpoint, self.model.student)
        path = os.path.join(resume_from_checkpoint, PROJECTIONS_FILE)
        if os.path.isfile(path):
            self.projections.load_state_dict(load_file(path, device=str(self.args.device)))
        else:
            logger.warning(
                "%s has no %s: the hidden-state projections start untrained", resume_from_checkpoint, PROJECTIONS_FILE
            )
        return None


def _student_generated(batch: dict[str, Any]) -> bool:
    source = batch.get(on_policy.SOURCE_KEY)
    return source is not None and int(source) == on_policy.SOURCE_STUDENT


def _deepspeed_inference_engine(teacher: nn.Module, accelerator) -> nn.Module:
    """Wrap a frozen teacher for inference with the run's DeepSpeed config (ZeRO-3 shards it; else stage 0).

    The recipe TRL uses for reference/teacher models; it needs GPUs and `deepspeed`, and is not exercised by this
    project's CPU test suite.
    """
    import copy

    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    zero = config.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:
        hidden = getattr(getattr(unwrap(teacher), "config", None), "hidden_size", None)
        if hidden:
            # Fixed sizes instead of "auto", which DeepSpeed cannot resolve for a model without an optimizer.
            zero.update(
                reduce_bucket_size=hidden * hidden,
                stage3_param_persistence_threshold=10 * hidden,
                stage3_prefetch_bucket_size=int(0.9 * hidden * hidden),
            )
    else:
        zero["stage"] = 0  # not sharded: each process keeps a full copy for inference
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    engine, *_ = deepspeed.initialize(model=teacher, config=config)
    engine.eval()
    return engine


def _columns(*datasets: Any) -> set[str]:
    """The column names of the data sets (an eval dict's members included); none for data without names."""
    found: set[str] = set()
    for ds in datasets:
        for member in ds.values() if isinstance(ds, dict) else [ds]:
            found.update(getattr(member, "column_names", None) or [])
    return found
