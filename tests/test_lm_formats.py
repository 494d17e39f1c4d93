"""Causal-LM data as TRL users bring it (hf_distill.lm_data): every format trains through DistillationTrainer."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.core.lm_data import detect_lm_format, render_conversation
from hf_distill.students.tokenizer_training import train_bpe_tokenizer
from hf_distill.training.on_policy import COMPLETION_MASK, PROMPT_LENGTH, tokenize_prompt_completion
from tests import tiny

# Assistant turns inside {% generation %} (the masks come from apply_chat_template), and the same rendering without
# it (the masks come from rendering each prefix).
GENERATION_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|assistant|>{% generation %}{{ m['content'] }}<|end|>"
    "{% endgeneration %}{% else %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
PLAIN_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
OTHER_TEMPLATE = (  # a teacher's template: other role markers
    "{% for m in messages %}<|user|>[{{ m['role'] }}]{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|user|>[assistant]{% endif %}"
)
# The generation prompt ends with a space that the rendered assistant turn does not have: no prefix.
NO_PREFIX_TEMPLATE = PLAIN_TEMPLATE.replace(
    "{% if add_generation_prompt %}<|assistant|>", "{% if add_generation_prompt %}<|assistant|> "
)

PAIRS = [
    ("once upon a time", "there lived a king and a queen"),
    ("the wolf ate", "the grandmother and waited in her bed"),
    ("hansel and gretel", "found a house made of bread"),
    ("the little tailor", "killed seven flies at one blow"),
]


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def chat_tokenizer(template=GENERATION_TEMPLATE, vocab_size=300):
    tok = train_bpe_tokenizer(tiny.CORPUS, vocab_size, model_max_length=64)
    tok.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>", "<|end|>"]})
    tok.eos_token = "<|end|>"  # generation stops at the end of the assistant's turn
    tok.chat_template = template
    return tok


@pytest.fixture(scope="module")
def tok():
    return chat_tokenizer()


def rows(kind):
    """The same four examples in each TRL format."""
    if kind == "text":
        return {"text": [f"{p} {c}" for p, c in PAIRS]}
    if kind == "prompt-completion":
        return {"prompt": [p for p, _ in PAIRS], "completion": [f" {c}" for _, c in PAIRS]}
    if kind == "prompt-only":
        return {"prompt": [p for p, _ in PAIRS]}
    if kind == "conversational prompt-completion":
        return {"prompt": [[user(p)] for p, _ in PAIRS], "completion": [[assistant(c)] for _, c in PAIRS]}
    if kind == "conversational prompt-only":
        return {"prompt": [[user(p)] for p, _ in PAIRS]}
    assert kind == "messages"
    return {"messages": [[user(p), assistant(c), user("and"), assistant("a queen")] for p, c in PAIRS]}


FORMATS = [
    "text",
    "prompt-completion",
    "prompt-only",
    "conversational prompt-completion",
    "conversational prompt-only",
    "messages",
]


def gpt2_pair(tok):
    torch.manual_seed(0)
    teacher = tiny.gpt2(tok, num_layers=2)
    torch.manual_seed(1)
    return teacher, tiny.gpt2(tok, num_layers=1)


def llama(tok, layers):
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def llama_pair(tok):
    torch.manual_seed(0)
    teacher = llama(tok, 2)
    torch.manual_seed(1)
    return teacher, llama(tok, 1)


def config(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        max_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        max_new_tokens=4,
        alpha=1.0,
        temperature=2.0,
        max_length=48,
    )
    base.update(kw)
    return DistillationConfig(**base)


# ---- the format, from the columns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_detect_lm_format(kind):
    fmt = detect_lm_format(Dataset.from_dict({**rows(kind), "extra": [0] * len(PAIRS)}))
    assert str(fmt) == kind
    assert fmt.conversational == (kind.startswith("conversational") or kind == "messages")
    assert detect_lm_format(Dataset.from_dict({"input_ids": [[1, 2]], "prompt": ["x"]})).kind == "tokenized"
    assert detect_lm_format(Dataset.from_dict({"body": ["a b"]}), "body").text_column == "body"


def test_unknown_format_is_refused_in_one_line_naming_the_accepted_columns(tmp_path, tok):
    data = Dataset.from_dict({"question": ["q"], "answer": ["a"]})
    with pytest.raises(ValueError) as err:
        detect_lm_format(data)
    message = str(err.value)
    assert "\n" not in message and "['question', 'answer']" in message
    for column in ("`text`", "`prompt` + `completion`", "`prompt` alone", "`messages`", "`input_ids`"):
        assert column in message
    teacher, student = gpt2_pair(tok)
    with pytest.raises(ValueError, match=r"cannot tell the causal-LM data format from the columns \['question'"):
        DistillationTrainer(
            model=student, teacher_model=teacher, args=config(tmp_path), train_dataset=data, processing_class=tok
        )
    mixed = Dataset.from_dict({"prompt": ["a"], "completion": [[assistant("b")]]})
    with pytest.raises(ValueError, match="both be strings or both lists of messages"):
        detect_lm_format(mixed)
    with pytest.raises(ValueError, match="neither text nor lists of"):
        detect_lm_format(Dataset.from_dict({"prompt": [3]}))


# ---- chat templates: the loss covers the assistant tokens, checked token by token ---------------------------------


def expected_conversation(tok, messages, trained):
    """ids and mask of a conversation built piece by piece (role marker, content, end marker): `trained(i)` says
    whether message i's content and end marker are trained."""
    ids, mask = [], []
    for i, m in enumerate(messages):
        marker = tok.convert_tokens_to_ids(f"<|{m['role']}|>")
        content = tok(m["content"], add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|end|>")]
        ids += [marker] + content
        mask += [0] + [int(trained(i))] * len(content)
    return ids, mask


@pytest.mark.parametrize("template", [GENERATION_TEMPLATE, PLAIN_TEMPLATE], ids=["generation-block", "prefixes"])
def test_chat_template_masks_everything_but_the_assistant_turns(tmp_path, template):
    tok = chat_tokenizer(template)
    messages = [user("once upon a time"), assistant("there lived a king"), user("and"), assistant("a queen")]
    teacher, student = gpt2_pair(tok)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path),
        train_dataset=Dataset.from_dict({"messages": [messages]}),
        processing_class=tok,
    )
    row = trainer.train_dataset[0]
    ids, mask = expected_conversation(tok, messages, lambda i: messages[i]["role"] == "assistant")
    assert row["input_ids"] == ids and row[COMPLETION_MASK] == mask
    assert row[PROMPT_LENGTH] == len(expected_conversation(tok, messages[:3], bool)[0]) + 1  # + "<|assistant|>"
    batch = trainer.data_collator([row])
    labels = batch["labels"][0].tolist()
    assert labels == [t if m else -100 for t, m in zip(ids, mask)]  # token by token
    trained = [tok.decode([t]) for t, m in zip(ids, mask) if m]
    assert "".join(trained) == "there lived a king<|end|>a queen<|end|>"
    assert batch["prompt_input_ids"][0].tolist() == ids[: row[PROMPT_LENGTH]]

    # prompt + completion as messages: the completion alone is trained (the prompt's assistant turn is context)
    pair = Dataset.from_dict({"prompt": [messages[:3]], "completion": [messages[3:]]})
    row = tokenize_prompt_completion(pair, tok, max_length=64)[0]
    assert row["input_ids"] == ids and row[COMPLETION_MASK] == [int(i >= row[PROMPT_LENGTH]) for i in range(len(ids))]


def test_a_template_that_renders_the_prompt_differently_is_refused_in_one_line():
    tok = chat_tokenizer(NO_PREFIX_TEMPLATE)
    with pytest.raises(ValueError, match=r"renders a conversation's beginning .* differently") as err:
        render_conversation(tok, [user("once upon a time")], [assistant("there lived a king")])
    assert "\n" not in str(err.value)
    no_template = chat_tokenizer(None)
    with pytest.raises(ValueError, match="conversational rows need a chat template"):
        tokenize_prompt_completion(Dataset.from_dict(rows("messages")), no_template, max_length=32)


def test_max_length_and_max_completion_length(tok):
    data = Dataset.from_dict(rows("prompt-completion"))
    full = tokenize_prompt_completion(data, tok, max_length=None)
    cut = tokenize_prompt_completion(data, tok, max_length=None, max_completion_length=3)
    for a, b in zip(full, cut):
        assert b[PROMPT_LENGTH] == a[PROMPT_LENGTH] and b["input_ids"] == a["input_ids"][: a[PROMPT_LENGTH] + 3]
    short = tokenize_prompt_completion(data, tok, max_length=5)
    for a, b in zip(full, short):  # the prompt keeps its last max_length - 1 tokens, the completion its first
        p = a[PROMPT_LENGTH]
        kept = a["input_ids"][max(0, p - 4) : p]
        assert b["input_ids"] == (kept + a["input_ids"][p:])[:5] and b[PROMPT_LENGTH] == len(kept)
    assert DistillationConfig(output_dir="x", max_new_tokens=8, max_completion_length=3).generated_tokens == 3
    with pytest.raises(ValueError, match="max_completion_length=0 is invalid"):
        DistillationConfig(output_dir="x", max_completion_length=0)


# ---- every format trains a step, off-policy and on-policy -----------------------------------------------------------


CASES = [
    (kind, lmbda)
    for kind in FORMATS
    for lmbda in (0.0, 1.0)
    if not (kind == "text" and lmbda) and not ("prompt-only" in kind and not lmbda)
]


@pytest.mark.parametrize("kind,lmbda", CASES)
def test_each_format_trains_a_step(tmp_path, tok, kind, lmbda):
    teacher, student = gpt2_pair(tok)
    before = [p.detach().clone() for p in student.parameters()]
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path, lmbda=lmbda),
        train_dataset=Dataset.from_dict(rows(kind)),
        processing_class=tok,
    )
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
    if lmbda:
        assert trainer._generated_batches == [0, 1]


@pytest.mark.parametrize(
    "kind,lmbda", [("messages", 0.0), ("conversational prompt-only", 1.0), ("prompt-completion", 1.0)]
)
def test_llama_pair_trains_each_format(tmp_path, tok, kind, lmbda):
    teacher, student = llama_pair(tok)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path, lmbda=lmbda),
        train_dataset=Dataset.from_dict(rows(kind)),
        processing_class=tok,
    )
    assert math.isfinite(trainer.train().training_loss)


def test_prompt_only_data_is_refused_off_policy_in_one_line(tmp_path, tok):
    teacher, student = gpt2_pair(tok)
    for kind in ("prompt-only", "conversational prompt-only"):
        for lmbda in (0.0, 0.5):
            refusal = r"train_dataset is prompt-only .*set lmbda=1 .* or seq_kd=True"
            with pytest.raises(ValueError, match=refusal) as err:
                DistillationTrainer(
                    model=student,
                    teacher_model=teacher,
                    args=config(tmp_path, lmbda=lmbda),
                    train_dataset=Dataset.from_dict(rows(kind)),
                    processing_class=tok,
                )
            assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="eval_dataset is prompt-only .*evaluation scores given completions"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path, lmbda=1.0),
            train_dataset=Dataset.from_dict(rows("prompt-only")),
            eval_dataset=Dataset.from_dict(rows("prompt-only")),
            processing_class=tok,
        )
    # seq_kd gives every batch the student does not write a teacher-written completion
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path, seq_kd=True),
        train_dataset=Dataset.from_dict(rows("prompt-only")),
        processing_class=tok,
    )
    assert trainer.train_dataset[PROMPT_LENGTH] == [len(r) for r in trainer.train_dataset["input_ids"]]
    with pytest.raises(ValueError, match="text rows have none"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path, lmbda=1.0),
            train_dataset=Dataset.from_dict(rows("text")),
            processing_class=tok,
        )


# ---- teacher and student tokenizers ---------------------------------------------------------------------------------


def test_the_student_template_renders_for_both_and_other_vocabularies_are_refused(tmp_path, tok):
    teacher, student = gpt2_pair(tok)
    teacher_tok = chat_tokenizer(OTHER_TEMPLATE)
    assert teacher_tok.get_vocab() == tok.get_vocab()
    data = Dataset.from_dict(rows("messages"))
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path),
        train_dataset=data,
        processing_class=tok,
        teacher_processing_class=teacher_tok,
    )
    ours = tokenize_prompt_completion(data, tok, max_length=48)
    assert trainer.train_dataset["input_ids"] == ours["input_ids"]  # the student's rendering, read by both models
    assert tokenize_prompt_completion(data, teacher_tok, max_length=48)["input_ids"] != ours["input_ids"]
    trainer.train()

    other = chat_tokenizer(vocab_size=280)
    teacher_other = tiny.gpt2(other, num_layers=2)
    with pytest.raises(ValueError, match="tokenizers differ .*different vocabularies") as err:
        DistillationTrainer(
            model=student,
            teacher_model=teacher_other,
            args=config(tmp_path),
            train_dataset=data,
            processing_class=tok,
            teacher_processing_class=other,
        )
    assert "\n" not in str(err.value)


# ---- the same Dataset as TRL's trainers take -------------------------------------------------------------------------


def test_a_trl_dataset_goes_into_our_trainer_unchanged(tmp_path, tok):
    """The `messages` Dataset passed to TRL's GKDTrainer goes into DistillationTrainer as it is; both trainers'
    batches hold the same tokens, the same trained (completion) tokens and the same prompts."""
    pytest.importorskip("trl")
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    data = Dataset.from_dict({"messages": [[user(p), assistant(c)] for p, c in PAIRS]})
    teacher, student = gpt2_pair(tok)
    gkd = GKDTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=data,
        processing_class=tok,
        args=GKDConfig(
            output_dir=str(tmp_path / "trl"),
            report_to=[],
            use_cpu=True,
            max_length=48,
            lmbda=0.0,
            max_steps=1,
            disable_tqdm=True,
        ),
    )
    theirs = gkd.data_collator([data[i] for i in range(len(data))])
    ours_trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=config(tmp_path), train_dataset=data, processing_class=tok
    )
    ours = ours_trainer.data_collator([ours_trainer.train_dataset[i] for i in range(len(data))])

    def real(ids, mask):
        return [row[m.bool()].tolist() for row, m in zip(ids, mask)]

    assert real(theirs["input_ids"], theirs["attention_mask"]) == real(ours["input_ids"], ours["attention_mask"])
    assert real(theirs["labels"], theirs["labels"] != -100) == real(ours["labels"], ours["labels"] != -100)
    assert real(theirs["prompts"], theirs["prompt_attention_mask"]) == real(
        ours["prompt_input_ids"], ours["prompt_attention_mask"]
    )


# ---- hf-distill run: the same formats from jsonl files ---------------------------------------------------------------


def write_jsonl(path, columns):
    import json

    n = len(next(iter(columns.values())))
    path.write_text("".join(json.dumps({k: v[i] for k, v in columns.items()}) + "\n" for i in range(n)))
    return str(path)


def run_config(tmp_path, tok, train_kind, validation_kind, **extra):
    import yaml

    teacher_dir = tmp_path / "teacher"
    if not teacher_dir.exists():
        teacher, _ = gpt2_pair(tok)
        teacher.save_pretrained(teacher_dir)
        tok.save_pretrained(teacher_dir)
    cfg = {
        "task": "causal-lm",
        "teacher": str(teacher_dir),
        "train_teacher": "no",
        "use_soft_targets": False,
        "train_file": write_jsonl(tmp_path / "train.jsonl", rows(train_kind)),
        "validation_file": write_jsonl(tmp_path / "validation.jsonl", rows(validation_kind)),
        "student_layers": 1,
        "max_length": 48,
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "alpha": 1.0,
        "max_new_tokens": 4,
        "eval_sample_prompts": 2,
        "eval_sample_new_tokens": 4,
        "output_dir": str(tmp_path / "run"),
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "benchmark_threads": 1,
        "benchmark_runs": 2,
        "benchmark_batch_size": 2,
    }
    cfg.update(extra)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "train_kind,validation_kind,lmbda",
    [
        ("messages", "messages", 0.0),
        ("conversational prompt-only", "conversational prompt-completion", 1.0),
        ("prompt-completion", "prompt-completion", 0.0),
    ],
)
def test_run_trains_from_lm_data_files(tmp_path, tok, train_kind, validation_kind, lmbda):
    import json

    from hf_distill.pipeline.run import run_from_config

    results = run_from_config(run_config(tmp_path, tok, train_kind, validation_kind, lmbda=lmbda))
    assert results["student"]["rows"] == len(PAIRS) and results["student"]["global_step"] == 2
    report = json.loads((tmp_path / "run" / "student" / "distillation_report.json").read_text())
    assert report["student"]["metrics"]["perplexity"] > 1


def test_run_check_refuses_lm_data_it_cannot_train_on(tmp_path, tok):
    from hf_distill.pipeline.preflight import PreflightError
    from hf_distill.pipeline.run import run_from_config

    with pytest.raises(PreflightError) as err:
        run_from_config(
            run_config(tmp_path, tok, "prompt-only", "prompt-only", use_soft_targets=True, prompt_tokens=2),
            check_only=True,
        )
    problems = err.value.problems
    assert any("cached soft targets are made from whole texts: set use_soft_targets: false" in p for p in problems)
    assert any("have their prompts already: remove prompt_tokens" in p for p in problems)
    assert any(p.startswith("train_dataset is prompt-only") and "set lmbda=1" in p for p in problems)
    assert any(p.startswith("the validation data is prompt-only") for p in problems)
    with pytest.raises(PreflightError) as err:
        run_from_config(
            run_config(tmp_path, tok, "text", "text")
            and run_config(
                tmp_path,
                tok,
                "text",
                "text",
                train_file=write_jsonl(tmp_path / "qa.jsonl", {"question": ["q"], "answer": ["a"]}),
            ),
            check_only=True,
        )
    assert any(
        "cannot tell the causal-LM data format from the columns ['question', 'answer']" in p for p in err.value.problems
    )
