# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's ``AnsibleModule``: an argument error always names its option.

ansible-core reports only the first error of the argument spec. For a list-of-dicts option given a
string element (``routes: ["x"]``, ``rules: "x"``) that first error is a bare "unable to evaluate
string as dictionary" (2.16 to 2.21), and the one naming the option comes second: the adversarial
layer found it. Every module of the collection is built from this class, which reports them all
(less a bare message another one repeats with the option's name).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule


class WgspModule(AnsibleModule):
    def fail_json(self, msg=None, **kwargs):
        result = getattr(self, "validation_result", None)
        if result is not None and msg is not None and result.error_messages and msg == result.errors.msg:
            texts = list(result.error_messages)
            # a bare message that another one repeats with the option's name adds nothing
            named = [t for i, t in enumerate(texts) if t not in texts[:i]
                     and not any(t != other and t in other for other in texts)]
            msg = "; ".join(named)
        super(WgspModule, self).fail_json(msg=msg, **kwargs)
