from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5), (12, 12)],
)
def test_durations_parse_to_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "", "m5", "-1s", True, None, [], -3, float("inf")])
def test_bad_durations_say_what_was_expected_and_found(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a (non-negative )?duration") as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)


@given(st.integers(min_value=0, max_value=10 * 86400))
def test_formatted_whole_seconds_parse_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
