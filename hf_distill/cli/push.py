"""`hf-distill push`: publish a distillation output folder (and optionally the demo Space) to the Hub.

The token is read from HF_TOKEN or the stored login (`hf auth login`), never from a flag: flags end up in
shell history and process listings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from hf_distill.hub.http import HubPublishError
from hf_distill.hub.selection import select_model_files
from hf_distill.publishing.publish import publish

from .messages import print_error

__all__ = ["register", "run_push", "main"]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `push` subcommand to the top-level `hf-distill` parser; its `func(args)` returns an exit code."""
    parser = subparsers.add_parser(
        "push",
        help="publish the student, its card, report and chart (and optionally the demo Space) to the Hub",
        description=(
            "Upload OUTPUT_DIR's student weights (safetensors), config, tokenizer, README.md card, "
            "distillation_report.json and chart in one commit. Checkpoints, optimizer states, soft targets, "
            "pickles and credentials are never uploaded. The token comes from HF_TOKEN or `hf auth login`."
        ),
    )
    parser.add_argument(
        "output_dir",
        type=Path,
        metavar="OUTPUT_DIR",
        help="the student folder: safetensors weights, config, tokenizer, README.md card, report, chart",
    )
    parser.add_argument(
        "--repo-id",
        required=True,
        help="model repo to create or update, e.g. alice/tiny-student (a bare name goes under the token's user)",
    )
    parser.add_argument(
        "--private", action="store_true", help="create the repo(s) as private (an existing public repo is refused)"
    )
    parser.add_argument("--revision", help="branch to commit to (created from main if missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    parser.add_argument("--commit-message", help="commit title")
    parser.add_argument("--space-id", help="also push the Gradio demo to this Space, e.g. alice/tiny-student-demo")
    parser.add_argument("--teacher-repo-id", help="the teacher's Hub id, shown next to the student (with --space-id)")
    parser.add_argument(
        "--app-dir", type=Path, help="app folder for the Space (default: the app installed with hf-distill)"
    )
    parser.add_argument(
        "--delete-stale",
        action="store_true",
        help="delete remote model files (old shards, old charts) this push does not re-upload; with --space-id, "
        "also remove Space files the app no longer has (.gitattributes is always kept)",
    )
    parser.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds each Hub request may wait before failing (default: HF_DISTILL_HUB_TIMEOUT or 60)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded and exit")
    parser.set_defaults(func=run_push)
    return parser


def run_push(args: argparse.Namespace) -> int:
    """Run `hf-distill push` from parsed arguments; 0 on success, 1 on a publishing error, 2 on bad usage."""
    if args.space_id and not args.teacher_repo_id:
        print_error("push", "--space-id needs --teacher-repo-id")
        return 2
    try:
        if args.dry_run:
            for name in select_model_files(args.output_dir):
                print(name)
            return 0
        result = publish(
            args.output_dir,
            args.repo_id,
            space_id=args.space_id,
            teacher_repo_id=args.teacher_repo_id,
            app_dir=args.app_dir,
            private=args.private,
            revision=args.revision,
            create_pr=args.create_pr,
            commit_message=args.commit_message,
            endpoint=args.endpoint,
            delete_stale=args.delete_stale,
            timeout=args.timeout,
        )
    except HubPublishError as err:
        print_error("push", str(err))
        return 1
    print(f"Model commit: {result.model_commit.commit_url}")
    if result.model_commit.pr_url:
        print(f"Pull request: {result.model_commit.pr_url}")
    if result.space_commit is not None:
        print(f"Space commit: {result.space_commit.commit_url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point (`python -m hf_distill.cli_hub push ...`), same behaviour as `hf-distill push`."""
    parser = argparse.ArgumentParser(prog="hf-distill")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
