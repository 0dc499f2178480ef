# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Convert an original wg-service-proxy .env / .env.share / .env.proxy into inventory files.

    bin/wgsp-import-env .env.proxy --host proxy1 [--out-dir inventories/proxy1] [--mode proxy] [--stdout]

Writes <out-dir>/host_vars/<host>.yml (0644), the key material (if any) to
<out-dir>/secrets/<host>.keys.yml (0600, encrypt it with ansible-vault), and <out-dir>/hosts.yml
when there is none yet. Prints what it wrote and which options it did not map; never a key.
Standard library only (the converter is plugins/module_utils/_env_import.py).
"""

import argparse
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "..", "plugins", "module_utils", "_env_import.py")


def load_converter():
    spec = importlib.util.spec_from_file_location("wgsp_env_import", CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(path, text, mode):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("env_file")
    parser.add_argument("--host", required=True, help="inventory host name")
    parser.add_argument("--out-dir", help="inventory directory (default: inventories/<host>)")
    parser.add_argument("--mode", choices=["share", "proxy"], help="override CLIENT_MODE")
    parser.add_argument("--stdout", action="store_true", help="print host_vars only, write nothing")
    args = parser.parse_args(argv)
    conv = load_converter()
    out_dir = args.out_dir or os.path.join("inventories", args.host)
    secrets_rel = os.path.join("secrets", "%s.keys.yml" % args.host)
    try:
        with open(args.env_file, "r") as handle:
            text = handle.read()
        result = conv.convert(text, args.host, source=os.path.basename(args.env_file), mode=args.mode,
                              secrets_path=os.path.join(out_dir, secrets_rel))
    except (OSError, conv.EnvImportError) as exc:
        print("wgsp-import-env: %s" % exc, file=sys.stderr)
        return 2
    if args.stdout:
        sys.stdout.write(result["host_vars"])
        if result["secret_keys"]:
            print("# (key material not shown: %s)" % ", ".join(result["secret_keys"]), file=sys.stderr)
        return 0
    host_vars = os.path.join(out_dir, "host_vars", "%s.yml" % args.host)
    write(host_vars, result["host_vars"], 0o644)
    print("wrote %s (group %s, %d variables)" % (host_vars, result["group"], len(result["mapped"])))
    if result["secrets"]:
        secrets = os.path.join(out_dir, secrets_rel)
        write(secrets, result["secrets"], 0o600)
        print("wrote %s (0600: %s) - encrypt it: ansible-vault encrypt %s" % (
            secrets, ", ".join(result["secret_keys"]), secrets))
    inventory = os.path.join(out_dir, "hosts.yml")
    if not os.path.exists(inventory):
        write(inventory, result["inventory"], 0o644)
        print("wrote %s (add the hub to wg_server)" % inventory)
    else:
        print("kept %s: make sure %s is in the group %s" % (inventory, args.host, result["group"]))
    for key, why in result["unmapped"]:
        print("not mapped: %s - %s" % (key, why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
