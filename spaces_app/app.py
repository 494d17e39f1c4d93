"""Teacher and student side by side: a Gradio app for a distilled model pair.

Runs locally (``hf-distill demo``) or as a Hugging Face Space (``python app.py``). It depends only on
transformers, torch and gradio so that a Space needs nothing else; it never imports ``hf_distill``.

Configuration, first match wins:
  * ``build_demo(teacher, student, report, onnx=...)`` arguments (local paths or Hub ids);
  * environment variables ``TEACHER_MODEL``, ``STUDENT_MODEL``, ``DISTILLATION_REPORT``, ``STUDENT_ONNX``;
  * ``distill_config.json`` next to this file: ``{"teacher": repo_id, "student": repo_id, "onnx": file}``.

When the student has ONNX exports (``onnx/`` beside its weights, as ``hf-distill export`` writes them) and
onnxruntime is installed, the recommended export runs as a third column (a causal LM's generation streams
through the exported key/value cache). The evaluation's ``evaluation_examples.json`` (where teacher and student
disagree most) is shown as a table whose rows run through all the models, and a classifier can be run on an
uploaded CSV / TSV / JSONL file.
"""

from __future__ import annotations

import os

# Both must be set before gradio / huggingface_hub are imported, or they phone home at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import csv  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Mapping  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

APP_DIR = Path(__file__).resolve().parent
REPORT_FILENAME = "distillation_report.json"
CONFIG_FILENAME = "distill_config.json"
CLASSIFICATION = "classification"
GENERATION = "generation"
DEFAULT_LATENCY_RUNS = 5
# Inputs are cut to this many characters per model position before tokenizing: no tokenizer makes a token of
# more characters than this from ordinary text, so the cut never removes text the model could have seen,
# and a multi-megabyte paste costs no tokenizer time (one long input would hold the only queue slot).
CHARS_PER_POSITION = 16
MAX_INPUT_CHARS = 20_000  # also the text box's limit; for models without a known context length
EMPTY_INPUT_MESSAGE = "**Nothing to classify**: type a sentence (or pick an example) first."
# The exported student files, in the order the app picks one when nothing names it: the int8 file is what the
# model card recommends for CPU deployment whenever it keeps the student's score (hf-distill names the card's
# pick in distill_config.json's "onnx" when it pushes a Space, and `hf-distill demo` passes it).
ONNX_FILES = ("onnx/model_quantized.onnx", "onnx/model.onnx")
EXAMPLES_FILENAME = "evaluation_examples.json"
EXAMPLES_SCHEMA_VERSION = 1  # the newest evaluation_examples.json this app reads
# Uploaded files: at most this many bytes, and only this many rows are run (both said in the page).
MAX_UPLOAD_BYTES = 2_000_000
MAX_UPLOAD_ROWS = 500
UPLOAD_BATCH_SIZE = 16
NO_LABEL = "(no label column)"

CLASSIFICATION_EXAMPLES = [
    "A charming, beautifully acted film that I would happily watch again.",
    "The plot was dull, the dialogue clumsy and the whole thing far too long.",
    "It was fine: nothing special, nothing terrible.",
]
GENERATION_EXAMPLES = [
    "Once upon a time there lived a king and a queen",
    "The best way to learn a new language is",
    "In the middle of the forest stood a small house",
]

SETUP_MESSAGE = """## No models configured

This app compares a **teacher** and its distilled **student**. Tell it which models to load, in one of these ways:

* set the environment variables `TEACHER_MODEL` and `STUDENT_MODEL` (local paths or Hub model ids),
  and optionally `DISTILLATION_REPORT` (path to `distillation_report.json`);
  on a Space, add them under *Settings → Variables*;
* put a `distill_config.json` next to `app.py`: `{"teacher": "org/teacher", "student": "org/student"}`;
* locally: `hf-distill demo --teacher PATH_OR_ID --student PATH_OR_ID [--report distillation_report.json]`.
"""


# --------------------------------------------------------------------------------------------------
# Models


@dataclass
class LoadedModel:
    """A model with its tokenizer, the task it does and a display name."""

    name: str
    model: Any
    tokenizer: Any
    task: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())


def detect_task(config_or_model: Any) -> str:
    """Return ``"classification"`` or ``"generation"`` from a config's ``architectures`` or a model's class.

    Raises ``ValueError`` for anything else (e.g. a masked LM or a seq2seq model).
    """
    if hasattr(config_or_model, "config") and hasattr(config_or_model, "forward"):
        names = [type(config_or_model).__name__]
    else:
        names = list(getattr(config_or_model, "architectures", None) or [])
    for name in names:
        if name.endswith("ForSequenceClassification"):
            return CLASSIFICATION
        if name.endswith(("ForCausalLM", "LMHeadModel")):
            return GENERATION
    found = ", ".join(names) if names else "no `architectures` in config.json"
    raise ValueError(
        f"cannot tell the task from {found}: this app handles sequence classification "
        "(*ForSequenceClassification) and causal language models (*ForCausalLM / *LMHeadModel)"
    )


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name_or_path: str | os.PathLike, device: str | torch.device | None = None) -> LoadedModel:
    """Load a classifier or causal LM and its tokenizer from a local path or a Hub id (no remote code)."""
    spec = str(name_or_path)
    device = torch.device(device) if device is not None else _default_device()
    config = AutoConfig.from_pretrained(spec, trust_remote_code=False)
    task = detect_task(config)
    auto = AutoModelForSequenceClassification if task == CLASSIFICATION else AutoModelForCausalLM
    model = auto.from_pretrained(spec, trust_remote_code=False).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=False)
    name = Path(spec).name if Path(spec).exists() else spec
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, task=task, device=device)


@dataclass
class OnnxStudent:
    """The student's ONNX export run by ONNX Runtime on the CPU, with the PyTorch student's tokenizer and labels."""

    name: str
    session: Any
    tokenizer: Any
    config: Any
    input_names: list[str]


def find_onnx(student: str | os.PathLike | None, preferred: str | None = None) -> Path | str | None:
    """The export to run: `preferred` (a path inside the student, e.g. ``onnx/model_quantized.onnx``), else the
    first of `ONNX_FILES` in a local student folder. A Hub student's file is downloaded only when it is named."""
    if student is None:
        return None
    folder = Path(student)
    if folder.is_dir():
        for rel in [preferred] if preferred else ONNX_FILES:
            if (folder / rel).is_file():
                return folder / rel
        return None
    if preferred and "/" in str(student):
        from huggingface_hub import hf_hub_download

        return hf_hub_download(str(student), preferred)
    return None


def load_onnx_student(path: str | os.PathLike, student: LoadedModel) -> OnnxStudent:
    """Open `path` with ONNX Runtime on as many threads as torch uses (so the latencies compare).

    Raises ImportError without onnxruntime and ValueError for a file it cannot read."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise ValueError(f"{Path(path).name} is not a readable ONNX model ({type(exc).__name__})") from None
    name = f"{Path(path).parent.name}/{Path(path).name}"
    inputs = [i.name for i in session.get_inputs()]
    if student.task == GENERATION and not any(i.startswith("past_key_values.") for i in inputs):
        # streaming one token at a time needs the cache inputs `hf-distill export` gives a causal LM
        raise ValueError(f"{name} has no past_key_values inputs: export the student again with `hf-distill export`")
    return OnnxStudent(name, session, student.tokenizer, student.model.config, inputs)


def max_positions(lm: LoadedModel) -> int | None:
    """The model's context length in tokens (position table size), or None when its config does not say."""
    cfg = lm.model.config
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def input_char_limit(*models: LoadedModel) -> int:
    """How many characters of input are worth tokenizing for these models (and the text box's cap)."""
    limits = [n * CHARS_PER_POSITION for n in (max_positions(lm) for lm in models) if n]
    return min([MAX_INPUT_CHARS, *limits])


def _as_loaded(spec: str | os.PathLike | LoadedModel) -> LoadedModel:
    return spec if isinstance(spec, LoadedModel) else load_model(spec)


def _sync(device: torch.device) -> None:
    # CUDA kernels are asynchronous: without a sync the timer stops before the work is done.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _error_md(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"**Error ({type(exc).__name__})**: {msg}"


def _label_names(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, f"LABEL_{i}")) for i in range(int(getattr(config, "num_labels", len(id2label))))]


def same_prediction(a_labels: list[str], a_index: int, b_labels: list[str], b_index: int) -> bool:
    """Whether two classifiers predict the same class: by name when both use the same label set, else by index."""
    if set(a_labels) == set(b_labels):
        return a_labels[a_index] == b_labels[b_index]
    return a_index == b_index


# --------------------------------------------------------------------------------------------------
# Inference


@dataclass
class _Classified:
    probs: dict[str, float] | None = None
    top_index: int | None = None
    latency_ms: float | None = None
    error: BaseException | None = None


class _Stream:
    """One model's manual token loop, advanced one token at a time so two models can take turns."""

    def __init__(self, lm: LoadedModel, prompt: str, max_new_tokens: int, temperature: float, do_sample: bool):
        self.lm = lm
        self.do_sample = do_sample
        self.temperature = max(float(temperature), 1e-4)
        self.new_ids: list[int] = []
        self.text = ""
        self.past: Any = None
        self.done = False
        self.stopped_at_eos = False
        self.error: BaseException | None = None
        self.ttft_ms: float | None = None
        self.compute_s = 0.0
        try:
            self._prepare(prompt, int(max_new_tokens))
        except Exception as exc:  # a broken tokenizer must not stop the other model
            self._fail(exc)

    def _prepare(self, prompt: str, max_new_tokens: int) -> None:
        tok, cfg = self.lm.tokenizer, self.lm.model.config
        ids = tok(prompt or "", return_tensors="pt")["input_ids"]
        if ids.shape[1] == 0:
            bos = tok.bos_token_id if tok.bos_token_id is not None else cfg.bos_token_id
            if bos is None:
                raise ValueError("empty prompt and the tokenizer has no BOS token")
            ids = torch.tensor([[bos]])
        max_pos = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)
        self.max_new_tokens = max(1, max_new_tokens)
        if max_pos:
            # Prompt + continuation must fit the position table: a long prompt keeps its end (at least half
            # the context), and the continuation gets the rest.
            keep = min(ids.shape[1], max(max_pos // 2, max_pos - self.max_new_tokens))
            ids = ids[:, ids.shape[1] - keep :]
            self.max_new_tokens = min(self.max_new_tokens, max_pos - keep)
        self.prompt_ids = ids.to(self.lm.device)
        eos = cfg.eos_token_id if cfg.eos_token_id is not None else tok.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        # transformers 5.2x renamed `past_key_values` to `cache`; a Space may install either kind of version.
        params = inspect.signature(self.lm.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def _fail(self, exc: BaseException) -> None:
        self.error, self.done, self.past = exc, True, None

    def _forward(self, input_ids: torch.Tensor, past: Any) -> Any:
        total = self.prompt_ids.shape[1] + len(self.new_ids)
        mask = torch.ones(1, total, dtype=torch.long, device=self.lm.device)
        kwargs = {self.cache_arg: past} if past is not None else {}
        return self.lm.model(input_ids=input_ids, attention_mask=mask, use_cache=True, **kwargs)

    def warm_up(self) -> None:
        """One untimed prefill so that the first timed token is not paying for lazy initialisation."""
        if self.done:
            return
        try:
            with torch.inference_mode():
                self._forward(self.prompt_ids, None)
            _sync(self.lm.device)
        except Exception as exc:
            self._fail(exc)

    def step(self) -> None:
        """Produce one token (the first call is the prefill); errors end this stream only."""
        if self.done:
            return
        try:
            t0 = time.perf_counter()
            with torch.inference_mode():
                if self.past is None:
                    out = self._forward(self.prompt_ids, None)
                else:
                    last = torch.tensor([[self.new_ids[-1]]], device=self.lm.device)
                    out = self._forward(last, self.past)
                logits = out.logits[0, -1].float()
                if self.do_sample:
                    probs = torch.softmax(logits / self.temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1).item())
                else:
                    token = int(torch.argmax(logits).item())
            _sync(self.lm.device)
            dt = time.perf_counter() - t0
        except Exception as exc:
            self._fail(exc)
            return
        self.past = getattr(out, self.cache_arg, None)
        self.compute_s += dt
        if self.ttft_ms is None:
            self.ttft_ms = dt * 1000
        if token in self.eos_ids:
            self.stopped_at_eos = True
        else:
            self.new_ids.append(token)
            self.text = self.lm.tokenizer.decode(self.new_ids, skip_special_tokens=True)
        if self.stopped_at_eos or len(self.new_ids) >= self.max_new_tokens:
            self.done, self.past = True, None

    def stats_md(self) -> str:
        if self.error is not None:
            return _error_md(self.error)
        if self.ttft_ms is None:
            return "waiting…"
        n = len(self.new_ids)
        rate = n / self.compute_s if self.compute_s > 0 else float("nan")
        state = "done" if self.done else "generating…"
        if self.stopped_at_eos:
            state = "done (end of text)"
        return (
            f"**Time to first token:** {self.ttft_ms:.1f} ms · **Speed:** {rate:.1f} tokens/s · {n} new tokens, {state}"
        )


class _OnnxStream(_Stream):
    """The student's causal-LM export streamed like the PyTorch models, through its exported key/value cache.

    The export (``hf-distill export``) takes ``input_ids``, ``attention_mask``, ``position_ids`` and
    ``past_key_values.N.key/value`` and returns ``logits`` and ``present.N.key/value``: each step feeds the last
    token with the previous step's ``present`` as its past (an empty past for the prompt), so it runs one token per
    step as the PyTorch student does. Tokenizer, stopping, sampling and timing are `_Stream`'s own.
    """

    def __init__(
        self, onnx: OnnxStudent, lm: LoadedModel, prompt: str, max_new_tokens: int, temperature: float, do_sample: bool
    ):
        self.onnx = onnx
        super().__init__(lm, prompt, max_new_tokens, temperature, do_sample)

    def _prepare(self, prompt: str, max_new_tokens: int) -> None:
        super()._prepare(prompt, max_new_tokens)
        self.prompt_ids = self.prompt_ids.cpu()  # onnxruntime runs on the CPU here
        self.cache_arg = "past_key_values"
        self.past_names = [n for n in self.onnx.input_names if n.startswith("past_key_values.")]
        self.output_names = [o.name for o in self.onnx.session.get_outputs()]

    def _empty_past(self) -> list[Any]:
        cfg = self.onnx.config
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        empty = []
        for arg in self.onnx.session.get_inputs():
            if arg.name in self.past_names:
                # (batch, heads, past length, head size): the file's own sizes where it fixes them
                shape = [d if isinstance(d, int) else default for d, default in zip(arg.shape, (1, heads, 0, head_dim))]
                shape[0], shape[2] = 1, 0
                dtype = torch.float16 if arg.type == "tensor(float16)" else torch.float32
                empty.append(torch.zeros(shape, dtype=dtype).numpy())
        return empty

    def _forward(self, input_ids: torch.Tensor, past: Any) -> Any:
        # numpy arrays through torch: the app imports nothing beyond gradio, transformers, torch and onnxruntime
        total = self.prompt_ids.shape[1] + len(self.new_ids)
        step = input_ids.cpu().to(torch.int64)
        feed = {
            "input_ids": step.numpy(),
            "attention_mask": torch.ones(1, total, dtype=torch.int64).numpy(),
            # the positions of the tokens fed now, after the past: as GPT-2's own generate() counts them
            "position_ids": torch.arange(total - step.shape[1], total, dtype=torch.int64)[None].numpy(),
            **dict(zip(self.past_names, self._empty_past() if past is None else past)),
        }
        logits, *present = self.onnx.session.run(self.output_names, feed)
        return _OnnxOutput(torch.from_numpy(logits), present)


@dataclass
class _OnnxOutput:
    logits: torch.Tensor
    past_key_values: list[Any]


class SideBySide:
    """Runs a teacher and a student on the same input, one after the other, and formats both results."""

    def __init__(
        self,
        teacher: LoadedModel,
        student: LoadedModel,
        latency_runs: int = DEFAULT_LATENCY_RUNS,
        onnx: OnnxStudent | None = None,
    ):
        if teacher.task != student.task:
            raise ValueError(
                f"teacher {teacher.name!r} does {teacher.task} ({type(teacher.model).__name__}) but student "
                f"{student.name!r} does {student.task} ({type(student.model).__name__}): both must do the same task"
            )
        self.teacher, self.student = teacher, student
        self.task = teacher.task
        # The exported student runs as a third column (a causal LM's streams through its exported cache).
        self.onnx = onnx
        self.latency_runs = max(1, int(latency_runs))
        self.max_input_chars = input_char_limit(teacher, student)
        # Shared by all sessions: two models on the same cores at once would slow each other down.
        self._lock = threading.Lock()

    # ---- classification

    def _trunc(self, lm: LoadedModel) -> dict[str, Any]:
        # The tokenizer's own model_max_length is often unset (a huge sentinel): cut to the position table.
        limit = max_positions(lm)
        return {"truncation": True, "max_length": limit} if limit else {"truncation": True}

    def _classify_one(self, lm: LoadedModel, text: str) -> _Classified:
        model, tok, trunc = lm.model, lm.tokenizer, self._trunc(lm)

        def run() -> torch.Tensor:
            enc = tok(text, return_tensors="pt", **trunc).to(lm.device)
            with torch.inference_mode():
                logits = model(**enc).logits[0].float()
            _sync(lm.device)
            return logits

        return self._timed(run, model.config)

    def _classify_onnx(self, text: str) -> _Classified:
        onnx, trunc = self.onnx, self._trunc(self.student)

        def run() -> torch.Tensor:
            enc = onnx.tokenizer(text, return_tensors="np", **trunc)
            feed = {k: enc[k].astype("int64") for k in onnx.input_names if k in enc}
            if "token_type_ids" in onnx.input_names and "token_type_ids" not in feed:
                feed["token_type_ids"] = enc["input_ids"].astype("int64") * 0
            return torch.from_numpy(onnx.session.run(None, feed)[0][0]).float()

        return self._timed(run, onnx.config)

    def _timed(self, run: Callable[[], torch.Tensor], config: Any) -> _Classified:
        """One untimed warm-up, then `latency_runs` timed runs (median); the last run's class probabilities."""
        try:
            run()  # warm-up, not timed
            times = []
            for _ in range(self.latency_runs):
                t0 = time.perf_counter()
                logits = run()
                times.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            return _Classified(error=exc)
        multi_label = getattr(config, "problem_type", None) == "multi_label_classification"
        scores = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
        id2label = getattr(config, "id2label", None) or {}
        probs = {str(id2label.get(i, f"LABEL_{i}")): float(p) for i, p in enumerate(scores.tolist())}
        return _Classified(probs=probs, top_index=int(torch.argmax(scores)), latency_ms=statistics.median(times))

    def _latency_md(self, lm: LoadedModel, res: _Classified) -> str:
        if res.error is not None:
            return _error_md(res.error)
        return f"**Latency:** {res.latency_ms:.2f} ms (median of {self.latency_runs} runs, tokenize + forward)"

    def _agreement_md(self, t: _Classified, s: _Classified, o: _Classified | None = None) -> str:
        if t.error is not None or s.error is not None:
            failed = " and ".join(n for n, r in (("teacher", t), ("student", s)) if r.error is not None)
            return f"**Agreement:** unavailable ({failed} failed)"
        t_labels, s_labels = list(t.probs), list(s.probs)
        t_top, s_top = t_labels[t.top_index], s_labels[s.top_index]
        if o is None or o.error is not None:
            onnx = ""
        elif o.top_index == s.top_index:
            onnx = " · the ONNX student agrees with the PyTorch student"
        else:
            onnx = f" · the ONNX student predicts **{list(o.probs)[o.top_index]}**"
        if same_prediction(t_labels, t.top_index, s_labels, s.top_index):
            return f"**Agree**: both predict **{t_top}**{onnx}"
        return f"**Disagree**: teacher predicts **{t_top}**, student predicts **{s_top}**{onnx}"

    def classify(self, text: str) -> tuple[Any, ...]:
        """Classify ``text`` with both models (and the ONNX student when there is one).

        Returns (teacher probabilities, teacher latency, student probabilities, student latency, agreement), with
        (ONNX probabilities, ONNX latency) before the agreement when the exported student runs too.
        An error in one model is reported in its own latency field; the others still answer.
        """
        text = text or ""
        if not text.strip():
            # An empty input would still get probabilities (from the special tokens alone): say so instead.
            onnx = (None, EMPTY_INPUT_MESSAGE) if self.onnx is not None else ()
            return None, EMPTY_INPUT_MESSAGE, None, EMPTY_INPUT_MESSAGE, *onnx, EMPTY_INPUT_MESSAGE
        # Cut before any work: the models only see max_positions tokens of it anyway.
        text = text[: self.max_input_chars]
        with self._lock:
            t = self._classify_one(self.teacher, text)
            s = self._classify_one(self.student, text)
            o = self._classify_onnx(text) if self.onnx is not None else None
        onnx_out = (o.probs, self._latency_md(self.student, o)) if o is not None else ()
        return (
            t.probs,
            self._latency_md(self.teacher, t),
            s.probs,
            self._latency_md(self.student, s),
            *onnx_out,
            self._agreement_md(t, s, o),
        )

    # ---- a whole uploaded file

    def _predict_batch(self, lm: LoadedModel, texts: list[str]) -> list[tuple[int, str, float]]:
        """(class index, label, probability) of each text, in batches, untimed."""
        id2label = getattr(lm.model.config, "id2label", None) or {}
        out = []
        for start in range(0, len(texts), UPLOAD_BATCH_SIZE):
            chunk = [t[: self.max_input_chars] for t in texts[start : start + UPLOAD_BATCH_SIZE]]
            enc = lm.tokenizer(chunk, return_tensors="pt", padding=True, **self._trunc(lm)).to(lm.device)
            with torch.inference_mode():
                probs = torch.softmax(lm.model(**enc).logits.float(), dim=-1)
            for row in probs:
                i = int(torch.argmax(row))
                out.append((i, str(id2label.get(i, f"LABEL_{i}")), float(row[i])))
        return out

    def classify_rows(self, texts: list[str], golds: list[str] | None = None) -> dict[str, Any]:
        """Run both models over `texts` (an uploaded file's column); `golds` are label names of the teacher's.

        Returns ``{"rows": [...], "agreement": share, "accuracy": {"teacher": .., "student": ..} or None}``; each
        row holds text, gold label (if any), each model's label and probability, and whether they agree.
        """
        with self._lock:
            t_out = self._predict_batch(self.teacher, texts)
            s_out = self._predict_batch(self.student, texts)
        t_labels = list(_label_names(self.teacher.model.config))
        s_labels = list(_label_names(self.student.model.config))
        rows = []
        for k, text in enumerate(texts):
            (ti, tl, tp), (si, sl, sp) = t_out[k], s_out[k]
            row = {"text": text}
            if golds is not None:
                row["label"] = golds[k]
            row.update(
                teacher=tl,
                teacher_probability=round(tp, 4),
                student=sl,
                student_probability=round(sp, 4),
                agree=same_prediction(t_labels, ti, s_labels, si),
            )
            rows.append(row)
        n = len(rows)
        accuracy = None
        if golds is not None:
            accuracy = {
                "teacher": sum(r["teacher"] == r["label"] for r in rows) / n,
                "student": sum(r["student"] == r["label"] for r in rows) / n,
            }
        return {"rows": rows, "agreement": sum(r["agree"] for r in rows) / n, "accuracy": accuracy}

    # ---- generation

    def generate(
        self, prompt: str, max_new_tokens: int = 32, temperature: float = 0.8, do_sample: bool = False
    ) -> Iterator[tuple[str, ...]]:
        """Stream the continuations of ``prompt``; yields (teacher text, teacher stats, student text, student stats),
        then (ONNX text, ONNX stats) when the student's export runs too.

        The models take turns one token at a time, so all stream at once without ever running at the same
        time; each model's timings count its own compute only. An error ends that model's stream only.
        """
        # The continuation follows the end of the prompt: keep its last characters, cut before tokenizing.
        prompt = (prompt or "")[-self.max_input_chars :]
        streams = [_Stream(lm, prompt, max_new_tokens, temperature, do_sample) for lm in (self.teacher, self.student)]
        if self.onnx is not None:
            streams.append(_OnnxStream(self.onnx, self.student, prompt, max_new_tokens, temperature, do_sample))
        with self._lock:
            for st in streams:
                st.warm_up()
        yield self._gen_outputs(streams)
        while not all(st.done for st in streams):
            for st in streams:
                # The lock is taken per token, never across a yield: a client that goes away mid-stream
                # must not leave it held.
                with self._lock:
                    st.step()
            yield self._gen_outputs(streams)

    @staticmethod
    def _gen_outputs(streams: list[_Stream]) -> tuple[str, ...]:
        return tuple(value for st in streams for value in (st.text, st.stats_md()))


# --------------------------------------------------------------------------------------------------
# Report


def read_report(source: Mapping | str | os.PathLike) -> dict:
    """Return the report as a dict from a mapping, a path to ``distillation_report.json`` or its folder.

    A relative path that does not exist from the working directory is tried next to app.py (a Space's
    ``DISTILLATION_REPORT`` names the file shipped beside the app).
    """
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.exists() and not path.is_absolute() and (APP_DIR / path).exists():
        path = APP_DIR / path
    if path.is_dir():
        path = path / REPORT_FILENAME
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object")
    return data


def find_report(student: str | os.PathLike | None, app_dir: Path = APP_DIR) -> Path | None:
    """Look for ``distillation_report.json`` in the student's folder (or its Hub repo), then next to app.py."""
    candidates: list[Path] = []
    if student is not None and Path(student).is_dir():
        candidates += [Path(student) / REPORT_FILENAME, Path(student).parent / REPORT_FILENAME]
    candidates.append(Path(app_dir) / REPORT_FILENAME)
    for path in candidates:
        if path.is_file():
            return path
    if student is not None and not Path(student).exists() and "/" in str(student):
        try:  # a Space usually points at a Hub student whose repo carries the report
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(str(student), REPORT_FILENAME))
        except Exception:
            return None
    return None


def _section(report: Mapping, key: str) -> Mapping:
    value = report.get(key)
    return value if isinstance(value, Mapping) else {}


def _table_cell(value: Any) -> str:
    # The same escaping as the model card's table, so a row reads the same in both.
    return str(value).replace("|", "\\|").replace("\n", " ")


def report_rows(report: Mapping | None) -> list[tuple[str, str, str, str]] | None:
    """The teacher-vs-student rows stored in the report's ``table`` field, exactly as hf-distill formatted them.

    The app never formats figures itself (hf-distill decides rounding, labels and wording, so the card and
    the Space cannot disagree). Returns None when the report carries no table (written before hf-distill
    stored it, or by hand).
    """
    table = (report or {}).get("table")
    if not isinstance(table, list) or not table:
        return None
    width = len(report_header(report))
    rows = []
    for row in table:
        if not isinstance(row, (list, tuple)) or len(row) != width:
            return None
        rows.append(tuple(_table_cell(c) for c in row))
    return rows


def report_header(report: Mapping | None) -> list[str]:
    """The table's column names as the report stores them (``table_header``; a column per exported variant such
    as "Student ONNX int8"), or the four columns of reports written before variants existed."""
    header = (report or {}).get("table_header")
    if isinstance(header, list) and len(header) >= 4 and all(isinstance(c, str) for c in header):
        return [_table_cell(c) for c in header]
    return ["", "Teacher", "Student", "Student vs teacher"]


def report_markdown(report: Mapping | None) -> str:
    """Render the report's stored table (``table`` rows) and task name as a Markdown section."""
    if not report:
        return ""
    rows = report_rows(report)
    if rows is None:
        return (
            "_This distillation report carries no comparison table (it was written by an older hf-distill or by "
            "hand): run `hf-distill card` on it, or push again with `hf-distill push`, to store one._"
        )
    t, s = _section(report, "teacher"), _section(report, "student")
    head = [
        f"{who} `{_table_cell(side['name_or_path'])}`" if side.get("name_or_path") else who
        for who, side in (("Teacher", t), ("Student", s))
    ]
    columns = report_header(report)
    columns = [columns[0], *head, *columns[3:]]
    lines = ["| " + " | ".join(columns).lstrip() + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    task = f" · task: {_table_cell(report['task'])}" if report.get("task") else ""
    return f"### Distillation report{task}\n\n" + "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Evaluation examples (evaluation_examples.json, written by `hf-distill evaluate` beside the report)


def _check_number(where: str, value: Any, low: float, high: float | None = None) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{EXAMPLES_FILENAME}: {where} must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{EXAMPLES_FILENAME}: {where} is {value!r}, outside [{low:g}, {high if high else 'inf'}]")


def read_examples(source: Mapping | str | os.PathLike) -> dict:
    """The examples file as a dict, checked as hf-distill checks it on load (the app cannot import hf-distill):
    a schema version it knows, a text per row, divergences >= 0 and probabilities in [0, 1] that sum to 1.
    Raises ValueError with one line naming the problem."""
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        with open(source, encoding="utf-8") as f:
            data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{EXAMPLES_FILENAME}: expected a JSON object with 'rows'")
    version = data.get("schema_version")
    if not isinstance(version, int) or not 1 <= version <= EXAMPLES_SCHEMA_VERSION:
        raise ValueError(
            f"{EXAMPLES_FILENAME}: schema_version {version!r} is not one this app reads (1 to "
            f"{EXAMPLES_SCHEMA_VERSION}); update the app"
        )
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f"{EXAMPLES_FILENAME}: rows[{i}] has no text")
        _check_number(f"rows[{i}].divergence", row.get("divergence"), 0.0)
        for key in ("teacher_probs", "student_probs"):
            if key in row:
                probs = row[key]
                if not isinstance(probs, list) or not probs:
                    raise ValueError(f"{EXAMPLES_FILENAME}: rows[{i}].{key} must be a list of probabilities")
                for p in probs:
                    _check_number(f"rows[{i}].{key}", p, 0.0, 1.0)
                if abs(sum(probs) - 1.0) > 1e-3:
                    raise ValueError(f"{EXAMPLES_FILENAME}: rows[{i}].{key} sums to {sum(probs):.4f}, not 1")
    return data


def find_examples(report: Any, student: str | os.PathLike | None, app_dir: Path = APP_DIR) -> Path | None:
    """``evaluation_examples.json`` beside the report file, in the student's folder (or Hub repo), or by app.py."""
    candidates: list[Path] = []
    if isinstance(report, (str, os.PathLike)):
        path = Path(report)
        candidates.append((path if path.is_dir() else path.parent) / EXAMPLES_FILENAME)
    if student is not None and Path(student).is_dir():
        candidates.append(Path(student) / EXAMPLES_FILENAME)
    candidates.append(Path(app_dir) / EXAMPLES_FILENAME)
    for path in candidates:
        if path.is_file():
            return path
    if student is not None and not Path(student).exists() and "/" in str(student):
        try:  # pushed with the student by `hf-distill push`
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(str(student), EXAMPLES_FILENAME))
        except Exception:
            return None
    return None


CLASSIFICATION_EXAMPLE_HEADERS = ["Divergence (KL)", "Agree", "Gold label", "Teacher", "Student", "Text"]
GENERATION_EXAMPLE_HEADERS = ["Divergence (KL)", "Top-1 agreement", "Teacher NLL", "Student NLL", "Text"]


def examples_table(examples: Mapping) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of the examples table; the text is the last column (a click on a row runs it)."""
    rows = examples.get("rows") or []
    if examples.get("labels") is not None:
        return CLASSIFICATION_EXAMPLE_HEADERS, [
            [
                r["divergence"],
                "yes" if r.get("agree") else "no",
                r.get("label") or "",
                r.get("teacher_prediction", ""),
                r.get("student_prediction", ""),
                r["text"],
            ]
            for r in rows
        ]
    return GENERATION_EXAMPLE_HEADERS, [
        [r["divergence"], r.get("agreement_top1"), r.get("teacher_nll"), r.get("student_nll"), r["text"]] for r in rows
    ]


def examples_intro(examples: Mapping) -> str:
    """What the table holds, from the file's own counts."""
    n, rows = examples.get("num_evaluated"), len(examples.get("rows") or [])
    if examples.get("labels") is None:
        return (
            f"The {rows} of the {n} evaluation texts where the student's next-token distributions stray "
            "furthest from the teacher's. Click a row to run its text through the models; click a column's "
            "header to sort."
        )
    return (
        f"Teacher and student disagree on **{examples.get('num_disagreements')} of {n}** evaluation examples. "
        f"The table holds {rows}: every disagreement first, then the agreeing examples with the largest "
        "divergence. Click a row to run its text through all the models; click a column's header to sort."
    )


# --------------------------------------------------------------------------------------------------
# Your data: an uploaded CSV / TSV / JSONL file


class UploadError(ValueError):
    """An uploaded file the app cannot use; the message is the one line the page shows."""


def read_table_file(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]], int]:
    """(columns, rows, total rows) of a CSV, TSV or JSONL file; at most `MAX_UPLOAD_ROWS` rows are returned.

    Raises UploadError (one line naming the problem and the fix) for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl"):
        raise UploadError(f"{path.name}: use a .csv, .tsv or .jsonl file")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(f"{path.name} is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"{path.name} is not UTF-8 text: save it as UTF-8") from None
    rows: list[dict[str, str]] = []
    if suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UploadError(f"{path.name}, line {n}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise UploadError(f"{path.name}, line {n}: expected a JSON object per line")
            rows.append({str(k): "" if v is None else str(v) for k, v in obj.items()})
        columns = list(dict.fromkeys(k for r in rows for k in r))
    else:
        try:
            reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",", strict=True)
            columns = [c for c in (reader.fieldnames or []) if c]
            for n, r in enumerate(reader, 2):
                if None in r:
                    raise UploadError(f"{path.name}, line {n}: more fields than the header has columns")
                rows.append({k: v or "" for k, v in r.items() if k})
        except csv.Error as exc:
            raise UploadError(f"{path.name}: not a valid {suffix[1:].upper()} file ({exc})") from None
    if not columns or not rows:
        raise UploadError(f"{path.name} has no rows under a header line: add a header and at least one row")
    return columns, rows[:MAX_UPLOAD_ROWS], len(rows)


def guess_columns(columns: list[str]) -> tuple[str, str]:
    """(text column, label column or NO_LABEL) by their usual names, else the first column."""
    lower = {c.lower(): c for c in columns}
    text = next((lower[n] for n in ("text", "sentence", "review", "content", "input") if n in lower), columns[0])
    label = next((lower[n] for n in ("label", "labels", "gold", "target", "class") if n in lower), NO_LABEL)
    return text, label


def gold_labels(values: list[str], label_names: list[str]) -> list[str]:
    """Map a label column to the teacher's label names: a name (any case) or a class id. Raises UploadError."""
    by_name = {n.lower(): n for n in label_names}
    out = []
    for n, value in enumerate(values, 1):
        v = value.strip()
        if v.lower() in by_name:
            out.append(by_name[v.lower()])
        elif v.lstrip("-").isdigit() and 0 <= int(v) < len(label_names):
            out.append(label_names[int(v)])
        else:
            raise UploadError(
                f"row {n}: label {value!r} is neither one of the teacher's labels "
                f"({', '.join(label_names)}) nor a class id 0-{len(label_names) - 1}: pick the right "
                "label column, or none"
            )
    return out


def upload_one_line(exc: BaseException) -> str:
    """The single line the page shows for a file it cannot use."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"**Could not use this file**: {msg}"


def write_results_csv(rows: list[dict[str, Any]], folder: str | os.PathLike | None = None) -> Path:
    """The predictions as a CSV file to download."""
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="predictions-"))
    path = folder / "predictions.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------------------------------
# UI


def _message_page(markdown: str) -> gr.Blocks:
    with gr.Blocks(title="Teacher vs student", analytics_enabled=False) as page:
        gr.Markdown(markdown, elem_id="setup-message")
    return page


def _input_box(side: SideBySide, label: str, placeholder: str, elem_id: str) -> gr.Textbox:
    # Capped at what the models can read: the browser refuses longer input before it reaches the queue.
    return gr.Textbox(label=label, lines=2, placeholder=placeholder, elem_id=elem_id, max_length=side.max_input_chars)


def _model_heading(who: str, name: str, parameters: int | None = None) -> str:
    return f"### {who} · `{name}`" + (f" ({parameters:,} parameters)" if parameters else "")


def _model_columns(side: SideBySide, answer: Callable[[str, str], Any]) -> list[Any]:
    """A column per model (teacher, student, and the student's ONNX export when it runs): its heading, the answer
    component `answer(who, key)` makes, and its timings (``#{key}-stats``). Returns [answer, stats] per column."""
    columns = [
        ("Teacher", "teacher", side.teacher.name, side.teacher.num_parameters),
        ("Student", "student", side.student.name, side.student.num_parameters),
    ]
    if side.onnx is not None:
        columns.append(("Student, ONNX Runtime", "onnx", side.onnx.name, None))
    outputs = []
    with gr.Row(equal_height=True):
        for who, key, name, params in columns:
            with gr.Column():
                gr.Markdown(_model_heading(who, name, params))
                outputs += [answer(who, key), gr.Markdown(elem_id=f"{key}-stats")]
    return outputs


def _classification_ui(side: SideBySide) -> tuple[gr.Textbox, dict[str, Any]]:
    text = _input_box(side, "Text", "Type a sentence to classify", "cls-input")
    button = gr.Button(
        "Classify with all models" if side.onnx else "Classify with both models", variant="primary", elem_id="cls-run"
    )
    gr.Markdown(
        "_Timings: each model runs once to warm up, then several times (median shown); "
        "the models run one after the other, never at the same time._"
    )
    agreement = gr.Markdown(elem_id="cls-agreement")
    outputs = _model_columns(side, lambda who, key: gr.Label(label=who, num_top_classes=3, elem_id=f"{key}-label"))
    outputs.append(agreement)
    common = dict(fn=side.classify, inputs=[text], outputs=outputs, concurrency_limit=1, concurrency_id="models")
    button.click(api_name="classify", **common)
    text.submit(api_visibility="private", **common)
    examples = gr.Examples(CLASSIFICATION_EXAMPLES, inputs=[text], cache_examples=False)
    # A click on an example runs both models at once; it shares the "models" queue so timings stay fair.
    examples.load_input_event.then(api_visibility="private", **common)
    return text, common


def _generation_ui(side: SideBySide) -> tuple[gr.Textbox, dict[str, Any]]:
    prompt = _input_box(side, "Prompt", "Type the start of a text", "gen-input")
    with gr.Row():
        max_new = gr.Slider(1, 256, value=32, step=1, label="Max new tokens", elem_id="gen-max-new")
        temperature = gr.Slider(0.05, 2.0, value=0.8, step=0.05, label="Temperature (when sampling)")
        do_sample = gr.Checkbox(value=False, label="Sample (off: greedy)")
    button = gr.Button(
        "Generate with all models" if side.onnx else "Generate with both models", variant="primary", elem_id="gen-run"
    )
    gr.Markdown(
        "_Timings: after a warm-up prefill the models take turns, one token each, so all stream together "
        "but never compute at the same time; each model's figures count its own compute only._"
    )
    outputs = _model_columns(
        side,
        lambda who, key: gr.Textbox(label=f"{who} continuation", lines=6, interactive=False, elem_id=f"{key}-text"),
    )
    common = dict(
        fn=side.generate,
        inputs=[prompt, max_new, temperature, do_sample],
        outputs=outputs,
        concurrency_limit=1,
        concurrency_id="models",
    )
    button.click(api_name="generate", **common)
    prompt.submit(api_visibility="private", **common)
    examples = gr.Examples(GENERATION_EXAMPLES, inputs=[prompt], cache_examples=False)
    examples.load_input_event.then(api_visibility="private", **common)
    return prompt, common


# Back to the input box after a click far down the page, so the answers are in view.
_SCROLL_TO_INPUT = "() => { document.querySelector('#cls-input, #gen-input')?.scrollIntoView({block: 'start'}); }"


def _examples_ui(side: SideBySide, examples: Mapping, box: gr.Textbox, run: dict[str, Any]) -> None:
    headers, rows = examples_table(examples)
    gr.Markdown(examples_intro(examples), elem_id="examples-intro")
    table = gr.Dataframe(
        value=rows,
        headers=headers,
        interactive=False,
        wrap=True,
        max_height=420,
        elem_id="examples-table",
        datatype=["number", *["str"] * (len(headers) - 1)] if examples.get("labels") is not None else "auto",
        column_widths=[90, 70, 100, 100, 100, "40%"] if examples.get("labels") is not None else None,
    )

    def pick(evt: gr.SelectData) -> str:
        # The row's own values, not its index: the table may have been sorted in the browser.
        return str(evt.row_value[-1])[: side.max_input_chars]

    table.select(pick, outputs=[box], api_visibility="private").then(
        fn=None, js=_SCROLL_TO_INPUT, api_visibility="private"
    ).then(api_visibility="private", **run)


def _upload_ui(side: SideBySide) -> None:
    gr.Markdown(
        f"Upload a **CSV, TSV or JSONL** file (at most {MAX_UPLOAD_BYTES / 1e6:.0f} MB; the first "
        f"{MAX_UPLOAD_ROWS} rows are run), pick its text column and, if it has one, its label column: both models "
        "label every row, with their agreement, their accuracy when there are labels, and a CSV to download."
    )
    with gr.Row():
        upload = gr.File(label="Your file", file_types=[".csv", ".tsv", ".jsonl"], elem_id="upload-file", scale=2)
        with gr.Column(scale=3):
            text_col = gr.Dropdown(label="Text column", choices=[], elem_id="upload-text-column")
            label_col = gr.Dropdown(
                label="Label column (optional)", choices=[NO_LABEL], value=NO_LABEL, elem_id="upload-label-column"
            )
            run = gr.Button("Run both models on the file", elem_id="upload-run")
    status = gr.Markdown(elem_id="upload-status")
    results = gr.Dataframe(interactive=False, wrap=True, max_height=360, visible=False, elem_id="upload-results")
    download = gr.File(label="Predictions (CSV)", visible=False, interactive=False, elem_id="upload-download")

    def columns(path: str | None):
        if not path:
            return "", gr.update(choices=[], value=None), gr.update(choices=[NO_LABEL], value=NO_LABEL)
        try:
            cols, rows, total = read_table_file(path)
        except Exception as exc:  # one line in the page, never a traceback
            return (
                upload_one_line(exc),
                gr.update(choices=[], value=None),
                gr.update(choices=[NO_LABEL], value=NO_LABEL),
            )
        text, label = guess_columns(cols)
        cut = f" (the first {len(rows)} are run)" if total > len(rows) else ""
        return (
            f"{total} rows{cut}, columns: {', '.join(f'`{c}`' for c in cols)}. Pick the columns and run.",
            gr.update(choices=cols, value=text),
            gr.update(choices=[NO_LABEL, *cols], value=label),
        )

    def predict(path: str | None, text: str | None, label: str | None):
        hidden = gr.update(visible=False)
        try:
            if not path:
                raise UploadError("upload a file first")
            cols, rows, total = read_table_file(path)
            if text not in cols:
                raise UploadError(f"pick the text column (one of {', '.join(cols)})")
            texts = [r.get(text, "") for r in rows]
            if not any(t.strip() for t in texts):
                raise UploadError(f"column {text!r} holds no text: pick the text column")
            golds = None
            if label and label != NO_LABEL:
                golds = gold_labels([r.get(label, "") for r in rows], _label_names(side.teacher.model.config))
            result = side.classify_rows(texts, golds)
        except Exception as exc:  # one line in the page, never a traceback
            return upload_one_line(exc), hidden, hidden
        n = len(result["rows"])
        lines = [f"**{n} rows** · teacher and student agree on **{100 * result['agreement']:.1f}%**"]
        if result["accuracy"] is not None:
            acc = result["accuracy"]
            lines.append(
                f"**Accuracy** against `{label}`: teacher **{100 * acc['teacher']:.1f}%**, "
                f"student **{100 * acc['student']:.1f}%**"
            )
        if total > n:
            lines.append(f"_Only the first {n} of {total} rows were run._")
        path_out = write_results_csv(result["rows"])
        table = [list(r.values()) for r in result["rows"]]
        return (
            " · ".join(lines),
            gr.update(value=table, headers=list(result["rows"][0]), visible=True),
            gr.update(value=str(path_out), visible=True),
        )

    upload.change(columns, inputs=[upload], outputs=[status, text_col, label_col], api_visibility="private")
    run.click(
        predict,
        inputs=[upload, text_col, label_col],
        outputs=[status, results, download],
        concurrency_limit=1,
        concurrency_id="models",
        api_visibility="private",
    )


def build_demo(
    teacher: str | os.PathLike | LoadedModel | None = None,
    student: str | os.PathLike | LoadedModel | None = None,
    report: Mapping | str | os.PathLike | None = None,
    *,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    onnx: str | os.PathLike | None = None,
    examples: Mapping | str | os.PathLike | None = None,
) -> gr.Blocks:
    """Build the side-by-side app for a teacher and a student (local paths, Hub ids or loaded models).

    Without both models the page only explains what to set. ``report`` is a dict or a path to
    ``distillation_report.json``; when None it is looked for next to the student and next to app.py.
    ``onnx`` names the student's export to run as a third column (a path inside the student, e.g.
    ``onnx/model_quantized.onnx``, or a file); when None the first of `ONNX_FILES` in a local student folder.
    ``examples`` is ``evaluation_examples.json`` (a dict or path); when None it is looked for beside the report.
    Raises ``ValueError`` if the two models do not do the same task.
    """
    if teacher is None or student is None:
        missing = [n for n, v in (("TEACHER_MODEL", teacher), ("STUDENT_MODEL", student)) if v is None]
        return _message_page(SETUP_MESSAGE + f"\nMissing: {', '.join(f'`{m}`' for m in missing)}.")
    t_loaded, s_loaded = _as_loaded(teacher), _as_loaded(student)
    notes: list[str] = []
    onnx_student = None
    student_spec = None if isinstance(student, LoadedModel) else student
    onnx_path = Path(onnx) if onnx is not None and Path(onnx).is_file() else None
    try:
        onnx_path = onnx_path or find_onnx(student_spec, str(onnx) if onnx is not None else None)
        if onnx_path is not None:
            onnx_student = load_onnx_student(onnx_path, s_loaded)
    except ImportError:
        notes.append("_The student has ONNX exports; install `onnxruntime` to run one beside it._")
    except Exception as exc:  # a bad export must not take the PyTorch models down with it
        notes.append(f"_Could not load the student's ONNX export: {_error_md(exc)}_")
    side = SideBySide(t_loaded, s_loaded, latency_runs=latency_runs, onnx=onnx_student)

    report_data: dict | None = None
    report_note = ""
    if report is None and student_spec is not None:
        report = find_report(student_spec)
    if report is not None:
        try:
            report_data = read_report(report)
        except Exception as exc:  # a bad report must not take the models down with it
            report_note = f"_Could not read the distillation report {report}: {exc}_"
    else:
        report_note = "_No distillation report found (set `DISTILLATION_REPORT` to show size, speed and accuracy)._"
    examples_data: dict | None = None
    if examples is None:
        examples = find_examples(report, student_spec)
    if examples is not None:
        try:
            examples_data = read_examples(examples)
        except Exception as exc:  # shown in place of the table; the models still run
            notes.append(f"_Could not read the evaluation examples: {_error_md(exc)}_")

    title = "Teacher vs student: " + ("classification" if side.task == CLASSIFICATION else "text generation")
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        models = "the teacher, its distilled student" + (" and the student's ONNX export" if side.onnx else "")
        gr.Markdown(f"## {title}\nThe same input goes to {models}.", elem_id="intro")
        if side.task == CLASSIFICATION:
            box, run = _classification_ui(side)
        else:
            box, run = _generation_ui(side)
        for note in notes:
            gr.Markdown(note)
        if examples_data is not None:
            with gr.Accordion("Where they disagree", open=True, elem_id="examples-section"):
                _examples_ui(side, examples_data, box, run)
        if side.task == CLASSIFICATION:
            with gr.Accordion("Your data", open=True, elem_id="upload-section"):
                _upload_ui(side)
        # The report follows the models: the first screen shows the input and the answers.
        gr.Markdown(report_markdown(report_data) or report_note, elem_id="report-table")
        if report_data:
            sections = ("distillation", "training", "benchmark", "environment")
            details = {k: report_data[k] for k in sections if k in report_data}
            if details:
                with gr.Accordion("Report details", open=False):
                    gr.JSON(details)
    demo.side_by_side = side  # lets callers reach the callbacks without going through HTTP
    return demo


def resolve_config(
    env: Mapping[str, str] | None = None, app_dir: Path = APP_DIR
) -> tuple[str | None, str | None, str | None]:
    """Return (teacher, student, report): each from the environment, else from ``distill_config.json``.

    Environment: ``TEACHER_MODEL``, ``STUDENT_MODEL``, ``DISTILLATION_REPORT``. The config file's
    ``distillation_report`` (a path relative to the app folder) stands in for the last one. The ONNX file to run
    is `resolve_onnx`'s.
    """
    env = os.environ if env is None else env
    teacher, student = env.get("TEACHER_MODEL") or None, env.get("STUDENT_MODEL") or None
    report = env.get("DISTILLATION_REPORT") or None
    cfg_path = Path(app_dir) / CONFIG_FILENAME
    if (teacher is None or student is None or report is None) and cfg_path.is_file():
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        if not isinstance(cfg, dict):
            raise ValueError(f"{cfg_path}: expected a JSON object")
        teacher = teacher or cfg.get("teacher") or None
        student = student or cfg.get("student") or None
        cfg_report = cfg.get("distillation_report") or cfg.get("report")
        if report is None and cfg_report:
            report = str(Path(app_dir) / cfg_report)
    return teacher, student, report


def resolve_onnx(env: Mapping[str, str] | None = None, app_dir: Path = APP_DIR) -> str | None:
    """The student's export to run: ``STUDENT_ONNX``, else ``distill_config.json``'s ``onnx`` (both a path inside
    the student's folder or repo, e.g. ``onnx/model_quantized.onnx``), else None (the app's own pick)."""
    env = os.environ if env is None else env
    if env.get("STUDENT_ONNX"):
        return env["STUDENT_ONNX"]
    cfg_path = Path(app_dir) / CONFIG_FILENAME
    if cfg_path.is_file():
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        if isinstance(cfg, dict) and isinstance(cfg.get("onnx"), str):
            return cfg["onnx"]
    return None


def demo_from_env() -> gr.Blocks:
    """Build the app from the environment / ``distill_config.json``; failures become a message page."""
    try:
        teacher, student, report = resolve_config()
        return build_demo(teacher, student, report, onnx=resolve_onnx())
    except Exception as exc:  # on a Space, a readable page beats a crash loop
        return _message_page(f"## Could not start the demo\n\n{_error_md(exc)}\n\n" + SETUP_MESSAGE)


def launch_kwargs(host: str | None = None, port: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``demo.launch``: loopback by default, Space env vars honoured, built-in theme."""
    return dict(
        server_name=host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=int(port or os.environ.get("GRADIO_SERVER_PORT") or 7860),
        theme=gr.themes.Default(),  # bundled fonts: a web-font request could hang rendering offline
        ssr_mode=False,
    )


def __getattr__(name: str) -> Any:
    # `demo` is built on first access rather than at import, so that `hf-distill demo` can import this
    # file to call build_demo() without first loading whatever models the environment happens to name.
    if name == "demo":
        globals()["demo"] = built = demo_from_env()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point for ``python app.py`` (what a Space runs)."""
    demo_from_env().queue().launch(**launch_kwargs())


if __name__ == "__main__":
    main()
