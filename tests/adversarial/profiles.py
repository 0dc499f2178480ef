"""The adversarial layer's hypothesis profiles (issue 11), loaded by its test modules.

``WGSP_FUZZ_PROFILE`` picks the budget: ``ci`` (default, what ``make test`` runs: fixed seed, a few
examples per module) or ``fuzz`` (``make fuzz``: a long random run, failures kept in a database under
/tmp so a rerun replays them first). Nothing is ever written into the repository.
"""

import os
import tempfile

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase


_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
settings.register_profile("ci", max_examples=int(os.environ.get("WGSP_FUZZ_EXAMPLES", "12")), derandomize=True,
                          database=None, phases=[Phase.explicit, Phase.generate], **_COMMON)  # no shrinking: report as found
settings.register_profile("fuzz", max_examples=int(os.environ.get("WGSP_FUZZ_EXAMPLES", "400")),
                          database=DirectoryBasedExampleDatabase(os.path.join(tempfile.gettempdir(), "wgsp-hypothesis")),
                          **_COMMON)
settings.load_profile(os.environ.get("WGSP_FUZZ_PROFILE", "ci"))
