"""The bot before operators: a rule-based responder defined in the line's file.

``config`` models the ``bot`` section, ``keywords`` and ``regex_guard`` check and match what
it recognises, ``session`` is the pure state machine the dispatcher calls. ``docs/bot.md``
is the reference.
"""
