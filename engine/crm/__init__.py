"""The built-in CRM's rules, with neither Ray nor a store: identities and how they are
normalized, contacts and leads, which contact an inbound message belongs to, and merging.

The store (``engine.store.sqlite_crm``) keeps what these decide; ``engine.contacts`` runs
them for one portal. ``docs/crm.md`` is the reference.
"""
