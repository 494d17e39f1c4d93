"""`DistillationConfig`: `TrainingArguments` plus the knobs of knowledge distillation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

LOSS_TYPES = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "mse")
KL_FAMILY = ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl")
HIDDEN_LOSSES = ("mse", "cosine")
LAYER_MAPPINGS = ("uniform", "last")
TEACHER_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"DistillationConfig.{name}={value!r} is invalid: {allowed}.")


def parse_layer_mapping(value: Any) -> str | list[tuple[int, int]]:
    """Normalise `layer_mapping` to "uniform", "last" or a list of (student_layer, teacher_layer) pairs.

    Layer numbers index the models' `hidden_states` tuple: 0 is the embedding output and i is the output of
    block i, so "1:2,2:4" pairs student block 1 with teacher block 2 and student block 2 with teacher block 4.

    Args:
        value: the strings "uniform"/"last", an "s:t,s:t" string, or a sequence of pairs.

    Raises:
        ValueError: anything else, or a negative layer number (names the accepted forms).
    """
    allowed = '"uniform", "last", "s:t,s:t,..." (e.g. "1:2,2:4") or a list of [student, teacher] pairs'
    if isinstance(value, str):
        text = value.strip()
        if text in LAYER_MAPPINGS:
            return text
        try:
            pairs = [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item.strip()]
        except ValueError:
            raise _bad("layer_mapping", value, allowed) from None
    else:
        try:
            pairs = [tuple(int(x) for x in item) for item in value]
        except (TypeError, ValueError):
            raise _bad("layer_mapping", value, allowed) from None
    if not pairs or any(len(p) != 2 or p[0] < 0 or p[1] < 0 for p in pairs):
        raise _bad("layer_mapping", value, allowed + " with non-negative layer numbers")
    return [(int(s), int(t)) for s, t in pairs]


@dataclass
class DistillationConfig(TrainingArguments):
    """Training arguments for `DistillationTrainer`.

    The loss is ``alpha * KD + (1 - alpha) * CE + hidden_loss_weight * hidden + attention_loss_weight * attn``.
    KD compares temperature-softened distributions p = softmax(z_teacher / T) and q = softmax(z_student / T)
    over valid positions only, and every term is a sum over valid items divided by their count in the whole
    (accumulated, all-process) batch, so gradient accumulation matches one large batch.

    On-policy and sequence-level distillation (causal LMs, the GKD recipe of Agarwal et al. 2024): with probability
    `lmbda` a micro-batch's completions are replaced by completions the student generates from the batch's prompts;
    with `seq_kd` the other micro-batches get teacher-generated completions (Kim & Rush 2016); the live teacher then
    scores the generated tokens. The data must be prompt-completion (see `hf_distill.on_policy`). Moving from TRL's
    `GKDConfig`: `lmbda`, `seq_kd` and `max_new_tokens` keep their names; TRL's `beta` is our `jsd_beta` with
    ``loss_type="jsd"`` (0 = forward KL, 1 = reverse KL; use ``loss_type`` "forward_kl"/"reverse_kl" for the ends);
    TRL's `temperature` (sampling) is our `generation_temperature`, while our `temperature` softens both
    distributions in the loss (TRL's GKD loss has none). On student-generated batches the CE term is dropped (the
    student's own samples are no ground truth); on teacher-generated (seq_kd) batches CE trains on the teacher's text.

    Causal-LM data as TRL's trainers take it (`hf_distill.lm_data`): rows of ``text`` (`dataset_text_field`),
    ``prompt`` + ``completion``, ``prompt`` alone (prompt-only: on-policy with ``lmbda=1`` or `seq_kd`), or
    conversational rows (``messages``, or ``prompt`` / ``completion`` as lists of ``{"role", "content"}``) rendered
    with the student tokenizer's chat template; they are tokenized when the trainer is built. The loss covers the
    completion (conversational: the assistant turns). Lengths: `max_length` caps prompt + completion (a prompt keeps
    its last ``max_length - 1`` tokens, a completion or a text is cut at its end); `max_completion_length` cuts the
    data's completions first and caps generated ones (with `max_new_tokens`, whichever is smaller).
    """

    temperature: float = field(default=2.0, metadata={"help": "Softmax temperature T (> 0) for both models."})
    alpha: float = field(
        default=0.5,
        metadata={"help": "Weight of the distillation term in [0, 1]; the true-label CE gets 1 - alpha."},
    )
    loss_type: str = field(
        default="forward_kl",
        metadata={
            "help": "Divergence: forward_kl = KL(teacher||student), reverse_kl = KL(student||teacher), "
            "jsd (generalised JSD with jsd_beta), skew_kl / skew_reverse_kl (with skew_lambda), mse (on logits).",
            "choices": list(LOSS_TYPES),
        },
    )
    jsd_beta: float = field(
        default=0.5,
        metadata={
            "help": "JSD mixture weight in [0, 1]; 0 gives forward KL and 1 reverse KL (GKD convention; TRL's `beta`)."
        },
    )
    skew_lambda: float = field(default=0.1, metadata={"help": "Skew KL mixing weight in [0, 1)."})
    scale_by_temperature_squared: bool | None = field(
        default=None,
        metadata={"help": "Multiply the KD term by T^2 (Hinton et al.). Default: on for the KL family, off for mse."},
    )
    hidden_loss_weight: float = field(default=0.0, metadata={"help": "Weight (>= 0) of the hidden-state loss."})
    hidden_loss: str = field(
        default="mse", metadata={"help": "Hidden-state loss: mse or cosine.", "choices": list(HIDDEN_LOSSES)}
    )
    layer_mapping: str = field(
        default="uniform",
        metadata={
            "help": 'Student->teacher layer pairs for hidden/attention losses: "uniform", "last", or "s:t,s:t" '
            "(0 = embeddings, i = output of block i)."
        },
    )
    attention_loss_weight: float = field(
        default=0.0, metadata={"help": "Weight (>= 0) of the attention-map loss (needs eager attention)."}
    )
    teacher_dtype: str = field(
        default="auto",
        metadata={
            "help": "Precision of the teacher forward: auto (as loaded), float32, bfloat16 or float16.",
            "choices": list(TEACHER_DTYPES),
        },
    )
    teacher_device: str | None = field(
        default=None,
        metadata={"help": "Device for the teacher (e.g. cpu, cuda:1). Default: the training device."},
    )
    teacher_revision: str | None = field(
        default=None, metadata={"help": "Revision of the teacher when it is given as a Hub id."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom model code when loading a teacher by id (off by default)."}
    )

    chunk_size: int = field(
        default=2**24,
        metadata={
            "help": "Language models: the most logits (positions x vocabulary entries) one model's loss chunk computes "
            "at once. KD and CE are computed from the final hidden states and the output embeddings a chunk of "
            "valid positions at a time (recomputed in backward), so no (batch, length, vocabulary) tensor is held; "
            "the default, 16,777,216, is 64 MiB per float32 tensor (larger chunks spread the per-chunk (V, D) "
            "gradient of the output embeddings over more positions: at V 151,936 a 4x larger chunk made the loss "
            "1.65x faster). Classification is not chunked."
        },
    )

    lmbda: float = field(
        default=0.0,
        metadata={
            "help": "Probability in [0, 1] that a micro-batch is on-policy: its completions are generated by the "
            "student from the batch's prompts, then scored by the teacher (TRL/GKD name). Causal LMs with "
            "prompt-completion data."
        },
    )
    seq_kd: bool = field(
        default=False,
        metadata={
            "help": "Sequence-level KD: micro-batches that are not on-policy get teacher-generated completions "
            "(when both apply, on-policy wins, as in TRL)."
        },
    )
    max_new_tokens: int = field(default=128, metadata={"help": "Tokens generated per completion (on-policy / seq_kd)."})
    generation_temperature: float = field(
        default=1.0,
        metadata={
            "help": "Sampling temperature of generated completions (TRL's `temperature`); 0 = greedy. Separate from "
            "`temperature`, which softens the distributions in the loss."
        },
    )
    generation_top_p: float = field(
        default=1.0, metadata={"help": "Nucleus sampling of generated completions, (0, 1]."}
    )
    generation_top_k: int = field(default=0, metadata={"help": "Top-k sampling of generated completions (0 = off)."})

    # Causal-LM data given untokenized (hf_distill.lm_data): TRL's names (SFTConfig / DistillationConfig).
    dataset_text_field: str = field(
        default="text", metadata={"help": "Causal LMs: the column of plain-text rows (TRL's name)."}
    )
    max_length: int | None = field(
        default=1024,
        metadata={
            "help": "Causal LMs given untokenized rows (text, prompt/completion, messages): at most this many tokens "
            "per row, prompt + completion (TRL's name and default). A prompt keeps its last max_length - 1 tokens, "
            "a completion or text is cut at its end; None: no cut. Tokenized rows (input_ids) are used as they are."
        },
    )
    max_completion_length: int | None = field(
        default=None,
        metadata={
            "help": "At most this many completion tokens per row: the data's completions are cut to it when "
            "tokenized (before max_length applies), and generated completions stop at min(max_new_tokens, this) "
            "(TRL's DistillationConfig limits generation with this name). None: no extra limit."
        },
    )

    def __post_init__(self) -> None:
        self._validate_distillation_fields()
        super().__post_init__()

    def _validate_distillation_fields(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise _bad(name, value, "expected a number")
            return float(value)

        if number("temperature") <= 0:
            raise _bad("temperature", self.temperature, "must be > 0")
        if not 0.0 <= number("alpha") <= 1.0:
            raise _bad("alpha", self.alpha, "must be in [0, 1] (1 = soft targets only, 0 = labels only)")
        if self.loss_type not in LOSS_TYPES:
            raise _bad("loss_type", self.loss_type, f"choose one of {', '.join(LOSS_TYPES)}")
        if not 0.0 <= number("jsd_beta") <= 1.0:
            raise _bad("jsd_beta", self.jsd_beta, "must be in [0, 1]")
        if not 0.0 <= number("skew_lambda") < 1.0:
            raise _bad("skew_lambda", self.skew_lambda, "must be in [0, 1)")
        if self.scale_by_temperature_squared is None:
            self.scale_by_temperature_squared = self.loss_type in KL_FAMILY
        if number("hidden_loss_weight") < 0:
            raise _bad("hidden_loss_weight", self.hidden_loss_weight, "must be >= 0")
        if self.hidden_loss not in HIDDEN_LOSSES:
            raise _bad("hidden_loss", self.hidden_loss, f"choose one of {', '.join(HIDDEN_LOSSES)}")
        if number("attention_loss_weight") < 0:
            raise _bad("attention_loss_weight", self.attention_loss_weight, "must be >= 0")
        mapping = parse_layer_mapping(self.layer_mapping)
        # Keep the field a plain string so the config stays JSON/CLI friendly.
        if not isinstance(mapping, str):
            self.layer_mapping = ",".join(f"{s}:{t}" for s, t in mapping)
        if self.teacher_dtype not in TEACHER_DTYPES:
            raise _bad("teacher_dtype", self.teacher_dtype, f"choose one of {', '.join(TEACHER_DTYPES)}")
        self._validate_on_policy_fields(number)

    def _validate_on_policy_fields(self, number) -> None:
        def count(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise _bad(name, value, f"expected an integer >= {minimum}")

        if not 0.0 <= number("lmbda") <= 1.0:
            raise _bad("lmbda", self.lmbda, "must be in [0, 1] (the probability that a batch is student-generated)")
        if not isinstance(self.seq_kd, bool):
            raise _bad("seq_kd", self.seq_kd, "expected true or false")
        count("max_new_tokens", 1)
        if number("generation_temperature") < 0:
            raise _bad("generation_temperature", self.generation_temperature, "must be >= 0 (0 = greedy decoding)")
        if not 0.0 < number("generation_top_p") <= 1.0:
            raise _bad("generation_top_p", self.generation_top_p, "must be in (0, 1] (1 = off)")
        count("generation_top_k", 0)
        count("chunk_size", 1)
        for name in ("max_length", "max_completion_length"):
            if getattr(self, name) is not None:
                count(name, 2 if name == "max_length" else 1)
        if not isinstance(self.dataset_text_field, str) or not self.dataset_text_field:
            raise _bad("dataset_text_field", self.dataset_text_field, "expected a column name")

    @property
    def generates(self) -> bool:
        """Whether training generates completions (on-policy with `lmbda` > 0, or sequence-level KD)."""
        return self.lmbda > 0 or self.seq_kd

    @property
    def generated_tokens(self) -> int:
        """Tokens generated per completion: `max_new_tokens`, capped by `max_completion_length` when set."""
        return min(self.max_new_tokens, self.max_completion_length or self.max_new_tokens)

    @property
    def layer_pairs(self) -> str | list[tuple[int, int]]:
        """`layer_mapping` parsed: "uniform", "last" or explicit (student, teacher) pairs."""
        return parse_layer_mapping(self.layer_mapping)
