"""Meta's family of channels: Facebook Messenger, Facebook page comments, Instagram direct
messages and comments, and the WhatsApp Cloud API.

They share one webhook mechanism (docs/channels/facebook.md, "Webhook"): an app-level POST
signed with the app secret (``signature``), carrying a batch of entries, one per page,
Instagram account or WhatsApp business account (``envelope``); and one error shape for every
Graph API call (``graph_errors``). Each channel module reads its own part of an entry.
"""
