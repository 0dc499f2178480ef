"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py from a host this workplace cannot reach, but uses a cached
copy at ~/.ansible/test/cache/get_pip_<version>.py if one exists. This script is installed
there by run.sh: it bootstraps pip from the interpreter's own ensurepip wheel, then lets pip
install what ansible-test asked for (from the configured package index).
"""

import ensurepip
import os
import subprocess
import sys


def main():
    saved = dict(os.environ)
    ensurepip.bootstrap(upgrade=True, default_pip=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null; the next pip run needs the machine's pip settings.
    os.environ.clear()
    os.environ.update(saved)
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)


if __name__ == "__main__":
    main()
