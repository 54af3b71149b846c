"""Commands that talk to a running engine's admin API: ``openlines connect <channel>``,
``openlines disconnect`` and ``openlines rules explain`` (docs/channels/contract.md,
"Connecting"; docs/routing.md).

``connect`` has one sub-command per channel that can be connected in one step; its options
are the fields of the channel's ``connect_model`` (``--bot-token``, ``--group-id``, ...), so a
new channel appears here by declaring one.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from engine.config import load_engine_config
from engine.errors import ConfigError

ADMIN_TIMEOUT_S = 90.0
"""Connecting waits on the provider's calls (each up to 30 s) and a registry change."""


class AdminCallFailed(Exception):
    """The engine refused the call or could not be reached; the message says which."""


def add_admin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/example.yaml", help="engine YAML")
    parser.add_argument("--engine", default=None, help="base URL (default: from the config)")
    parser.add_argument("--admin-token", default=None, help="default: from the config")


def admin_call(args: argparse.Namespace, method: str, path: str, body: object = None) -> Any:
    """One admin API call with the token and address from the options or the config."""
    config = load_engine_config(Path(args.config))
    token = args.admin_token or config.admin_token
    if not token:
        raise ConfigError("the admin API is off: set admin_token in the config or --admin-token")
    base = (args.engine or f"http://{config.host}:{config.port}").rstrip("/")
    data = None if body is None else orjson.dumps(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_S) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AdminCallFailed(f"{exc.code}: {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise AdminCallFailed(f"cannot reach the engine at {base}: {exc.reason}") from None


def quoted(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def connect(args: argparse.Namespace) -> int:
    model = args.connect_model
    settings = {
        name: getattr(args, name) for name in model.model_fields if getattr(args, name) is not None
    }
    body = {"channel": args.channel, "portal": args.portal, "line": args.line, "settings": settings}
    try:
        done = admin_call(args, "POST", f"/admin/v1/connectors/{quoted(args.id)}/connect", body)
    except AdminCallFailed as exc:
        print(f"openlines: connect {args.channel} {args.id}: {exc}", file=sys.stderr)
        return 1
    print(f"openlines: connected {done['channel']} connector {done['connector_id']}")
    print(f"openlines: the provider posts to {done['webhook_url']}")
    return 0


def disconnect(args: argparse.Namespace) -> int:
    path = f"/admin/v1/connectors/{quoted(args.id)}/disconnect"
    try:
        done = admin_call(args, "POST", path, {"force": args.force})
    except AdminCallFailed as exc:
        print(f"openlines: disconnect {args.id}: {exc}", file=sys.stderr)
        return 1
    note = "" if done["unsubscribed"] else " (the provider refused to unsubscribe; removed anyway)"
    print(f"openlines: disconnected connector {done['connector_id']}{note}")
    return 0


def add_connect_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from channels.registry import CHANNELS

    connect_parser = commands.add_parser("connect", help="connect a channel in one step")
    channels = connect_parser.add_subparsers(dest="channel", required=True)
    for name, cls in sorted(CHANNELS.items()):
        model = cls.connect_model
        if model is None:
            continue
        parser = channels.add_parser(name, help=f"connect a {name} connector")
        parser.add_argument("--id", required=True, help="the new connector's id")
        parser.add_argument("--portal", required=True, help="the portal it belongs to")
        parser.add_argument("--line", required=True, help="the portal's line for its dialogs")
        for field_name, field in model.model_fields.items():
            parser.add_argument(
                "--" + field_name.replace("_", "-"),
                dest=field_name,
                required=field.is_required(),
                help=field.description,
            )
        add_admin_options(parser)
        parser.set_defaults(handler=connect, connect_model=model)
    disconnect_parser = commands.add_parser("disconnect", help="undo 'openlines connect'")
    disconnect_parser.add_argument("id", help="the connector's id")
    disconnect_parser.add_argument(
        "--force", action="store_true", help="remove it even when the provider refuses"
    )
    add_admin_options(disconnect_parser)
    disconnect_parser.set_defaults(handler=disconnect)
