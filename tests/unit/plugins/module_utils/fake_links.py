"""A LinkOps stand-in shared by the wg_interface unit tests: the link (rtnetlink) side of an
interface, recording every mutating call so tests can assert what was (not) done."""


class FakeLinkOps:
    def __init__(self, link):
        self.link = link
        self.calls = []
        self.reads = 0

    def read(self):
        self.reads += 1
        return None if self.link is None else dict(self.link, addresses=list(self.link["addresses"]))

    def add_wireguard(self):
        """The kernel backend creates a link of kind wireguard (wireguard-go creates its own tun)."""
        self.calls.append(("add_wireguard",))
        self.link = {"index": 5, "kind": "wireguard", "mtu": 1420, "up": False, "addresses": []}

    def delete(self):
        self.calls.append(("delete",))
        self.link = None

    def set_mtu(self, mtu):
        self.calls.append(("set_mtu", mtu))
        self.link["mtu"] = mtu

    def set_up(self):
        self.calls.append(("set_up",))
        self.link["up"] = True

    def add_address(self, cidr):
        self.calls.append(("add_address", cidr))
        self.link["addresses"].append(cidr)

    def del_address(self, cidr):
        self.calls.append(("del_address", cidr))
        self.link["addresses"].remove(cidr)
