from __future__ import annotations

import failover


def test_all_is_sorted_and_importable() -> None:
    assert list(failover.__all__) == sorted(failover.__all__)
    for name in failover.__all__:
        assert getattr(failover, name) is not None


def test_every_error_says_why_it_exists() -> None:
    for name in failover.__all__:
        obj = getattr(failover, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, failover.FailoverError)
            assert obj.__doc__ and len(obj.__doc__.strip()) > 20


def test_importing_configures_no_logging() -> None:
    import logging

    assert logging.getLogger().handlers == [] or all(
        type(h).__module__.startswith("_pytest") for h in logging.getLogger().handlers
    )
