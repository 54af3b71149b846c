"""Counters and their Prometheus text, read back with prometheus_client's own parser."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import (
    COUNTER_HELP,
    GAUGE_HELP,
    HISTOGRAM_HELP,
    Counters,
    Sample,
    merge,
    render,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_counters_count_per_label_set() -> None:
    counters = Counters()
    counters.inc("openlines_delivered_total", 3, portal="p1")
    counters.inc("openlines_delivered_total", portal="p1")
    counters.inc("openlines_delivered_total", 2, portal="p2")
    counters.inc("openlines_replies_total", outcome="reply.sent", portal="p1")
    assert counters.value("openlines_delivered_total", portal="p1") == 4
    assert counters.value("openlines_replies_total", portal="p1", outcome="reply.sent") == 1
    assert counters.value("openlines_delivered_total", portal="p3") == 0


def test_merge_adds_snapshots_of_several_actors() -> None:
    a, b = Counters(), Counters()
    a.inc("openlines_stored_total", 2, portal="p1")
    b.inc("openlines_stored_total", 5, portal="p1")
    b.inc("openlines_stored_total", 1, portal="p2")
    merged = merge([a.snapshot(), b.snapshot()])
    assert merged == {
        ("openlines_stored_total", (("portal", "p1"),)): 7,
        ("openlines_stored_total", (("portal", "p2"),)): 1,
    }


def test_render_parses_as_prometheus_text_with_escaped_labels() -> None:
    counters = Counters()
    awkward = 'a "quoted" back\\slash and\nnewline'
    counters.inc("openlines_rejected_total", 2, reason=awkward)
    counters.inc("openlines_delivered_total", 7, portal="p1")
    counters.inc("openlines_replies_total", portal="p1", outcome="reply.failed")
    gauges: dict[Sample, float] = {
        ("openlines_outbox_depth", (("portal", "p1"),)): 12.0,
        ("openlines_dead_letters", (("portal", "p1"),)): 0.0,
    }
    text = render(counters.snapshot(), gauges)
    parsed = samples(text)
    assert parsed[("openlines_rejected_total", (("reason", awkward),))] == 2
    assert parsed[("openlines_delivered_total", (("portal", "p1"),))] == 7
    key = ("openlines_replies_total", (("outcome", "reply.failed"), ("portal", "p1")))
    assert parsed[key] == 1
    assert parsed[("openlines_outbox_depth", (("portal", "p1"),))] == 12
    assert parsed[("openlines_dead_letters", (("portal", "p1"),))] == 0


def test_every_metric_has_help_and_type() -> None:
    families = {f.name: f for f in text_string_to_metric_families(render({}, {}))}
    for name in COUNTER_HELP:
        family = families[name.removesuffix("_total")]
        assert (family.type, family.documentation) == ("counter", COUNTER_HELP[name])
    for name in GAUGE_HELP:
        assert families[name].type == "gauge"


def test_every_counter_the_engine_counts_is_rendered() -> None:
    """A counter missing from ``COUNTER_HELP`` is counted but never shown on /metrics."""
    root = Path(__file__).resolve().parents[2]
    counted = {
        name
        for package in ("engine", "actors", "channels")
        for path in (root / package).rglob("*.py")
        for name in re.findall(r'"(openlines_[a-z_]+_total)"', path.read_text(encoding="utf-8"))
    }
    assert "openlines_delivered_total" in counted  # the scan finds the counters
    assert counted - set(COUNTER_HELP) == set()


def test_unlabelled_samples_render_bare() -> None:
    text = render({("openlines_stored_total", ()): 5.0}, {})
    assert "\nopenlines_stored_total 5.0\n" in text
    assert samples(text)[("openlines_stored_total", ())] == 5


def test_large_and_fractional_values_keep_their_precision() -> None:
    counters: dict[Sample, float] = {
        ("openlines_delivered_total", (("portal", "p1"),)): 123_456_789.0,
        ("openlines_stored_total", (("portal", "p1"),)): 2.0**53,
    }
    gauges: dict[Sample, float] = {("openlines_outbox_depth", (("portal", "p1"),)): 0.125}
    parsed = samples(render(counters, gauges))
    assert parsed[("openlines_delivered_total", (("portal", "p1"),))] == 123_456_789
    assert parsed[("openlines_stored_total", (("portal", "p1"),))] == 2.0**53
    assert parsed[("openlines_outbox_depth", (("portal", "p1"),))] == 0.125


def test_a_histogram_renders_cumulative_buckets_count_and_sum_per_label_set() -> None:
    counters = Counters()
    buckets = (5.0, 30.0)
    for seconds in (3.0, 30.0, 31.0):
        counters.observe("openlines_first_answer_seconds", seconds, buckets, line="a", portal="p")
    counters.observe("openlines_first_answer_seconds", 0.5, buckets, line="b", portal="p")
    other = Counters()  # another actor: snapshots merge by adding
    other.observe("openlines_first_answer_seconds", 4.0, buckets, line="a", portal="p")

    text = render(merge([counters.snapshot(), other.snapshot()]), {})

    family = text.split("# HELP openlines_first_answer_seconds ")[1].split("# HELP")[0]
    assert family.splitlines()[1:] == [
        "# TYPE openlines_first_answer_seconds histogram",
        'openlines_first_answer_seconds_bucket{le="5.0",line="a",portal="p"} 2.0',
        'openlines_first_answer_seconds_bucket{le="30.0",line="a",portal="p"} 3.0',
        'openlines_first_answer_seconds_bucket{le="+Inf",line="a",portal="p"} 4.0',
        'openlines_first_answer_seconds_count{line="a",portal="p"} 4.0',
        'openlines_first_answer_seconds_sum{line="a",portal="p"} 68.0',
        'openlines_first_answer_seconds_bucket{le="5.0",line="b",portal="p"} 1.0',
        'openlines_first_answer_seconds_bucket{le="30.0",line="b",portal="p"} 1.0',
        'openlines_first_answer_seconds_bucket{le="+Inf",line="b",portal="p"} 1.0',
        'openlines_first_answer_seconds_count{line="b",portal="p"} 1.0',
        'openlines_first_answer_seconds_sum{line="b",portal="p"} 0.5',
    ]
    name = "openlines_first_answer_seconds"
    [parsed] = [f for f in text_string_to_metric_families(text) if f.name == name]
    assert parsed.type == "histogram"
    assert len(parsed.samples) == 10


def test_every_histogram_has_help_and_type() -> None:
    families = {f.name: f for f in text_string_to_metric_families(render({}, {}))}
    for name, help_text in HISTOGRAM_HELP.items():
        assert (families[name].type, families[name].documentation) == ("histogram", help_text)
