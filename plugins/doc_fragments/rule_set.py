# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What wg_dnat and wg_filter share about applying a rule set (one home for both modules' notes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reports the plan (RV(plan)) and changes nothing.
options:
  backend:
    description:
      - V(auto) uses iptables when Docker's chains (C(DOCKER), C(DOCKER-USER)) exist or C(nft) is
        missing, else nftables. Leftovers of the same set under the other backend are removed.
    type: str
    choices: [auto, iptables, nftables]
    default: auto
notes:
  - A jump into the set's chains that does not carry the set's comment (an administrator's own C(-j)/C(-g) rule) is
    left alone; when it would block a change (deleting a chain it targets, e.g. with O(state=absent)) the module
    fails before changing anything and names it.
  - With iptables (iptables-nft commits each table on its own), a failed apply is rolled back to the rules and jumps
    the set had just before, and the error says what blocked it.
  - Two runs for the same set on one host take turns (a lock file under C(/run/wgsp)); the second finds the first's
    result.
"""
