"""Teacher and student side by side: a Gradio app for a distilled model pair.

Runs locally (``hf-distill demo``) or as a Hugging Face Space (``python app.py``). It depends only on
transformers, torch and gradio so that a Space needs nothing else; it never imports ``hf_distill``.

Configuration, first match wins:
  * ``build_demo(teacher, student, report)`` arguments (local paths or Hub ids);
  * environment variables ``TEACHER_MODEL``, ``STUDENT_MODEL``, ``DISTILLATION_REPORT``;
  * ``distill_config.json`` next to this file: ``{"teacher": repo_id, "student": repo_id}``.
"""

from __future__ import annotations

import os

# Both must be set before gradio / huggingface_hub are imported, or they phone home at import time.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import inspect  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator, Mapping  # noqa: E402

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
            f"**Time to first token:** {self.ttft_ms:.1f} ms · **Speed:** {rate:.1f} tokens/s"
            f" · {n} new tokens, {state}"
        )


class SideBySide:
    """Runs a teacher and a student on the same input, one after the other, and formats both results."""

    def __init__(self, teacher: LoadedModel, student: LoadedModel, latency_runs: int = DEFAULT_LATENCY_RUNS):
        if teacher.task != student.task:
            raise ValueError(
                f"teacher {teacher.name!r} does {teacher.task} ({type(teacher.model).__name__}) but student "
                f"{student.name!r} does {student.task} ({type(student.model).__name__}): both must do the same task"
            )
        self.teacher, self.student = teacher, student
        self.task = teacher.task
        self.latency_runs = max(1, int(latency_runs))
        self.max_input_chars = input_char_limit(teacher, student)
        # Shared by all sessions: two models on the same cores at once would slow each other down.
        self._lock = threading.Lock()

    # ---- classification

    def _classify_one(self, lm: LoadedModel, text: str) -> _Classified:
        model, tok = lm.model, lm.tokenizer
        multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"

        # The tokenizer's own model_max_length is often unset (a huge sentinel): cut to the position table.
        limit = max_positions(lm)
        trunc = {"truncation": True, "max_length": limit} if limit else {"truncation": True}

        def run() -> torch.Tensor:
            enc = tok(text, return_tensors="pt", **trunc).to(lm.device)
            with torch.inference_mode():
                logits = model(**enc).logits[0].float()
            _sync(lm.device)
            return logits

        try:
            run()  # warm-up, not timed
            times = []
            for _ in range(self.latency_runs):
                t0 = time.perf_counter()
                logits = run()
                times.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:
            return _Classified(error=exc)
        scores = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
        id2label = getattr(model.config, "id2label", None) or {}
        probs = {str(id2label.get(i, f"LABEL_{i}")): float(p) for i, p in enumerate(scores.tolist())}
        return _Classified(probs=probs, top_index=int(torch.argmax(scores)), latency_ms=statistics.median(times))

    def _latency_md(self, lm: LoadedModel, res: _Classified) -> str:
        if res.error is not None:
            return _error_md(res.error)
        return f"**Latency:** {res.latency_ms:.2f} ms (median of {self.latency_runs} runs, tokenize + forward)"

    def _agreement_md(self, t: _Classified, s: _Classified) -> str:
        if t.error is not None or s.error is not None:
            failed = " and ".join(n for n, r in (("teacher", t), ("student", s)) if r.error is not None)
            return f"**Agreement:** unavailable ({failed} failed)"
        t_labels, s_labels = list(t.probs), list(s.probs)
        t_top, s_top = t_labels[t.top_index], s_labels[s.top_index]
        # Label names are only comparable if both models use the same label set; else compare class indices.
        agree = t_top == s_top if set(t_labels) == set(s_labels) else t.top_index == s.top_index
        if agree:
            return f"**Agree**: both predict **{t_top}**"
        return f"**Disagree**: teacher predicts **{t_top}**, student predicts **{s_top}**"

    def classify(self, text: str) -> tuple[dict | None, str, dict | None, str, str]:
        """Classify ``text`` with both models.

        Returns (teacher probabilities, teacher latency, student probabilities, student latency, agreement).
        An error in one model is reported in its own latency field; the other model still answers.
        """
        text = text or ""
        if not text.strip():
            # An empty input would still get probabilities (from the special tokens alone): say so instead.
            return None, EMPTY_INPUT_MESSAGE, None, EMPTY_INPUT_MESSAGE, EMPTY_INPUT_MESSAGE
        # Cut before any work: the models only see max_positions tokens of it anyway.
        text = text[: self.max_input_chars]
        with self._lock:
            t = self._classify_one(self.teacher, text)
            s = self._classify_one(self.student, text)
        return (
            t.probs,
            self._latency_md(self.teacher, t),
            s.probs,
            self._latency_md(self.student, s),
            self._agreement_md(t, s),
        )

    # ---- generation

    def generate(
        self, prompt: str, max_new_tokens: int = 32, temperature: float = 0.8, do_sample: bool = False
    ) -> Iterator[tuple[str, str, str, str]]:
        """Stream both continuations of ``prompt``; yields (teacher text, teacher stats, student text, student stats).

        The models take turns one token at a time, so both stream at once without ever running at the same
        time; each model's timings count its own compute only. An error ends that model's stream only.
        """
        # The continuation follows the end of the prompt: keep its last characters, cut before tokenizing.
        prompt = (prompt or "")[-self.max_input_chars :]
        streams = [_Stream(lm, prompt, max_new_tokens, temperature, do_sample) for lm in (self.teacher, self.student)]
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
    def _gen_outputs(streams: list[_Stream]) -> tuple[str, str, str, str]:
        t, s = streams
        return t.text, t.stats_md(), s.text, s.stats_md()


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
# UI


def _message_page(markdown: str) -> gr.Blocks:
    with gr.Blocks(title="Teacher vs student", analytics_enabled=False) as page:
        gr.Markdown(markdown, elem_id="setup-message")
    return page


def _input_box(side: SideBySide, label: str, placeholder: str, elem_id: str) -> gr.Textbox:
    # Capped at what the models can read: the browser refuses longer input before it reaches the queue.
    return gr.Textbox(
        label=label, lines=2, placeholder=placeholder, elem_id=elem_id, max_length=side.max_input_chars
    )


def _classification_ui(side: SideBySide) -> None:
    text = _input_box(side, "Text", "Type a sentence to classify", "cls-input")
    button = gr.Button("Classify with both models", variant="primary", elem_id="cls-run")
    gr.Markdown(
        "_Timings: each model runs once to warm up, then several times (median shown); "
        "the two models run one after the other, never at the same time._"
    )
    agreement = gr.Markdown(elem_id="cls-agreement")
    with gr.Row(equal_height=True):
        with gr.Column():
            gr.Markdown(f"### Teacher · `{side.teacher.name}` ({side.teacher.num_parameters:,} parameters)")
            t_label = gr.Label(label="Teacher", num_top_classes=5, elem_id="teacher-label")
            t_lat = gr.Markdown(elem_id="teacher-stats")
        with gr.Column():
            gr.Markdown(f"### Student · `{side.student.name}` ({side.student.num_parameters:,} parameters)")
            s_label = gr.Label(label="Student", num_top_classes=5, elem_id="student-label")
            s_lat = gr.Markdown(elem_id="student-stats")
    outputs = [t_label, t_lat, s_label, s_lat, agreement]
    common = dict(fn=side.classify, inputs=[text], outputs=outputs, concurrency_limit=1, concurrency_id="models")
    button.click(api_name="classify", **common)
    text.submit(api_visibility="private", **common)
    examples = gr.Examples(CLASSIFICATION_EXAMPLES, inputs=[text], cache_examples=False)
    # A click on an example runs both models at once; it shares the "models" queue so timings stay fair.
    examples.load_input_event.then(api_visibility="private", **common)


def _generation_ui(side: SideBySide) -> None:
    prompt = _input_box(side, "Prompt", "Type the start of a text", "gen-input")
    with gr.Row():
        max_new = gr.Slider(1, 256, value=32, step=1, label="Max new tokens", elem_id="gen-max-new")
        temperature = gr.Slider(0.05, 2.0, value=0.8, step=0.05, label="Temperature (when sampling)")
        do_sample = gr.Checkbox(value=False, label="Sample (off: greedy)")
    button = gr.Button("Generate with both models", variant="primary", elem_id="gen-run")
    gr.Markdown(
        "_Timings: after a warm-up prefill the models take turns, one token each, so both stream together "
        "but never compute at the same time; each model's figures count its own compute only._"
    )
    with gr.Row(equal_height=True):
        with gr.Column():
            gr.Markdown(f"### Teacher · `{side.teacher.name}` ({side.teacher.num_parameters:,} parameters)")
            t_text = gr.Textbox(label="Teacher continuation", lines=6, interactive=False, elem_id="teacher-text")
            t_stats = gr.Markdown(elem_id="teacher-stats")
        with gr.Column():
            gr.Markdown(f"### Student · `{side.student.name}` ({side.student.num_parameters:,} parameters)")
            s_text = gr.Textbox(label="Student continuation", lines=6, interactive=False, elem_id="student-text")
            s_stats = gr.Markdown(elem_id="student-stats")
    common = dict(
        fn=side.generate,
        inputs=[prompt, max_new, temperature, do_sample],
        outputs=[t_text, t_stats, s_text, s_stats],
        concurrency_limit=1,
        concurrency_id="models",
    )
    button.click(api_name="generate", **common)
    prompt.submit(api_visibility="private", **common)
    examples = gr.Examples(GENERATION_EXAMPLES, inputs=[prompt], cache_examples=False)
    examples.load_input_event.then(api_visibility="private", **common)


def build_demo(
    teacher: str | os.PathLike | LoadedModel | None = None,
    student: str | os.PathLike | LoadedModel | None = None,
    report: Mapping | str | os.PathLike | None = None,
    *,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
) -> gr.Blocks:
    """Build the side-by-side app for a teacher and a student (local paths, Hub ids or loaded models).

    Without both models the page only explains what to set. ``report`` is a dict or a path to
    ``distillation_report.json``; when None it is looked for next to the student and next to app.py.
    Raises ``ValueError`` if the two models do not do the same task.
    """
    if teacher is None or student is None:
        missing = [n for n, v in (("TEACHER_MODEL", teacher), ("STUDENT_MODEL", student)) if v is None]
        return _message_page(SETUP_MESSAGE + f"\nMissing: {', '.join(f'`{m}`' for m in missing)}.")
    side = SideBySide(_as_loaded(teacher), _as_loaded(student), latency_runs=latency_runs)

    report_data: dict | None = None
    report_note = ""
    if report is None and not isinstance(student, LoadedModel):
        report = find_report(student)
    if report is not None:
        try:
            report_data = read_report(report)
        except Exception as exc:  # a bad report must not take the models down with it
            report_note = f"_Could not read the distillation report {report}: {exc}_"
    else:
        report_note = "_No distillation report found (set `DISTILLATION_REPORT` to show size, speed and accuracy)._"

    title = "Teacher vs student: " + ("classification" if side.task == CLASSIFICATION else "text generation")
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n\nThe same input goes to the teacher and to its distilled student.")
        gr.Markdown(report_markdown(report_data) or report_note, elem_id="report-table")
        if report_data:
            sections = ("distillation", "training", "benchmark", "environment")
            details = {k: report_data[k] for k in sections if k in report_data}
            if details:
                with gr.Accordion("Report details", open=False):
                    gr.JSON(details)
        if side.task == CLASSIFICATION:
            _classification_ui(side)
        else:
            _generation_ui(side)
    demo.side_by_side = side  # lets callers reach the callbacks without going through HTTP
    return demo


def resolve_config(
    env: Mapping[str, str] | None = None, app_dir: Path = APP_DIR
) -> tuple[str | None, str | None, str | None]:
    """Return (teacher, student, report): each from the environment, else from ``distill_config.json``.

    Environment: ``TEACHER_MODEL``, ``STUDENT_MODEL``, ``DISTILLATION_REPORT``. The config file's
    ``distillation_report`` (a path relative to the app folder) stands in for the last one.
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


def demo_from_env() -> gr.Blocks:
    """Build the app from the environment / ``distill_config.json``; failures become a message page."""
    try:
        teacher, student, report = resolve_config()
        return build_demo(teacher, student, report)
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
