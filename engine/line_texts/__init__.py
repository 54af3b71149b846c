"""A line's own messages: greeting, consent, closing, rating, reminders, auto-close and KPI
alerts, in the customer's language, and the answers read back.

The dispatcher holds one ``sections.LineTexts`` per line (built from the line's file with
``sections.load_line_sections``) and calls its ``messages`` (``line.LineMessages``) and
``bot`` (``engine.bot.session.BotSession``). ``docs/line-messages.md`` is the reference.
"""
