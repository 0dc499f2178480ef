"""Scenario runner inside the test VM (started by /init, output read from the serial console).

Prints one ``WGSP-RESULT {json}`` line per scenario between ``WGSP-RESULTS-BEGIN`` and ``WGSP-RESULTS-END``;
a failing scenario is reported and the next one still runs.
``wgsp.scenarios=a,b`` on the kernel command line runs only those scenarios.
"""

import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402  pylint: disable=wrong-import-position
import kernel_backend  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import


def selected():
    try:
        with open("/proc/cmdline", encoding="ascii") as handle:
            words = handle.read().split()
    except OSError:
        words = []
    for word in words:
        if word.startswith("wgsp.scenarios="):
            return set(word.split("=", 1)[1].split(","))
    return None


def main():
    only = selected()
    print("WGSP-RESULTS-BEGIN", flush=True)
    for func in harness.SCENARIOS:
        name = func.__name__
        if only is not None and name not in only:
            continue
        print("WGSP-SCENARIO %s" % name, flush=True)
        start = time.monotonic()
        result = {"name": name, "ok": True, "skipped": False, "detail": ""}
        try:
            note = func()
            if note:
                result["detail"] = str(note)
        except harness.Skip as exc:
            result.update(skipped=True, detail=str(exc))
        except Exception as exc:  # pylint: disable=broad-except
            result.update(ok=False, detail="%s: %s\n%s" % (type(exc).__name__, exc, traceback.format_exc()[-4000:]))
        result["seconds"] = round(time.monotonic() - start, 2)
        print("WGSP-RESULT " + json.dumps(result), flush=True)
    print("WGSP-RESULTS-END", flush=True)


if __name__ == "__main__":
    main()
