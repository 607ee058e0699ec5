"""The benchmark's reform-step arithmetic (bench/reform.py): rates over a window of inbox
polls, the backlog left at take-up, and the rates' summary."""

from __future__ import annotations

from bench.reform import Sample, depth_at, rates_summary, window_rate

POLLS = [Sample(10.0, 0), Sample(10.5, 50), Sample(11.0, 100), Sample(12.0, 300), Sample(13.0, 400)]


def test_window_rate_counts_arrivals_between_the_polls_around_the_window() -> None:
    # from the last poll at or before 10.7 (10.5, 50) to the first at or after 11.5 (12.0, 300)
    assert window_rate(POLLS, 10.7, 11.5) == (300 - 50) / (12.0 - 10.5)
    assert window_rate(POLLS, 10.0, 13.0) == 400 / 3.0


def test_window_rate_is_unknown_without_a_poll_on_each_side() -> None:
    assert window_rate(POLLS, 9.0, 11.0) is None  # nothing polled before the start
    assert window_rate(POLLS, 11.0, 14.0) is None  # nothing polled after the end
    assert window_rate([Sample(10.0, 5)], 10.0, 10.0) is None  # one poll is no interval


def test_depth_at_is_the_first_poll_at_or_after_the_instant_else_the_last() -> None:
    assert depth_at(POLLS, 11.2) == 300
    assert depth_at(POLLS, 11.0) == 100
    assert depth_at(POLLS, 99.0) == 400


def test_rates_summary_rounds_both_rates_and_gives_during_over_normal() -> None:
    assert rates_summary(400.04, 300.06) == {
        "normal_per_s": 400.0,
        "during_apply_per_s": 300.1,
        "during_over_normal": 0.75,
    }


def test_rates_summary_has_no_ratio_without_both_rates() -> None:
    assert rates_summary(None, 300.0)["during_over_normal"] is None
    assert rates_summary(400.0, None) == {
        "normal_per_s": 400.0,
        "during_apply_per_s": None,
        "during_over_normal": None,
    }
