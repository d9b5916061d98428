import os
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import hamqcore

_quiet = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=_quiet)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=_quiet)
settings.register_profile("asan", max_examples=15, deadline=None, derandomize=True, suppress_health_check=_quiet)
# a bug hunt beyond CI's fixed draws: fresh random draws each run, many more of them (README "Development")
settings.register_profile("deep", max_examples=400, deadline=None, suppress_health_check=_quiet)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ISAS = hamqcore.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run a test on every kernel tier this CPU supports; restore the best tier afterwards."""
    from hamqcore import _core

    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(ISAS[0])


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
