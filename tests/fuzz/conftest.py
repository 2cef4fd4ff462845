"""Hypothesis profiles of the fuzz families.

`bounded` (the default, part of `make test`): a fixed seed and few enough cases per family that all
families together take about two minutes. `campaign` (`make fuzz`): REACHLS_FUZZ_EXAMPLES cases per
test, a seed of the caller's choosing (`--hypothesis-seed`), for the long runs whose reproducers
become files under regressions/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

_COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("bounded", max_examples=int(os.environ.get("REACHLS_FUZZ_BOUNDED_EXAMPLES", "60")),
                          derandomize=True, **_COMMON)
settings.register_profile("campaign", max_examples=int(os.environ.get("REACHLS_FUZZ_EXAMPLES", "2500")),
                          **_COMMON)
settings.load_profile(os.environ.get("REACHLS_FUZZ_PROFILE", "bounded"))
