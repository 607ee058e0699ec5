"""Configuration mistakes: one `error: [code] …` line naming the file or key and the fix,
never a traceback, never a value (it may be a password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config import AdapterConfig
from backbone.errors import ConfigurationError, Reason
from backbone.replica import Settings
from tests.support.cli_process import run_backbone


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vdx.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("command", "text", "reason", "says"),
    [
        (["router", "run"], None, "config_file_unreadable", "does not exist; pass the right path"),
        (["router", "run"], "amqp_url: [x\n", "config_not_yaml", "not valid YAML at line 2"),
        (["router", "run"], "- a\n- b\n", "config_not_yaml", "must be a mapping of keys"),
        (
            ["router", "run"],
            "directroy: d.yaml\n",
            "config_key_unknown",
            "did you mean `directory`",
        ),
        (
            ["router", "run"],
            "max_envelope_bytes: lots\n",
            "config_value_invalid",
            "`max_envelope_bytes`",
        ),
        (
            ["router", "run"],
            "inbox_age_check_seconds: 0\n",
            "config_value_invalid",
            "`inbox_age_check_seconds`",
        ),
        (
            ["router", "run"],
            "transition_window_days: -1\n",
            "config_value_invalid",
            "`transition_window_days`",
        ),
        (
            ["router", "deliver-held"],
            "directroy: d.yaml\n",
            "config_key_unknown",
            "did you mean `directory`",
        ),
        (["adapter", "run"], "amqp_url: amqp://x\n", "config_key_missing", "missing key `system`"),
        (
            ["adapter", "send", "{file}"],
            "sytem: a\n",
            "config_key_unknown",
            "did you mean `system`",
        ),
        (["track", "show", "X"], "amqp_url: {pw: hunter2}\n", "config_value_invalid", "`amqp_url`"),
    ],
)
def test_a_configuration_mistake_is_one_error_line_with_its_reason_and_the_fix(
    tmp_path: Path, command: list[str], text: str | None, reason: str, says: str
) -> None:
    path = config(tmp_path, text) if text is not None else tmp_path / "absent.yaml"
    edxml = tmp_path / "doc.edxml"
    edxml.write_text("<x/>")
    args = [part.format(file=edxml) for part in command]
    result = run_backbone(*args, "--config", str(path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: [{reason}] ")
    assert says in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "hunter2" not in result.stderr + result.stdout


def test_a_value_from_the_environment_is_blamed_on_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VDX_MAX_ENVELOPE_BYTES", "lots")
    with pytest.raises(ConfigurationError) as caught:
        Settings.load(config(tmp_path, "directory: d.yaml\n"))
    assert caught.value.reason is Reason.CONFIG_VALUE_INVALID
    assert "from the environment variable VDX_MAX_ENVELOPE_BYTES" in caught.value.message


def test_a_misspelt_key_is_named_before_the_key_it_leaves_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AdapterConfig.load(config(tmp_path, "amqp_url: amqp://x\nsytem: a\n"))
    assert caught.value.reason is Reason.CONFIG_KEY_UNKNOWN
    assert caught.value.message.startswith("unknown key `sytem`")
    assert "more problem" in caught.value.message
