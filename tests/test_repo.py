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


def test_readme_install_commands_take_the_cpu_torch_on_disk():
    installs = [c for c in readme_commands() if "python3 -m venv" in c]
    assert len(installs) == 2 and all("pip install" in c and " -c constraints-cpu.txt " in c for c in installs)
    assert "torch==" in (REPO / "constraints-cpu.txt").read_text()  # what pyproject.toml no longer pins
