"""Prompt-only conversational rows for examples/grimm_llama.yaml: the opening words of each line of the Grimm
training text as a user turn, TRL's prompt-only format (`{"prompt": [{"role": "user", "content": ...}]}`).

    python examples/grimm_prompts.py [--words 8] [--source ../shared/data/grimm/train.txt] [--out PATH]

Lines with no more than `--words` words are left out (nothing would remain to continue). The file is written
atomically; an existing file with other contents is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def prompt_rows(lines: list[str], words: int) -> list[dict]:
    """One prompt-only row per line longer than `words` words: its first `words` words as the user turn."""
    rows = []
    for line in lines:
        parts = line.split()
        if len(parts) > words:
            rows.append({"prompt": [{"role": "user", "content": " ".join(parts[:words])}]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--source", default="../shared/data/grimm/train.txt")
    parser.add_argument("--out", default="runs/grimm-llama-data/prompts.jsonl")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if not Path(args.source).is_file():
        print(f"error: {args.source} not found: give --source (the Grimm training text)", file=sys.stderr)
        return 2
    rows = prompt_rows(Path(args.source).read_text(encoding="utf-8").splitlines(), args.words)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = Path(args.out)
    if out.exists() and out.read_text(encoding="utf-8") != text and not args.overwrite:
        print(f"error: {out} exists with other contents: pass --overwrite or another --out", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    print(f"{len(rows)} prompt-only rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
