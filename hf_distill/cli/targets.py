"""`hf-distill push-targets`: publish a soft-target cache as a Hub dataset (see `hf_distill.shared_targets`).

The token is read from an environment variable (HF_TOKEN, or the one `--token-env` names) or the stored login,
never from a flag: flags end up in shell history and process listings.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["register", "run_push_targets"]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `push-targets` subcommand to the top-level `hf-distill` parser."""
    parser = subparsers.add_parser(
        "push-targets",
        help="publish cached soft targets as a Hub dataset (Parquet shards, manifest, card) in one commit",
        description="Verify CACHE_DIR (a folder generate_soft_targets wrote, or a run's soft_targets/ folder) against "
        "its manifest and upload it to a Hub dataset repo: Parquet shards, soft_targets.json (hashes of the teacher, "
        "tokenizer, data and every shard), the teacher's tokenizer and a dataset card, in one commit.",
    )
    parser.add_argument("cache_dir", type=Path, metavar="CACHE_DIR", help="the soft-target cache folder")
    parser.add_argument(
        "--repo-id",
        required=True,
        help="dataset repo to create or update, e.g. alice/gpt2-grimm-top64 (a bare name goes under the token's user)",
    )
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--token-env",
        default=None,
        help="name of the environment variable holding the token (default: HF_TOKEN or `hf auth login`)",
    )
    parser.add_argument(
        "--tokenizer", help="the teacher's tokenizer (folder or Hub id; default: the cache's teacher folder)"
    )
    parser.add_argument("--teacher-id", help="the teacher's Hub id, recorded in the card and manifest")
    parser.add_argument("--teacher-revision", help="the teacher's revision (commit or tag), recorded")
    parser.add_argument("--data-source", help="the data's Hub id or a short description, recorded")
    parser.add_argument("--license", help="the dataset card's license")
    parser.add_argument(
        "--model", action="append", default=[], help="a model distilled from these targets (repeatable)"
    )
    parser.add_argument("--revision", help="branch to commit to")
    parser.add_argument("--commit-message", help="commit title")
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument("--timeout", type=float, help="seconds each Hub request may wait (default 60)")
    parser.set_defaults(func=run_push_targets)
    return parser


def run_push_targets(args: argparse.Namespace) -> int:
    """Run `hf-distill push-targets`; errors propagate to `hf_distill.cli.main`, which prints one line."""
    from ..targets.shared import push_soft_targets

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise ValueError(
                f"--token-env {args.token_env}: that environment variable is not set; export it or "
                "leave --token-env out to use HF_TOKEN / `hf auth login`"
            )
    url = push_soft_targets(
        args.cache_dir,
        args.repo_id,
        tokenizer=args.tokenizer,
        teacher_id=args.teacher_id,
        teacher_revision=args.teacher_revision,
        data_source=args.data_source,
        license=args.license,
        models=args.model,
        token=token,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        endpoint=args.endpoint,
        timeout=args.timeout,
    )
    print(f"Soft targets commit: {url}")
    return 0
