"""The README's newcomer commands stay true: CI runs exactly the README's test command."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(c for c in readme_commands() if "pytest" in c and "\n" not in c)
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_main_command_runs_the_sst2_example():
    main = readme_commands()[0]
    assert "hf-distill run examples/sst2_minilm.yaml" in main
    assert (REPO / "examples" / "sst2_minilm.yaml").is_file()
