"""What the benchmarks share when they write their results (imported by bench_*.py, never run)."""

import datetime
import json
import os
import platform
import statistics


def write_markdown(out_dir, filename, lines, notes=None):
    """Write ``lines`` (a Markdown table and its text) plus a "Notes:" list to ``out_dir/filename``."""
    if notes:
        lines = list(lines) + ["Notes:", ""] + ["- " + note for note in notes] + [""]
    with open(os.path.join(out_dir, filename), "w") as handle:
        handle.write("\n".join(lines))


def data_plane_results(out_dir, filename, samples, **run):
    """The medians of a data-plane benchmark's interleaved ``samples`` (``{path: [{figure: value}]}``),
    written as JSON to ``out_dir/filename`` with the run's parameters ``run``, the date and the
    machine; returns the results (``results["medians"][path][figure]``)."""
    medians = dict((name, dict((key, statistics.median(s[key] for s in runs)) for key in runs[0]))
                   for name, runs in samples.items())
    results = dict(run, date=datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), medians=medians,
                   machine="%d CPUs, kernel %s, Python %s" % (os.cpu_count(), platform.release(),
                                                              platform.python_version()))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, filename), "w") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    return results
