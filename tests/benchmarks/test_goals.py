"""The goals table reads its verdicts off the record: a figure past its target is "no"."""

import copy
import json
from pathlib import Path

from bench.docs import RECORDED
from bench.goals import goals


def _row(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def _record() -> dict:
    return json.loads(Path(RECORDED).read_text())


def _set(leaf: dict, key: str, value: float) -> None:
    for run in leaf["runs"]:
        run[key] = value


def test_a_goal_is_reached_only_when_the_median_meets_its_target() -> None:
    record = copy.deepcopy(_record())
    http = record["workloads"]["http"]
    _set(http["ceiling"]["workers_1"], "rps", 10_000.0)
    _set(http["switchroom"]["workers_1"], "rps", 2_500.0)
    _set(http["switchroom-up"]["workers_1"], "rps", 3_999.0)
    _set(http["switchroom"]["rate_50"], "p99_ms", 20.5)
    text = goals(record)
    assert _row(text, "HTTP hello, closed loop, against the ceiling")[2:] == ["**0.25×**", "≥ 0.25×", "yes"]
    assert _row(text, "`switchroom up` in one process, HTTP hello, against the ceiling")[-1] == "no"
    assert _row(text, "HTTP hello at half the maximum rate: p99")[2:] == ["**20.5 ms**", "≤ 20.0 ms", "no"]


def test_a_goal_whose_figures_are_not_in_the_record_says_so() -> None:
    record = copy.deepcopy(_record())
    del record["workloads"]["email"]
    row = _row(goals(record), "Email: server CPU per small message against aiosmtpd's no-op Sink")
    assert row[1] == "the record has no email figures for switchroom"
    assert row[-1] == "–"


def test_the_email_goal_is_judged_for_each_load_generator_in_the_record() -> None:
    record = copy.deepcopy(_record())
    email = record["workloads"]["email"]["switchroom"]
    email.pop("small_smtp_source", None)
    email.pop("sink_smtp_source", None)
    label = "Email: the same with Postfix's smtp-source as the load (above: the suite's SMTP clients)"
    assert _row(goals(record), label)[1:] == ["not in the record (smtp-source did not run)", "–", "–", "–"]
    email["small_smtp_source"] = {"runs": [{"cpu": 1.4}, {"cpu": 1.2}, {"cpu": 3.0}]}
    email["sink_smtp_source"] = {"runs": [{"cpu": 1.0}, {"cpu": 1.0}, {"cpu": 1.0}]}
    assert _row(goals(record), label)[2:] == ["**1.40×**", "≤ 1.50×", "yes"]
