"""promtool on what the project ships: the alert rules, their unit tests, the scrape config.

The live exposition is checked by `promtool check metrics` in test_alerts.py, where a daemon runs.
"""

from __future__ import annotations

import re

from tests.integration.prom import RULES, RULES_TEST, promtool
from tests.integration.site import ROOT


def test_rules_pass_promtool_check() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_scrape_config_and_its_rule_files_are_valid() -> None:
    done = promtool("check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout  # prometheus.yml loads curtaild.rules.yml


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = set(re.findall(r"(?m)^\s+- alert: (\w+)$", RULES.read_text()))
    tests = RULES_TEST.read_text()
    quiet = set(re.findall(r"alertname: (\w+), exp_alerts: \[\]", tests))
    firing = set(re.findall(r"(?m)alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", tests))
    assert len(alerts) >= 12
    assert alerts - firing == set(), "alerts never seen firing in curtaild.rules.test.yml"
    assert alerts - quiet == set(), "alerts never seen quiet in curtaild.rules.test.yml"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"
