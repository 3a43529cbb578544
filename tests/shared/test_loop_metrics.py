"""LoopCounter and LoopHistogram export exactly what prometheus_client's Counter and
Histogram export for the same events."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from switchroom.shared.metrics import LoopCounter, LoopHistogram

BOUNDS = Histogram.DEFAULT_BUCKETS
amounts = st.one_of(
    st.floats(min_value=0, max_value=20, allow_nan=False),
    st.sampled_from([b for b in BOUNDS if b != math.inf]),
)
events = st.lists(st.tuples(st.sampled_from(["a", "b", 3]), amounts), max_size=30)


@given(events)
def test_the_same_events_give_the_same_exposition(observed):
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counters = [
        LoopCounter("t_events", "Events by kind", ["kind"], registry=ours),
        Counter("t_events", "Events by kind", ["kind"], registry=theirs),
    ]
    histograms = [
        LoopHistogram("t_seconds", "Seconds by kind", ["kind"], registry=ours),
        Histogram("t_seconds", "Seconds by kind", ["kind"], registry=theirs),
    ]
    plain = [
        LoopHistogram("t_plain_seconds", "Seconds", registry=ours),
        Histogram("t_plain_seconds", "Seconds", registry=theirs),
    ]
    totals = [LoopCounter("t_all", "All", registry=ours), Counter("t_all", "All", registry=theirs)]
    for kind, amount in observed:
        for counter, histogram, one, total in zip(counters, histograms, plain, totals, strict=True):
            counter.labels(kind).inc(amount)
            histogram.labels(kind).observe(amount)
            one.observe(amount)
            total.inc()
    exposed = [generate_latest(registry).decode() for registry in (ours, theirs)]
    # prometheus_client adds a _created sample unless told not to (switchroom tells it not to).
    assert exposed[0] == "\n".join(line for line in exposed[1].split("\n") if "_created" not in line)


def test_a_counter_only_grows_and_takes_its_labels():
    counter = LoopCounter("t_grows", "Grows", ["kind"], registry=None)
    with pytest.raises(ValueError):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError):
        counter.labels("a", "b")
    assert counter.labels("a") is counter.labels("a")
