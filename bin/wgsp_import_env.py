# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Convert an original wg-service-proxy .env / .env.share / .env.proxy into inventory files.

    bin/wgsp-import-env .env.proxy --host proxy1 [--out-dir inventories/proxy1] [--secrets-dir secrets]
                        [--mode proxy] [--force] [--stdout]

Writes <out-dir>/host_vars/<host>.yml (0644), the key material (if any) to
<secrets-dir>/<host>.keys.yml (0600, encrypt it with ansible-vault; outside the inventory, so Ansible
never reads it as one), and <out-dir>/hosts.yml when there is none yet. Directories it creates are
0700. An existing host_vars or secrets file is kept (exit 2, nothing written) unless --force.
Prints what it wrote and which options it did not map; never a key.
Standard library only: the converter is the collection's package plugins/plugin_utils/env_import, which
reads the compact forms with the collection's own parser (module_utils/_common); no Ansible needed.
"""

import argparse
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def collections_root():
    """The directory holding ``ansible_collections/wgsp/service_proxy`` for this copy of the collection:
    a checkout's ``collections/`` (a link to the checkout), or the path it was installed under."""
    top = os.path.realpath(os.path.join(HERE, ".."))
    checkout = os.path.join(top, "collections")
    if os.path.isdir(os.path.join(checkout, "ansible_collections", "wgsp", "service_proxy")):
        return checkout
    parts = top.split(os.sep)
    if parts[-3:] == ["ansible_collections", "wgsp", "service_proxy"]:
        return os.sep.join(parts[:-3])
    raise SystemExit("wgsp-import-env: cannot find the collection around %s" % top)


def load(name):
    """A module of this copy of the collection (never another installed copy)."""
    root = collections_root()
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("ansible_collections.wgsp.service_proxy.plugins." + name)


def inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def write(path, text, mode):
    """The collection's one atomic write (a temporary file and one rename); missing directories 0700."""
    load("module_utils._common.files").atomic_write(path, text, mode, dir_mode=0o700)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("env_file")
    parser.add_argument("--host", required=True, help="inventory host name")
    parser.add_argument("--out-dir", help="inventory directory (default: inventories/<host>)")
    parser.add_argument("--secrets-dir", default="secrets",
                        help="where the key material goes (default: secrets/); never inside --out-dir")
    parser.add_argument("--mode", choices=["share", "proxy"], help="override CLIENT_MODE")
    parser.add_argument("--force", action="store_true", help="replace an existing host_vars or secrets file")
    parser.add_argument("--stdout", action="store_true", help="print host_vars only, write nothing")
    args = parser.parse_args(argv)
    conv = load("plugin_utils.env_import")
    out_dir = args.out_dir or os.path.join("inventories", args.host)
    secrets = os.path.join(args.secrets_dir, "%s.keys.yml" % args.host)
    host_vars = os.path.join(out_dir, "host_vars", "%s.yml" % args.host)
    try:
        with open(args.env_file, "r") as handle:
            text = handle.read()
        result = conv.convert(text, args.host, source=os.path.basename(args.env_file), mode=args.mode,
                              secrets_path=secrets)
        if args.stdout:
            sys.stdout.write(result["host_vars"])
            if result["secret_keys"]:
                print("# (key material not shown: %s)" % ", ".join(result["secret_keys"]), file=sys.stderr)
            return 0
        if result["secrets"] and inside(secrets, out_dir):
            raise conv.EnvImportError("--secrets-dir %s is inside the inventory %s: Ansible would read the key file "
                                      "as inventory (and fail once it is vault-encrypted); choose another directory"
                                      % (args.secrets_dir, out_dir))
        for path in (host_vars, secrets if result["secrets"] else None):
            if path and os.path.lexists(path) and not args.force:
                raise conv.EnvImportError("%s exists (an earlier import, maybe edited or vault-encrypted since): "
                                          "nothing written; --force replaces it" % path)
    except (OSError, conv.EnvImportError) as exc:
        print("wgsp-import-env: %s" % exc, file=sys.stderr)
        return 2
    write(host_vars, result["host_vars"], 0o644)
    print("wrote %s (group %s, %d variables)" % (host_vars, result["group"], len(result["mapped"])))
    if result["secrets"]:
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
