"""What the benchmarks share when they write their results (imported by bench_*.py, never run)."""

import os


def write_markdown(out_dir, filename, lines, notes=None):
    """Write ``lines`` (a Markdown table and its text) plus a "Notes:" list to ``out_dir/filename``."""
    if notes:
        lines = list(lines) + ["Notes:", ""] + ["- " + note for note in notes] + [""]
    with open(os.path.join(out_dir, filename), "w") as handle:
        handle.write("\n".join(lines))
