"""Prompt-only conversational rows for examples/grimm_llama.yaml: the opening words of each line of the Grimm
training text as a user turn, TRL's prompt-only format (`{"prompt": [{"role": "user", "content": ...}]}`).
With `--completions`, each row also keeps the rest of its line as the assistant turn, TRL's conversational
prompt-completion format (`{"prompt": [...], "completion": [{"role": "assistant", "content": ...}]}`), which
on-policy distillation with lmbda < 1 needs for its batches that are not student-generated.

    python examples/grimm_prompts.py [--words 8] [--completions] [--source ../shared/data/grimm/train.txt] [--out PATH]

Lines with no more than `--words` words are left out (nothing would remain to continue). The file is written
atomically; an existing file with other contents is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def prompt_rows(lines: list[str], words: int, completions: bool = False) -> list[dict]:
    """One row per line longer than `words` words: its first `words` words as the user turn and, with
    `completions`, the rest of the line as the assistant turn (with its leading space: the continuation template
    joins the turns as they are, so prompt + completion renders the line)."""
    rows = []
    for line in lines:
        parts = line.split()
        if len(parts) > words:
            row = {"prompt": [{"role": "user", "content": " ".join(parts[:words])}]}
            if completions:
                row["completion"] = [{"role": "assistant", "content": " " + " ".join(parts[words:])}]
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--source", default="../shared/data/grimm/train.txt")
    parser.add_argument("--completions", action="store_true", help="keep each line's rest as the assistant turn")
    parser.add_argument("--out", help="default: runs/grimm-llama-data/prompts.jsonl (with --completions: pairs.jsonl)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.source).is_file():
        print(f"error: {args.source} not found: give --source (the Grimm training text)", file=sys.stderr)
        return 2
    rows = prompt_rows(Path(args.source).read_text(encoding="utf-8").splitlines(), args.words, args.completions)
    kind = "prompt-completion" if args.completions else "prompt-only"
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = Path(args.out or f"runs/grimm-llama-data/{'pairs' if args.completions else 'prompts'}.jsonl")
    if out.exists() and out.read_text(encoding="utf-8") != text and not args.overwrite:
        print(f"error: {out} exists with other contents: pass --overwrite or another --out", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    print(f"{len(rows)} {kind} rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
