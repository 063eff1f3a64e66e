"""The README's commands and CI agree: CI runs the test command the README gives, then the slow tier."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command_and_the_slow_tier():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b).split("&&")[-1].strip()
    assert test_command.startswith("python -m pytest") and '-m "not slow"' in test_command
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    assert test_command in ci
    assert test_command.replace('-m "not slow"', "-m slow") in ci
    assert "slow:" in (ROOT / "pyproject.toml").read_text()  # the marker is registered
