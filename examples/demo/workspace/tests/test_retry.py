import pytest

from shop.utils.retry import retry


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"failure {self.calls}")
        return "ok"


def test_succeeds_after_transient_failures_and_reports_them(capsys):
    sleeps: list[float] = []
    flaky = Flaky(failures=2)
    call = retry(attempts=3, delay=0.1, backoff=2.0, sleep=sleeps.append)(flaky)
    assert call() == "ok"
    assert flaky.calls == 3
    assert sleeps == [0.1, 0.2]
    err = capsys.readouterr().err
    assert err.count("retrying") == 2
    assert "attempt 1/3 failed" in err


def test_gives_up_after_the_last_attempt(capsys):
    flaky = Flaky(failures=5)
    call = retry(attempts=2, sleep=lambda _: None)(flaky)
    with pytest.raises(ConnectionError):
        call()
    assert flaky.calls == 2
    assert "giving up on Flaky after 2 attempts" in capsys.readouterr().err


def test_other_exceptions_are_not_retried():
    calls = []

    @retry(attempts=3, sleep=lambda _: None)
    def declined():
        calls.append(1)
        raise ValueError("declined")

    with pytest.raises(ValueError):
        declined()
    assert calls == [1]


def test_attempts_must_be_positive():
    with pytest.raises(ValueError):
        retry(attempts=0)
