"""Boot Debian's kernel in qemu (TCG) with the cached base image plus a fresh archive of the collection.

Used by ``test_kernel_backend.py``; also runnable by hand for debugging:

    .venv/bin/python tests/vm/qemu_vm.py [SCENARIO ...]    boot once, print the console, then the results

The initrd handed to qemu is the cached ``base.cpio.gz`` followed by a small uncompressed cpio archive
(the kernel unpacks concatenated archives in order, later files win) holding ``/init``, the scenario
scripts and the collection under ``/opt/wgsp/collections/ansible_collections/wgsp/service_proxy``.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COLLECTION_DIR = "opt/wgsp/collections/ansible_collections/wgsp/service_proxy"
COLLECTION_CONTENT = ("plugins", "meta", "galaxy.yml", "ansible.cfg")
RESULT_PREFIX = "WGSP-RESULT "
BEGIN = "WGSP-RESULTS-BEGIN"
END = "WGSP-RESULTS-END"
QEMU = "qemu-system-x86_64"


class VMError(Exception):
    pass


def build_image(timeout=1200):
    """Run build.sh (a no-op when cached). Returns (image directory, seconds, whether it was built)."""
    script = os.path.join(HERE, "build.sh")
    cached = subprocess.run([script, "--print-dir"], check=True, capture_output=True, text=True).stdout.strip()
    was_cached = os.path.isfile(os.path.join(cached, "manifest.txt"))
    start = time.monotonic()
    proc = subprocess.run([script], check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise VMError("tests/vm/build.sh failed (rc=%d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr))
    image = proc.stdout.strip().splitlines()[-1]
    return image, time.monotonic() - start, not was_cached


class Cpio:
    """A minimal writer for the kernel's initramfs format (cpio "newc", no compression)."""

    def __init__(self):
        self.chunks = []
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b""):
        name_bytes = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_bytes), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.ino += 1
        self.chunks.append(header + name_bytes)
        self._pad()
        self.chunks.append(data)
        self._pad()

    def _pad(self):
        size = sum(len(chunk) for chunk in self.chunks)
        if size % 4:
            self.chunks.append(b"\0" * (4 - size % 4))

    def mkdir(self, path):
        path = path.strip("/")
        parent = os.path.dirname(path)
        if parent and parent not in self.dirs:
            self.mkdir(parent)
        if path not in self.dirs:
            self.dirs.add(path)
            self._entry(path, stat.S_IFDIR | 0o755)

    def add_file(self, path, data, mode=0o644):
        path = path.strip("/")
        if os.path.dirname(path):
            self.mkdir(os.path.dirname(path))
        self._entry(path, stat.S_IFREG | mode, data)

    def add_tree(self, src, dest):
        if os.path.isfile(src):
            with open(src, "rb") as handle:
                self.add_file(dest, handle.read(), 0o755 if os.access(src, os.X_OK) else 0o644)
            return
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            rel = os.path.relpath(dirpath, src)
            target = dest if rel == "." else os.path.join(dest, rel)
            self.mkdir(target)
            for filename in sorted(filenames):
                if not filename.endswith(".pyc"):
                    self.add_tree(os.path.join(dirpath, filename), os.path.join(target, filename))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return b"".join(self.chunks)


def overlay_archive(repo=REPO):
    """The per-run archive: /init, the scenarios and the collection as it is in the work tree now."""
    archive = Cpio()
    archive.add_tree(os.path.join(HERE, "init"), "init")
    archive.add_tree(os.path.join(HERE, "scenarios"), "opt/wgsp/scenarios")
    archive.add_tree(os.path.join(HERE, "..", "lib", "module_io.py"), "opt/wgsp/scenarios/module_io.py")
    for item in COLLECTION_CONTENT:
        path = os.path.join(repo, item)
        if os.path.exists(path):
            archive.add_tree(path, os.path.join(COLLECTION_DIR, item))
    return archive.finish()


def boot(image, scenarios=None, timeout=600, workdir=None):
    """Boot the VM once and run the scenarios. Returns (console text, seconds, timed_out)."""
    if shutil.which(QEMU) is None:
        raise VMError("%s is not installed (apt-get install qemu-system-x86)" % QEMU)
    workdir = workdir or tempfile.mkdtemp(prefix="wgsp-vm-")
    initrd = os.path.join(workdir, "initrd")
    with open(os.path.join(image, "base.cpio.gz"), "rb") as src, open(initrd, "wb") as dst:
        shutil.copyfileobj(src, dst)
        size = dst.tell()
        dst.write(b"\0" * (-size % 4))
        dst.write(overlay_archive())
    append = "console=ttyS0 quiet panic=-1"
    if scenarios:
        append += " wgsp.scenarios=%s" % ",".join(scenarios)
    argv = [QEMU, "-accel", "tcg", "-cpu", "max", "-m", "1024", "-nographic", "-no-reboot",
            "-nic", "none",  # no network device at all: nothing can leave the VM
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", initrd, "-append", append]
    console_path = os.path.join(workdir, "console.log")
    start = time.monotonic()
    timed_out = False
    with open(console_path, "wb") as console:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()  # this qemu only, by its PID
            proc.wait()
    seconds = time.monotonic() - start
    with open(console_path, "rb") as handle:
        text = handle.read().decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    os.unlink(initrd)
    return text, seconds, timed_out


def parse_results(console):
    """{scenario: result dict} from the WGSP-RESULT lines; also whether the END marker was seen."""
    results = {}
    finished = False
    for line in console.splitlines():
        if RESULT_PREFIX in line:
            try:
                result = json.loads(line.split(RESULT_PREFIX, 1)[1])
            except ValueError:
                continue
            results[result["name"]] = result
        elif line.strip() == END:
            finished = True
    return results, finished


def main(argv):
    image, seconds, built = build_image()
    print("image %s (%s in %.1fs)" % (image, "built" if built else "cached", seconds))
    console, seconds, timed_out = boot(image, argv[1:])
    print(console)
    results, finished = parse_results(console)
    print("boot + scenarios: %.1fs%s%s" % (seconds, ", TIMED OUT" if timed_out else "", "" if finished else ", no END marker"))
    for name, result in results.items():
        print("%-28s %s %.1fs" % (name, "ok  " if result["ok"] else "FAIL", result.get("seconds", 0)))
    return 0 if finished and results and all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
