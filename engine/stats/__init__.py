"""Statistics of a portal's dialogs, computed from the events of their streams.

Pure code: no store, no clock, no I/O. ``timeline`` turns one dialog's events, in stream
order, into facts (received, answered after so many seconds, missed, transferred, ...);
``figures`` folds the facts of a time range into the figures the portal API answers with
(docs/statistics.md); ``live`` feeds the same facts, as events commit, to the Prometheus
counters and histograms. One code path for both, so the API and ``/metrics`` agree.
"""
