"""The soak's growth detector on synthetic series: it must say "growing" for a leak and
"flat" for a plateau, a sawtooth, noise and a restart in the middle."""

from __future__ import annotations

import math
import random

import pytest

from tests.soak.growth import Tolerance, judge

MB = 1024 * 1024
RSS = Tolerance(absolute=2 * MB, relative=0.01)  # tests/soak/report.py's
N = 180  # 30 minutes at one sample every 10 s


def test_a_flat_series_with_noise_is_flat() -> None:
    noise = random.Random(1)
    values = [120 * MB + noise.uniform(-2, 2) * MB for _ in range(N)]
    assert not judge(values, RSS).growing


def test_a_sawtooth_repeating_its_peaks_is_flat() -> None:
    values = [100 * MB + (i % 15) * 2 * MB for i in range(N)]
    assert not judge(values, RSS).growing


def test_a_slow_leak_of_a_fifth_of_a_megabyte_per_sample_is_growing() -> None:
    values = [100 * MB + i * 0.2 * MB for i in range(N)]
    verdict = judge(values, RSS)
    assert verdict.growing, verdict
    assert verdict.last_max > verdict.middle_max


def test_a_leak_under_a_sawtooth_is_growing() -> None:
    values = [100 * MB + (i % 15) * 2 * MB + i * 0.3 * MB for i in range(N)]
    assert judge(values, RSS).growing


def test_a_rise_of_half_a_megabyte_a_minute_is_growing() -> None:
    # The sending drop-folder adapter of the committed run: 105 → 134 MiB in 30 minutes,
    # medians of the middle and last thirds 125.2 → 129.3 MiB.
    values = [110 * MB + i * MB / 12 for i in range(N)]
    assert judge(values, RSS).growing


def test_a_leak_of_file_descriptors_one_per_minute_is_growing() -> None:
    values = [40 + i // 6 for i in range(N)]
    assert judge(values, Tolerance(absolute=5)).growing


def test_a_process_restarted_in_the_middle_that_warms_up_again_is_flat() -> None:
    values = [
        130 * MB if i < 80 else 130 * MB * (1 - math.exp(-(i - 80) / 5)) + 1 for i in range(N)
    ]
    assert not judge(values, RSS).growing


def test_warm_up_growth_is_not_judged() -> None:
    values = [min(i, 30) * 4 * MB for i in range(N)]  # grows for the first sixth only
    assert not judge(values, RSS).growing


def test_one_spike_at_the_end_is_not_growth() -> None:
    values = [100 * MB] * (N - 1) + [300 * MB]
    assert not judge(values, RSS).growing


def test_samples_not_read_are_skipped() -> None:
    values = [float("nan") if i % 7 == 0 else 50.0 + i for i in range(N)]
    assert judge(values, Tolerance(absolute=5)).growing


def test_too_few_samples_to_judge_are_refused() -> None:
    with pytest.raises(ValueError, match="too few"):
        judge([1.0, 2.0, 3.0], Tolerance(absolute=1))


QUEUE = Tolerance(absolute=60)  # fifteen seconds of traffic at 4 envelopes per second


def test_a_backlog_rising_by_a_message_a_second_is_growing() -> None:
    values = [5 + (i % 3) + i * 10 for i in range(N)]
    assert judge(values, QUEUE).growing


def test_a_backlog_built_by_a_cut_in_the_middle_that_drains_is_flat() -> None:
    values = [max(0, 900 - 60 * (i - 99)) if 99 <= i < 115 else 5 + i % 4 for i in range(N)]
    assert not judge(values, QUEUE).growing
