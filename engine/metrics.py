"""Counters kept by each actor and merged for ``/metrics``.

Each process counts in a plain dict (no locks: actors are single-threaded event loops); the
HTTP layer gathers every actor's snapshot and renders them in the Prometheus text format.
An actor that does not answer in time is reported by ``openlines_actor_up`` 0, and its own
samples are missing from that scrape; a restarted actor counts from zero again (a counter
reset, which Prometheus' ``rate`` and ``increase`` take in their stride).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels]

COUNTER_HELP: dict[str, str] = {
    "openlines_received_total": "Inbound channel events that passed verification and parsing.",
    "openlines_stored_total": "Inbound events durably stored (duplicates excluded).",
    "openlines_duplicates_total": "Inbound events dropped as duplicates of a stored one.",
    "openlines_ignored_total": "Provider updates that are not customer messages, by reason.",
    "openlines_rejected_total": "Requests refused with a 4xx or 5xx, by reason.",
    "openlines_poll_failed_total": "Polls of a polling connector that failed (logged; the "
    "next interval polls again from the same cursor), by channel and connector.",
    "openlines_webhook_refused_total": "Provider webhooks refused, by channel, connector "
    "('unknown' when not a known one) and reason; each is also logged once.",
    "openlines_delivered_total": "Events the portal accepted.",
    "openlines_batches_delivered_total": "Batches the portal accepted.",
    "openlines_retried_total": "Batch delivery attempts that failed and were scheduled again.",
    "openlines_delivery_rounds_total": "Delivery rounds written, each one transaction with "
    "the outcomes, starting attempts and new batches of many portals' streams.",
    "openlines_dead_lettered_total": "Events moved to dead letters after their TTL.",
    "openlines_dropped_total": "Best-effort events dropped after their one attempt.",
    "openlines_replies_total": "Operator replies settled, by outcome.",
    "openlines_dialogs_opened_total": "Dialogs the router opened for new conversations.",
    "openlines_blocked_messages_total": "Messages of customers blocked as spam: stored in the "
    "blocking dialog's history, not delivered and opening no dialog.",
    "openlines_handoff_failed_total": "Hand-offs of acknowledged records to a portal actor "
    "that failed and wait to be tried again, by destination.",
    "openlines_routing_decisions_total": "Dialogs offered or assigned by a routing decision.",
    "openlines_rules_reload_failed_total": "Rule edits refused (the rules in force stayed).",
    "openlines_loop_errors_total": "Failures a background loop survived (it logs each and "
    "carries on), by loop: registry_follow, rules_follow, prune, widget_prune, widget_limits, "
    "delivery.",
    "openlines_widget_pruned_total": "Widget visitors, log entries and uploads removed past "
    'their widget\'s retention, by what (docs/channels/widget.md, "Retention").',
    "openlines_crm_identities_refused_total": "Phone numbers or e-mail addresses in customers' "
    "messages that did not normalize, so linked nothing (docs/crm.md).",
    "openlines_dialog_events_total": "Dialog statistics' facts as they commit, by line, type "
    "(received, assigned, answered, missed, transferred_out, transferred_in, returned, "
    "closed, declined, rated) and reason (docs/statistics.md).",
}

GAUGE_HELP: dict[str, str] = {
    "openlines_outbox_depth": "Events stored for a portal and not yet delivered.",
    "openlines_dead_letters": "Events in a portal's dead letters.",
    "openlines_unrouted": "Messages stored for a portal and not yet routed (routing's "
    "backlog, part of openlines_outbox_depth).",
    "openlines_dialogs": "Open dialogs per portal, line and state (waiting, offered, ...).",
    "openlines_operators_online": "Operators online per portal.",
    "openlines_rules_version": "Version of the routing rules in force.",
    "openlines_rules_error": "1 while the last rules edit was refused, else 0.",
    "openlines_actor_up": (
        "1 if the actor answered this scrape in time, else 0 (down, restarting or stuck); "
        "while it is 0 the actor's own counters and gauges are missing from the scrape."
    ),
}


HISTOGRAM_HELP: dict[str, str] = {
    "openlines_first_answer_seconds": "Seconds from a dialog's opening to its first answer, "
    "by line (docs/statistics.md).",
    "openlines_answer_seconds": "Seconds from a customer's message to the operator reply "
    "after it, for the answers after the first, by line (docs/statistics.md).",
}

ANSWER_BUCKETS_S = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)
"""Upper bounds of the answer-time histograms: from a chat's seconds to a mail's day."""


class Counters:
    def __init__(self) -> None:
        self._values: dict[Sample, float] = defaultdict(float)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        self._values[sample(name, **labels)] += amount

    def add(self, key: Sample, amount: float = 1.0) -> None:
        """``inc`` of a sample made once by ``sample``: for paths that count per event."""
        self._values[key] += amount

    def observe(self, name: str, value: float, buckets: tuple[float, ...], **labels: str) -> None:
        """One observation of a histogram, kept as the Prometheus samples themselves
        (cumulative ``_bucket`` per ``le``, ``_count``, ``_sum``), so snapshots of several
        actors merge by adding, like counters."""
        for bound in buckets:
            self.inc(f"{name}_bucket", 1.0 if value <= bound else 0.0, le=_le(bound), **labels)
        self.inc(f"{name}_bucket", 1.0, le="+Inf", **labels)
        self.inc(f"{name}_count", 1.0, **labels)
        self.inc(f"{name}_sum", value, **labels)

    def value(self, name: str, **labels: str) -> float:
        return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def snapshot(self) -> dict[Sample, float]:
        return dict(self._values)


def sample(name: str, **labels: str) -> Sample:
    """A sample's key: its name and its labels in a fixed order."""
    return (name, tuple(sorted(labels.items())))


def _le(bound: float) -> str:
    """A bucket bound as Prometheus clients write it: ``30.0``."""
    return str(float(bound))


def merge(snapshots: Iterable[dict[Sample, float]]) -> dict[Sample, float]:
    total: dict[Sample, float] = defaultdict(float)
    for snapshot in snapshots:
        for sample, value in snapshot.items():
            total[sample] += value
    return dict(total)


class _Snapshot:
    """A prometheus-client collector over already merged samples (one scrape's worth)."""

    def __init__(self, counters: dict[Sample, float], gauges: dict[Sample, float]) -> None:
        self._counters = counters
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for kind, helps, values in (
            ("counter", COUNTER_HELP, self._counters),
            ("gauge", GAUGE_HELP, self._gauges),
        ):
            for name, help_text in helps.items():
                family = Metric(
                    name.removesuffix("_total") if kind == "counter" else name, help_text, kind
                )
                for (sample_name, labels), value in sorted(values.items()):
                    if sample_name == name:
                        family.add_sample(name, dict(labels), value)
                yield family
        for name, help_text in HISTOGRAM_HELP.items():
            yield _histogram(name, help_text, self._counters)


def _histogram(name: str, help_text: str, values: dict[Sample, float]) -> Metric:
    """A histogram family: per label set its buckets in ascending ``le``, then its count
    and sum, the order the text format asks for."""
    family = Metric(name, help_text, "histogram")
    buckets: dict[Labels, dict[str, float]] = defaultdict(dict)
    totals: dict[Labels, dict[str, float]] = defaultdict(dict)
    for (sample_name, labels), value in values.items():
        if sample_name == f"{name}_bucket":
            others = dict(labels)
            le = others.pop("le")
            buckets[tuple(sorted(others.items()))][le] = value
        elif sample_name in (f"{name}_count", f"{name}_sum"):
            totals[labels][sample_name] = value
    for labels in sorted(totals):
        for le, value in sorted(buckets[labels].items(), key=lambda item: float(item[0])):
            family.add_sample(f"{name}_bucket", {**dict(labels), "le": le}, value)
        for suffix in ("_count", "_sum"):
            family.add_sample(name + suffix, dict(labels), totals[labels].get(name + suffix, 0.0))
    return family


def render(counters: dict[Sample, float], gauges: dict[Sample, float]) -> str:
    """The Prometheus text exposition format, written by prometheus-client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(counters, gauges))
    return generate_latest(registry).decode()
