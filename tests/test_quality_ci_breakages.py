"""The quality tier's negative half: each family's deliberate breakage (``test_quality_ci.BREAKAGES``)
applied to its short run (``test_quality_ci.CHECKS``) must make the check fail."""

from __future__ import annotations

import pytest

from test_quality_ci import BREAKAGES, CHECKS

pytestmark = pytest.mark.quality


@pytest.mark.parametrize("family", list(BREAKAGES))
def test_the_check_fails_when_the_model_is_broken(family, tmp_path, monkeypatch):
    with BREAKAGES[family](monkeypatch):
        with pytest.raises(AssertionError):
            CHECKS[family](tmp_path)
