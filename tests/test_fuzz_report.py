"""The fuzz runner reads libFuzzer's figures and findings from its output."""

from __future__ import annotations

from tests.fuzz.report import TargetResult, parse_output, render

CLEAN = """\
#347\tINITED cov: 363 ft: 778 corp: 87/703Kb exec/s: 0 rss: 102Mb
#4096\tpulse  cov: 400 ft: 801 corp: 90/710Kb lim: 4096 exec/s: 2048 rss: 103Mb
#226979\tDONE   cov: 4405 ft: 4825 corp: 4133/2620Kb lim: 254935 exec/s: 7321 rss: 102Mb
Done 226979 runs in 31 second(s)
stat::number_of_executed_units: 226979
stat::average_exec_per_sec:     7321
stat::new_units_added:          3900
stat::slowest_unit_time_sec:    0
stat::peak_rss_mb:              104
"""

# As atheris 3.0 prints it.
CRASH = """\
#10\tNEW    cov: 83 ft: 135 corp: 29/71Kb lim: 5894 exec/s: 0 rss: 104Mb L: 9/9 MS: 1 EraseBytes-

 === Uncaught Python exception: ===
KeyError: 'recipients'
Traceback (most recent call last):
  File "/work/tests/fuzz/targets.py", line 80, in fuzz_envelope
    read_frame(data)
KeyError: 'recipients'

==4242== ERROR: libFuzzer: fuzz target exited
MS: 1 ChangeBit-; base unit: 0123
artifact_prefix='out/'; Test unit written to out/crash-abc
"""


def test_the_last_status_line_and_the_final_stats_give_the_figures() -> None:
    result = parse_output(TargetResult("edxml", 30), CLEAN)
    assert (result.executions, result.exec_per_second, result.peak_rss_mb) == (226979, 7321, 104)
    assert (result.coverage, result.features, result.corpus) == (4405, 4825, 4133)
    assert result.findings == []
    assert "| edxml | 30 | 226,979 | 7,321 | 4,405 | 4,825 | 4,133 | 104 | 0 |" in render(
        [result], when="then", machine="here"
    )


def test_an_uncaught_exception_is_a_finding_with_its_input() -> None:
    result = parse_output(TargetResult("envelope", 30, returncode=1), CRASH)
    [finding] = result.findings
    assert finding.kind == "crash"
    assert finding.summary == "KeyError: 'recipients'"
    assert finding.artifact == "out/crash-abc"
    assert result.coverage == 83


def test_a_worker_that_died_without_saying_why_is_a_finding() -> None:
    result = parse_output(TargetResult("edxml", 30, returncode=-11), CLEAN)
    assert [f.summary for f in result.findings] == ["the fuzzer exited with -11"]
