"""README's GitHub Actions recipe, run as far as it can be here.

The workflow block is parsed as YAML and checked for its shape (pull requests, full
history, the artifact and the comment); its ``evalledger`` steps then run in a clone of
a repository with an ``origin/main``, on a branch that changes a model: the comment is
``diff --md`` with the change and its paired test, the report has its Diff view, and
the gate fails on the regression.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from conftest import git, invoke, make_project

README = Path(__file__).resolve().parents[1] / "README.md"
TITLE = ".github/workflows/evalledger.yml"


def _workflow() -> dict[str, object]:
    text = README.read_text()
    (block,) = re.findall(rf'^```yaml title="{re.escape(TITLE)}"\n(.*?)^```$', text, re.M | re.S)
    data = yaml.safe_load(block)
    assert isinstance(data, dict)
    return data


def test_the_workflow_has_the_shape_of_a_pr_job() -> None:
    flow = _workflow()
    assert flow[True] == "pull_request"  # YAML 1.1 reads the key `on` as True
    (job,) = flow["jobs"].values()  # type: ignore[attr-defined]
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "report.html"
    assert any("gh pr comment" in s.get("run", "") and "comment.md" in s["run"] for s in steps)


def test_the_evalledger_steps_run_in_a_clone_with_origin_main(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    project = make_project(tmp_path / "work")
    assert invoke(project, "run", "--commit").exit_code == 0
    git(project.root, "branch", "-M", "main")
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(project.root, "remote", "add", "origin", str(origin))
    git(project.root, "push", "-q", "origin", "main")
    git(project.root, "checkout", "-q", "-b", "worse-noisy")
    assert invoke(project, "run", "-S", "models.noisy.error_rate=0.7", "--commit").exit_code == 0
    git(project.root, "fetch", "-q", "origin")
    steps = [s["run"] for s in _workflow()["jobs"]["ledger"]["steps"]  # type: ignore[index]
             if s.get("run", "").startswith("evalledger ")]  # fmt: skip
    assert len(steps) == 3
    results = [subprocess.run(["bash", "-c", cmd], cwd=project.root, capture_output=True,
                              text=True) for cmd in steps]  # fmt: skip
    diff, report, gate = results
    assert diff.returncode == 0 and report.returncode == 0, (diff.stderr, report.stderr)
    comment = (project.root / "comment.md").read_text()
    assert comment.startswith("### evalledger diff: `origin/main")
    assert "🔴" in comment and "noisy/arith" in comment and "mcnemar" in comment
    html = (project.root / "report.html").read_text()
    assert 'data-view="diff"' in html
    assert gate.returncode == 5, gate.stdout + gate.stderr  # the regression fails the job


def test_a_long_table_of_other_changes_is_folded() -> None:
    from evalledger.analysis.changes import COLLAPSE_ROWS, LedgerDiff, MetricChange

    def diff(n: int) -> str:
        changes = [MetricChange(f"m{i}/b", "accuracy", 0.5, 0.6) for i in range(n)]
        return LedgerDiff("A", "B", None, None, changes, [], [], [], 0, 0.05, 0.95,
                          "auto").to_markdown()  # fmt: skip

    short, long = diff(COLLAPSE_ROWS), diff(COLLAPSE_ROWS + 1)
    assert "<details>" not in short and "#### Other changes" in short
    assert f"<details><summary>Other changes: {COLLAPSE_ROWS + 1} rows</summary>" in long
    assert long.index("<details>") < long.index("#### Other changes") < long.index("</details>")
