"""Causal-LM data as TRL users bring it: the format told from the columns, conversations rendered with a chat template.

TRL's trainers take untokenized `datasets.Dataset` rows and tokenize them themselves; so do `DistillationTrainer`
(when it is built) and `hf-distill run` (in its data stage), through the same two functions:

- `detect_lm_format` decides the format from the column names (and, for ``prompt`` / ``completion`` /
  ``messages``, whether they hold strings or lists of ``{"role", "content"}`` messages):

  ========================  =================================================  ===========================
  format                    columns                                            trains
  ========================  =================================================  ===========================
  tokenized                 ``input_ids`` (as today)                           as given
  text                      ``text`` (`DistillationConfig.dataset_text_field`)  every token
  prompt-completion         ``prompt`` + ``completion`` (strings or messages)  the completion
  prompt-only               ``prompt`` (strings or messages)                   on-policy / seq_kd only
  messages                  ``messages`` (conversational language modelling)   the assistant turns
  ========================  =================================================  ===========================

- `prepare_lm_dataset` tokenizes rows of any of them: text rows with the tokenizer (cut at ``max_length``), the
  others with `hf_distill.on_policy.tokenize_prompt_completion`, the one prompt-completion tokenizer (it renders
  conversational rows with `render_conversation`).

Conversations are rendered with the **student's** tokenizer and its chat template; the teacher reads the same ids.
So a teacher whose chat template differs sees the student's rendering (the text the student will be prompted
with), and both models score exactly the same tokens; their vocabularies must be the same, which the trainer
checks before training (`hf_distill.compatibility.check_vocabularies`). Which tokens the loss covers comes from the
template's ``{% generation %}`` blocks when it has them (``apply_chat_template(..., return_assistant_tokens_mask=
True)``), else from rendering each prefix of the conversation and checking that it is a prefix of the whole (a
template that renders a prompt differently alone is refused: the completion could not be told apart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LMFormat",
    "ACCEPTED",
    "detect_lm_format",
    "render_conversation",
    "prepare_lm_dataset",
    "check_lm_format",
    "tokenize_prompt_completion",
    "PROMPT_LENGTH",
    "COMPLETION_MASK",
]

ACCEPTED = (
    "`text`; `prompt` + `completion`; `prompt` alone (prompt-only, on-policy); `messages` (strings, or lists of "
    "{role, content} messages); or tokenized `input_ids`"
)
# transformers' own test for templates that mark assistant tokens (apply_chat_template's assistant masks).
_GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")


# The prompt-completion rows `tokenize_prompt_completion` writes: where each row's completion starts.
PROMPT_LENGTH = "prompt_length"
# Conversational rows: 1 on the tokens the loss covers (the assistant turns), TRL's column name.
COMPLETION_MASK = "completion_mask"


@dataclass(frozen=True)
class LMFormat:
    """A causal-LM data format: `kind` is "tokenized", "text", "prompt-completion", "prompt-only" or "messages";
    `conversational` whether its prompt/completion/messages columns hold lists of messages; `text_column` the
    column of "text" rows."""

    kind: str
    conversational: bool = False
    text_column: str | None = None

    def __str__(self) -> str:
        return f"conversational {self.kind}" if self.conversational and self.kind != "messages" else self.kind

    @property
    def prompt_only(self) -> bool:
        """Whether the rows hold prompts and no completions (they train only on generated completions)."""
        return self.kind == "prompt-only"

    @property
    def has_prompts(self) -> bool:
        """Whether rows have prompts (what on-policy / seq_kd generation continues)."""
        return self.kind in ("prompt-completion", "prompt-only", "messages")


def _holds_messages(dataset: Any, column: str) -> bool:
    """Whether `column` holds lists of {role, content} messages (True) or strings (False); anything else is refused."""
    from datasets import Value

    feature = (getattr(dataset, "features", None) or {}).get(column)
    if feature is None:  # an iterable data set without features: look at its first row
        value = next(iter(dataset))[column]
        if isinstance(value, str):
            return False
        if isinstance(value, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in value):
            return True
    elif isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
        return False
    else:
        inner = getattr(feature, "feature", None)
        if inner is None and isinstance(feature, list) and feature:
            inner = feature[0]
        if isinstance(inner, dict) and {"role", "content"} <= set(inner):
            return True
    raise ValueError(f"column {column!r} holds neither text nor lists of {{role, content}} messages: fix the data")


def detect_lm_format(dataset: Any, text_column: str | None = None) -> LMFormat:
    """The format of causal-LM rows, from their column names (the one decision, used by the trainer and the pipeline).

    ``input_ids`` wins (tokenized data is used as it is); then ``messages``; then ``prompt`` (with ``completion``:
    prompt-completion, alone: prompt-only); then the text column. Extra columns are ignored, as in TRL.

    Args:
        dataset: a `datasets.Dataset` / `IterableDataset` (anything with ``column_names``).
        text_column: the column of plain-text rows (default ``text``).

    Raises:
        ValueError: one line naming the columns found and those accepted, or a column of the wrong kind.
    """
    columns = list(getattr(dataset, "column_names", None) or [])
    if "input_ids" in columns:
        return LMFormat("tokenized")
    if "messages" in columns:
        if not _holds_messages(dataset, "messages"):
            raise ValueError("column 'messages' holds strings: it must hold lists of {role, content} messages")
        return LMFormat("messages", conversational=True)
    if "prompt" in columns:
        conversational = _holds_messages(dataset, "prompt")
        if "completion" not in columns:
            return LMFormat("prompt-only", conversational)
        if _holds_messages(dataset, "completion") != conversational:
            raise ValueError("`prompt` and `completion` must both be strings or both lists of messages")
        return LMFormat("prompt-completion", conversational)
    column = text_column or "text"
    if column in columns:
        if _holds_messages(dataset, column):
            raise ValueError(f"text column {column!r} holds messages: name it `messages`")
        return LMFormat("text", text_column=column)
    raise ValueError(f"cannot tell the causal-LM data format from the columns {columns}: use {ACCEPTED}")


def _chat_ids(tokenizer: Any, messages: list[dict], **kwargs: Any) -> dict[str, list[int]]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return {k: list(v) for k, v in out.items()}


def _prefix_refusal(tokenizer: Any, whole: list[int], part: list[int]) -> ValueError:
    return ValueError(
        f"the chat template renders a conversation's beginning ({tokenizer.decode(part[-8:])!r}) differently when more "
        "messages follow, so the assistant tokens cannot be told apart: use a template whose rendering of the first "
        "messages (with add_generation_prompt=True before an assistant turn) is a prefix of the whole conversation, "
        "or mark the assistant turns with {% generation %}"
    )


def render_conversation(
    tokenizer: Any, prompt: list[dict], completion: list[dict] | None, *, all_assistant_turns: bool = False
) -> tuple[list[int], list[int], int]:
    """Render prompt + completion messages with the tokenizer's chat template: (ids, mask, prompt length).

    The mask is 1 on the tokens the loss covers: the completion's assistant tokens (with `all_assistant_turns`, the
    assistant turns of the prompt too, as for ``messages`` rows). The prompt length is that of the prompt rendered
    with ``add_generation_prompt=True`` (what generation continues); it must be a prefix of the whole rendering.

    Args:
        tokenizer: the student's tokenizer, with a ``chat_template``.
        prompt: the messages before the completion.
        completion: the completion's messages; None or empty for a prompt-only row (mask all 0).
        all_assistant_turns: also train the prompt's assistant turns.

    Raises:
        ValueError: no chat template, or a template that renders a prompt differently alone (see module docstring).
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ValueError(
            "conversational rows need a chat template, and the student's tokenizer (processing_class) has none: set "
            "tokenizer.chat_template (e.g. to the teacher tokenizer's)"
        )
    prompt_ids = _chat_ids(tokenizer, prompt, add_generation_prompt=True)["input_ids"]
    if not completion:
        return prompt_ids, [0] * len(prompt_ids), len(prompt_ids)
    messages = list(prompt) + list(completion)
    marked = isinstance(template, str) and bool(_GENERATION_BLOCK.search(template))
    whole = _chat_ids(tokenizer, messages, return_assistant_tokens_mask=marked)
    ids = whole["input_ids"]
    if ids[: len(prompt_ids)] != prompt_ids:
        raise _prefix_refusal(tokenizer, ids, prompt_ids)
    start = 0 if all_assistant_turns else len(prompt_ids)
    if marked:
        mask = [int(bool(m)) if i >= start else 0 for i, m in enumerate(whole["assistant_masks"])]
        if not any(mask[len(prompt_ids) :]):
            raise ValueError(
                "the chat template's {% generation %} blocks mark no token of a completion: put each "
                "assistant message's content inside {% generation %} ... {% endgeneration %}"
            )
    elif all_assistant_turns:
        # Each assistant turn spans from its generation prompt to the end of the conversation rendered up to it.
        mask = [0] * len(ids)
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            begin = _chat_ids(tokenizer, messages[:i], add_generation_prompt=True)["input_ids"] if i else []
            upto = _chat_ids(tokenizer, messages[: i + 1])["input_ids"]
            if ids[: len(begin)] != begin or ids[: len(upto)] != upto:
                raise _prefix_refusal(tokenizer, ids, upto if ids[: len(begin)] == begin else begin)
            mask[len(begin) : len(upto)] = [1] * (len(upto) - len(begin))
    else:
        mask = [0] * start + [1] * (len(ids) - start)
    return ids, mask, len(prompt_ids)


def check_lm_format(fmt: LMFormat, args: Any, *, split: str = "train_dataset") -> None:
    """Refuse, in one line, a format the run cannot train on.

    Prompt-only rows have no completions: they train only when every batch gets generated ones (``lmbda=1``, or
    `seq_kd`), and never serve evaluation. On-policy / seq_kd needs prompts: text rows have none.

    Args:
        fmt: the detected format of the rows (`detect_lm_format`).
        args: the `DistillationConfig` (reads ``lmbda``, ``seq_kd`` and ``generates``).
        split: which data the rows are, named in the message (``train_dataset``, ``eval_dataset``, ...).

    Raises:
        ValueError: prompt-only rows that no generation completes, or text rows for on-policy / seq_kd training.
    """
    generates_all = getattr(args, "lmbda", 0) >= 1 or getattr(args, "seq_kd", False)
    if fmt.prompt_only and (split != "train_dataset" or not generates_all):
        where = (
            "evaluation scores given completions"
            if split != "train_dataset"
            else (
                "off-policy batches need completions: set lmbda=1 (the student writes every completion) or seq_kd=True "
                "(the teacher writes those the student does not)"
            )
        )
        raise ValueError(f"{split} is prompt-only (a `prompt` column, no `completion`): {where}, or add completions")
    if split == "train_dataset" and fmt.kind == "text" and getattr(args, "generates", False):
        raise ValueError(
            "on-policy / seq_kd generates completions of prompts, and text rows have none: give `prompt` (+ "
            "`completion`) or `messages` rows, or tokenize with hf_distill.on_policy.tokenize_prompt_completion("
            "prompt_tokens=N)"
        )


def prepare_lm_dataset(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int | None,
    max_completion_length: int | None = None,
    text_column: str | None = None,
    fmt: LMFormat | None = None,
) -> Any:
    """Tokenize causal-LM rows of any format of `detect_lm_format` (tokenized rows are returned as they are).

    Text rows get ``input_ids`` / ``attention_mask`` (cut at `max_length`; no EOS is added, as in off-policy
    training from text); the other formats get prompt-completion rows from
    `hf_distill.on_policy.tokenize_prompt_completion` (``prompt_length``, and for conversations ``completion_mask``).

    Args:
        dataset: the rows.
        tokenizer: the student's tokenizer (its chat template renders conversations).
        max_length: at most this many tokens per row (None: no cut); see `tokenize_prompt_completion`.
        max_completion_length: cut completions to this many tokens first (None: no cut).
        text_column: the column of text rows (default ``text``).
        fmt: the format, when already detected.
    """
    fmt = fmt or detect_lm_format(dataset, text_column)
    if fmt.kind == "tokenized":
        return dataset
    if tokenizer is None:
        raise ValueError(f"{fmt} rows are tokenized by the trainer: pass processing_class=tokenizer")
    if fmt.kind == "text":
        column = fmt.text_column

        def encode(batch: dict[str, list]) -> dict[str, list]:
            texts = [t if isinstance(t, str) else "" for t in batch[column]]
            return dict(tokenizer(texts, truncation=max_length is not None, max_length=max_length))

        encoded = dataset.map(encode, batched=True, remove_columns=list(dataset.column_names))
        return encoded.filter(lambda row: len(row["input_ids"]) > 0)
    return tokenize_prompt_completion(
        dataset, tokenizer, max_length=max_length, max_completion_length=max_completion_length
    )


def prepare_trainer_datasets(task: Any, args: Any, tokenizer: Any, train_dataset: Any, eval_dataset: Any) -> tuple:
    """`DistillationTrainer`'s data, tokenized when a causal LM is given untokenized rows: (train, eval).

    Other tasks, tokenized rows and data sets without column names (e.g. a torch `Dataset`) pass unchanged.
    `eval_dataset` may be a dict of data sets, as for `transformers.Trainer`.

    Args:
        task: the trainer's `Task`.
        args: the `DistillationConfig` (``dataset_text_field``, ``max_length``, ``max_completion_length``, and
            what `check_lm_format` reads).
        tokenizer: the student's tokenizer (the processing class).
        train_dataset: the training rows, or None.
        eval_dataset: the evaluation rows, a dict of them, or None.

    Returns:
        (train_dataset, eval_dataset), prompt-completion rows where they were untokenized causal-LM rows.

    Raises:
        ValueError: a format the run cannot train or evaluate on (see `check_lm_format`).
    """
    if not (getattr(task, "per_token", False) and getattr(task, "shift", 0)):
        return train_dataset, eval_dataset

    def prepare(dataset: Any, split: str) -> Any:
        if dataset is None or not getattr(dataset, "column_names", None):
            return dataset
        fmt = detect_lm_format(dataset, args.dataset_text_field)
        check_lm_format(fmt, args, split=split)
        return prepare_lm_dataset(
            dataset, tokenizer, max_length=args.max_length, max_completion_length=args.max_completion_length, fmt=fmt
        )

    if isinstance(eval_dataset, dict):
        eval_dataset = {name: prepare(ds, f"eval_dataset[{name!r}]") for name, ds in eval_dataset.items()}
    else:
        eval_dataset = prepare(eval_dataset, "eval_dataset")
    return prepare(train_dataset, "train_dataset"), eval_dataset


def tokenize_prompt_completion(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int | None,
    prompt_tokens: int | None = None,
    text_column: str | None = None,
    add_eos: bool = True,
    max_completion_length: int | None = None,
) -> Any:
    """Tokenize a `datasets.Dataset` into prompt–completion rows (``input_ids``, ``attention_mask``, ``prompt_length``).

    Args:
        dataset: rows with ``prompt`` and ``completion`` columns, a ``prompt`` column alone (prompt-only: the rows
            hold the prompt and no completion, for on-policy / seq_kd training), ``messages`` (a conversation ending
            with an assistant message: its last message is the completion, and the loss covers every assistant
            turn), or plain text (then `prompt_tokens` is needed). ``prompt`` / ``completion`` hold strings or lists
            of ``{"role", "content"}`` messages; conversations are rendered with the tokenizer's chat template
            (`hf_distill.lm_data.render_conversation`) and their rows get a ``completion_mask`` (1 = trained token).
            The format is decided by `hf_distill.lm_data.detect_lm_format`.
        tokenizer: the student's tokenizer.
        max_length: at most this many tokens of prompt + completion (None: no cut). A prompt keeps its last
            ``max_length - 1`` tokens (the end of a prompt is what a continuation depends on); the completion is cut
            at the end.
        prompt_tokens: plain text only: the first `prompt_tokens` tokens of each text are the prompt. Texts with no
            token after the prompt are dropped (nothing to learn or to continue from).
        text_column: the plain-text column (default: ``text``, or the only column).
        add_eos: append EOS to ``completion`` strings (string prompt/completion columns only; plain text is kept as
            is, as in off-policy training; a chat template writes its own end-of-turn tokens).
        max_completion_length: cut completions to their first N tokens (EOS included) before `max_length` applies.

    Raises:
        ValueError: when the data is in no prompt-completion format and has no `prompt_tokens` setting, or a bad size.
    """
    columns = list(dataset.column_names)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"max_length={max_length!r}: prompt-completion rows need at least 2 tokens")
    fmt = detect_lm_format(dataset, text_column) if "input_ids" not in columns else None
    if fmt is not None and fmt.has_prompts:
        if prompt_tokens is not None:
            raise ValueError(f"prompt_tokens applies to plain text; this data is {fmt}: drop it")
        eos = tokenizer.eos_token_id if add_eos and not fmt.conversational else None
        keep_prompt = max_length - 1 if max_length is not None else None

        def encode_row(row: dict[str, Any]) -> tuple[list[int], list[int] | None, int]:
            """(ids, completion mask or None, prompt length) of one row, before cutting."""
            if fmt.kind == "messages":
                messages = row["messages"]
                if not messages or messages[-1].get("role") != "assistant":
                    raise ValueError(
                        "a `messages` row must end with an assistant message (the completion the loss "
                        "covers and on-policy generation replaces)"
                    )
                return render_conversation(tokenizer, messages[:-1], messages[-1:], all_assistant_turns=True)
            completion = row.get("completion") if fmt.kind == "prompt-completion" else None
            if fmt.conversational:
                return render_conversation(tokenizer, row["prompt"], completion)
            p = tokenizer(row["prompt"], add_special_tokens=True)["input_ids"]
            c = [] if completion is None else tokenizer(completion, add_special_tokens=False)["input_ids"]
            c = list(c) + ([eos] if eos is not None and completion is not None else [])
            return list(p) + c, None, len(p)

        def encode_pairs(batch: dict[str, list]) -> dict[str, list]:
            out: dict[str, list] = {"input_ids": [], "attention_mask": [], PROMPT_LENGTH: []}
            if fmt.conversational:
                out[COMPLETION_MASK] = []
            for i in range(len(batch[columns[0]])):
                ids, mask, n = encode_row({k: v[i] for k, v in batch.items()})
                mask = mask if mask is not None else [0] * n + [1] * (len(ids) - n)
                c = slice(n, len(ids) if max_completion_length is None else n + max_completion_length)
                p = slice(max(0, n - keep_prompt) if keep_prompt is not None else 0, n)
                ids, mask = (ids[p] + ids[c])[:max_length], (mask[p] + mask[c])[:max_length]
                prompt_length = p.stop - p.start
                if not prompt_length or (not fmt.prompt_only and not any(mask[prompt_length:])):
                    ids, mask = [], []  # nothing to continue from, or no completion token left: dropped below
                out["input_ids"].append(ids)
                out["attention_mask"].append([1] * len(ids))
                out[PROMPT_LENGTH].append(prompt_length)
                if fmt.conversational:
                    out[COMPLETION_MASK].append(mask)
            return out

        encoded = dataset.map(encode_pairs, batched=True, remove_columns=columns)
        if fmt.prompt_only:
            return encoded.filter(lambda row: len(row["input_ids"]) > 0)
    else:
        if prompt_tokens is None:
            raise ValueError(
                f"prompt-completion data needs `prompt` (+ `completion`) or `messages` columns (found {columns}) or, "
                "for plain text, prompt_tokens=N (the first N tokens of each text are the prompt)"
            )
        limit = max_length if max_length is not None else float("inf")
        if isinstance(prompt_tokens, bool) or not isinstance(prompt_tokens, int) or not 1 <= prompt_tokens < limit:
            raise ValueError(f"prompt_tokens={prompt_tokens!r} must be an integer in [1, max_length={max_length})")
        column = text_column or ("text" if "text" in columns else columns[0] if len(columns) == 1 else None)
        if column not in columns:
            raise ValueError(f"text column {column!r} not found among {columns}: set text_column")

        def encode_text(batch: dict[str, list]) -> dict[str, list]:
            texts = [t if isinstance(t, str) else "" for t in batch[column]]
            enc = tokenizer(texts, truncation=max_length is not None, max_length=max_length)
            return {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                PROMPT_LENGTH: [prompt_tokens] * len(texts),
            }

        encoded = dataset.map(encode_text, batched=True, remove_columns=columns)
    return encoded.filter(lambda row: len(row["input_ids"]) > row[PROMPT_LENGTH])
