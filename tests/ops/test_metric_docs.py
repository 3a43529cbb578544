"""docs/operations.md lists exactly the metrics a process exports, with the label values it
exports, and every name follows Prometheus's conventions."""

import functools
import re
import subprocess
import sys

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from switchroom.layers import get_layer
from switchroom.shared.metrics import INBOX_LABEL, queue_label

from ..processes import ROOT

ROW = re.compile(r"^\| `(switchroom_[a-z0-9_]+)` \| (\w+) \|([^|]*(?:\\\|[^|]*)*)\|", re.M)
# Labels whose values are open-ended (any status code, channel or version).
OPEN_LABELS = {"code", "channel", "version", "operation", "error"}
SUFFIX = {"counter": "_total", "info": "_info"}


def documented() -> dict[str, tuple[str, str]]:
    """Metric name -> (type, labels cell) of every row in the Metrics tables."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text.split("\n## Metrics\n")[1].split("\n### What to alert on\n")[0]
    return {name: (kind, labels) for name, kind, labels in ROW.findall(section)}


# Run in a process of its own: the suite's other tests add label values to this process's
# registry as they serve traffic, and what is compared here is a process from its start.
EXPORT = """
from prometheus_client import REGISTRY, generate_latest
from switchroom.layers import get_layer
from switchroom.shared.health import Health
from switchroom.shared.metrics import LAYER_COUNTS

layer = get_layer("memory://")
health = Health(layer)
health.ready = True
health.layer_metrics.measured(True, {})
for key in LAYER_COUNTS:  # the counts a layer adds once they happen
    layer.stats.counts.setdefault(key, 0)
REGISTRY.register(health)
print(generate_latest(REGISTRY).decode(), end="")
"""


@functools.cache
def scraped() -> str:
    """What a new process with a layer exports, in the text format a scraper reads."""
    command = [sys.executable, "-c", EXPORT]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def exported() -> dict[str, Metric]:
    """Exposed name -> family of every switchroom metric a new process with a layer exports."""
    families = [f for f in text_string_to_metric_families(scraped()) if f.name.split("_")[0] == "switchroom"]
    return {f.name + SUFFIX.get(f.type, ""): f for f in families}


def test_the_docs_list_every_exported_metric_and_no_other():
    docs, metrics = documented(), exported()
    assert sorted(set(metrics) - set(docs)) == [], "exported but not documented"
    assert sorted(set(docs) - set(metrics)) == [], "documented but not exported"
    for name, family in metrics.items():
        assert docs[name][0] == {"info": "gauge"}.get(family.type, family.type), name


def test_the_docs_name_every_label_value_exported_from_the_start():
    docs, metrics = documented(), exported()
    for name, family in metrics.items():
        cell = docs[name][1]
        labels = {label for sample in family.samples for label in sample.labels} - {"le"}
        for label in labels:
            assert f"`{label}`" in cell, (name, label)
            if label in OPEN_LABELS:
                continue
            values = {s.labels[label] for s in family.samples if label in s.labels}
            listed = re.search(rf"`{label}` \(([^)]*)\)", cell)
            assert listed, (name, label)
            assert set(re.findall(r"`([^`]+)`", listed.group(1))) == values, name


def test_the_scraped_text_holds_the_documented_families_and_no_other():
    """What a scraper reads against the docs: no family beside them, such as the
    ``_created`` gauges prometheus_client adds unless told not to."""
    families = {f.name + SUFFIX.get(f.type, "") for f in text_string_to_metric_families(scraped())}
    ours = {name for name in families if name.startswith("switchroom")}
    assert "switchroom_http_requests_total" in ours
    assert sorted(ours - set(documented())) == []


def test_names_follow_prometheus_conventions():
    for name, family in exported().items():
        assert re.fullmatch(r"switchroom_[a-z][a-z0-9_]*[a-z]", name), name
        if family.type == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|mb|kib|mib|percent)(_|$)", name), name
        for sample in family.samples:
            for label in sample.labels:
                assert re.fullmatch(r"[a-z][a-z0-9_]*", label), (name, label)


def test_a_process_inbox_queue_is_one_series_whatever_its_process_id():
    first, second = get_layer("memory://"), get_layer("memory://")
    assert first.inbox.queue != second.inbox.queue
    assert queue_label(first.inbox.queue) == queue_label(second.inbox.queue) == INBOX_LABEL


def test_every_alert_asks_for_metrics_and_label_values_that_exist():
    text = (ROOT / "docs" / "operations.md").read_text()
    alerts = text.split("\n### What to alert on\n")[1].split("\n## ")[0]
    metrics = exported()
    asked = re.findall(r"(switchroom_[a-z0-9_]+)(?:\{([^}]*)\})?", alerts)
    assert len(asked) > 10
    for name, matchers in asked:
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in metrics else name
        assert base in metrics, name
        for label, values in re.findall(r'(\w+)=~?"([^"]*)"', matchers):
            known = {s.labels.get(label) for s in metrics[base].samples}
            if label in OPEN_LABELS or not known - {None}:
                continue
            for value in values.replace("\\|", "|").split("|"):
                assert value in known, (name, label, value)
