"""Hostile and borderline values for the adversarial layer, as hypothesis strategies.

Values that end up in a path are built so that, accepted or not, they stay inside the test host's
private directories (its own tmpfs mounts): no ``..`` segment, no ``~`` or ``$`` at the start.
"""

from hypothesis import strategies as st

PRIVATE_DIRS = ("/etc/wireguard", "/etc/wg-service-proxy", "/run/wireguard")

# every class the audit used, literally
HOSTILE_TEXT = [
    "", " ", "\n", "\t", "\r", "\x00", "\x1b[31m", "\x7f", "a\nb", "wg0\n", " wg0", "wg0 ", "w g0",
    ";", "|", "&", "$", "(", ")", "`", "'", '"', "\\", "#", "%", "%i", "*", "+", "eth+", "?", "!", "{}", "[]",
    "a;touch /tmp/wgsp-INJECTED", "$(touch /tmp/wgsp-INJECTED)", "`id`", "x||echo INJECTED#", "x&&id", "a|b",
    "'; drop", '"quoted"', "-", "-f", "--version", "-j ACCEPT", "--comment X", "-m comment --comment X",
    ".", "..", "./x", "x/y", "/", "//", "x:y", "x,y", "x=y", "x@y",
    "a" * 15, "a" * 16, "a" * 64, "a" * 256, "a" * 4097,
    "ü", "wg\u00e9", "\u202ewg0", "\ufeffwg0", "\u0430\u0435", "\u200b", "\U0001f600", "\ud7ff",
    "fd00::9%x", "fd00::5%1", "fe80::1%eth0", "fd00::9%x||echo INJECTED#", "fd00::5%1 -m comment --comment X",
    "0.0.0.0", "0.0.0.0/0", "::", "::/0", "::ffff:1.2.3.4", "::ffff:192.0.2.7/128", "127.0.0.1", "127.0.0.0/8",
    "::1", "::1/128", "255.255.255.255", "192.0.2.255", "224.0.0.1", "ff02::1", "169.254.0.1",
    "10.7.0.1/24", "10.7.0.0/33", "10.7.0.0/-1", "10.7.0.0/24\n", "1.2.3", "1.2.3.4.5", "01.02.03.04", "0x7f.1",
    "256.1.1.1", "fd00::/129", "fd00:::1", "[fd00::1]", "[fd00::1]:80", "192.0.2.9:0", "192.0.2.9:70000",
    "host:80", "web:tcp:80", "tcp:80:10.7.0.2:80", "80:0.0.0.0:80",
    "-1", "0", "65535", "65536", "70000", "4294967295", "4294967296", "1e3", "0x10", "1.5", "nan", "inf",
    "local", "main", "default", "unspec", "255", "yes", "no", "null", "None", "{{ 1 }}", "{% raw %}",
]
HOSTILE_NUMBERS = [-(2 ** 63), -(2 ** 31), -65536, -1, 0, 1, 67, 68, 255, 256, 1023, 65535, 65536, 70000,
                   2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 63, 2 ** 64]
WRONG_TYPES = [None, True, False, 1.5, -0.0, [], {}, ["x"], {"a": 1}, [None], [[]], [{}]]

texts = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=24),  # any unicode, control characters included
    st.text(alphabet=";|&$()`'\"\\ \t\n+*-.%:/[]{}#!<>", max_size=12),
    st.builds(lambda n: "a" * n, st.integers(0, 5000)),
)
numbers = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.integers(), st.integers(-3, 70000))
wrong = st.sampled_from(WRONG_TYPES)


def around(valid):
    """``valid`` with something hostile glued to it: the borderline values a typo or an attacker makes."""
    return st.one_of(
        st.builds(lambda t: valid + t, texts),
        st.builds(lambda t: t + valid, texts),
        st.builds(lambda t: valid + "\n" + t, texts),
        st.builds(lambda t: "%s %s" % (valid, t), texts),
    )


def text_for(valid):
    return st.one_of(texts, around(valid), numbers, wrong)


def number_for(valid):
    return st.one_of(numbers, st.sampled_from([str(valid), " %s" % valid, "%s\n" % valid, "0x%x" % valid]), texts,
                     wrong)


def list_for(valid_items, item):
    """A list option: empty, the wrong type, one hostile element, a hostile element after a valid one, huge."""
    return st.one_of(
        st.just([]), wrong, texts, numbers,
        st.lists(item, min_size=1, max_size=3),
        st.builds(lambda x: list(valid_items) + [x], item),
        st.just(list(valid_items) * 200),
    )


def _safe_component(text):
    return ".." not in text.split("/") and "\x00" not in text


def path_for(directory):
    """Paths that stay inside ``directory`` (a private directory of the host), or a fixed relative one."""
    comp = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=16),
                     st.builds(lambda n: "k" * n, st.integers(200, 600))).filter(_safe_component)
    return st.one_of(
        st.builds(lambda c: "%s/%s" % (directory, c), comp),
        st.builds(lambda c: "%s/%s/%s" % (directory, c, c), comp),
        st.sampled_from(["", " ", "x.key", "./x", "-f", ".", "wg0.key\n", "%s/" % directory, directory,
                         "%s/x\n" % directory, "%s/x\x00y" % directory]),
        wrong,
    )
