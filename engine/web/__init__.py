"""The engine's HTTP face: provider webhooks, the portal API, the admin API, health and
metrics. Plain aiohttp handlers over the small interfaces of ``engine.web.ports``; the
channel actors serve them with Ray behind those interfaces (``actors.view``), and tests run
them over the same parts in one process, without Ray.
"""
