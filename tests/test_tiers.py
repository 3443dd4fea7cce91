"""The two test tiers: `pytest` (fast) and `pytest -m slow`; the README's test command is what .ci/run runs."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("Run the tests", 1)[1]
    readme_command = re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert readme_command in ci_lines
    assert readme_command.endswith("&& pytest && pytest -m slow")


def test_the_default_run_leaves_the_slow_tier_out(pytestconfig):
    assert ["-m", "not slow"] == [a for a in pytestconfig.getini("addopts") if a in ("-m", "not slow")]
    assert any(marker.startswith("slow:") for marker in pytestconfig.getini("markers"))


def test_a_tier_that_selects_nothing_passes(tmp_path):
    """`pytest -m slow` on a file without slow tests exits 0, not 5 ('no tests collected')."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-m", "slow",
                          str(ROOT / "tests" / "test_tiers.py"), "-k", "readme"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "deselected" in out.stdout
