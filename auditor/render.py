"""Render stage (placeholder until the template lands)."""
from pathlib import Path
from auditor.runner import read_audit

def render_run(run_dir: Path) -> Path:
    audit = read_audit(run_dir)
    out = run_dir / "REPRODUCIBILITY.md"
    out.write_text(f"# {audit['run']['name']}\n")
    return out
