"""Counters and their Prometheus text, read back with prometheus_client's own parser."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import COUNTER_HELP, GAUGE_HELP, Counters, Sample, merge, render


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
