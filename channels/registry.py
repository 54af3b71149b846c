"""Channels by name: the only place that lists them."""

from __future__ import annotations

from pathlib import Path

from channels.base import Channel, Credentials
from channels.custom import CustomChannel
from channels.meta.facebook import FacebookChannel
from channels.meta.instagram import InstagramChannel
from channels.meta.whatsapp import WhatsAppChannel
from channels.telegram import TelegramChannel
from channels.viber import ViberChannel
from channels.vk import VkChannel
from channels.widget.channel import WidgetChannel
from engine.errors import ConfigError, NotFoundError
from engine.models import Route

CHANNELS: dict[str, type[Channel]] = {
    TelegramChannel.name: TelegramChannel,
    CustomChannel.name: CustomChannel,
    VkChannel.name: VkChannel,
    ViberChannel.name: ViberChannel,
    FacebookChannel.name: FacebookChannel,
    WhatsAppChannel.name: WhatsAppChannel,
    InstagramChannel.name: InstagramChannel,
    WidgetChannel.name: WidgetChannel,
}


def channel_class(name: str) -> type[Channel]:
    """The channel class registered under ``name``; ``NotFoundError`` if there is none."""
    try:
        return CHANNELS[name]
    except KeyError:
        raise NotFoundError(
            f"unknown channel {name!r}; known: {', '.join(sorted(CHANNELS))}"
        ) from None


def build_channel(
    route: Route, credentials: dict[str, object], data_dir: Path | None = None
) -> Channel:
    """A channel for one connector, its credentials validated by the channel's own model;
    ``data_dir``: the engine's data folder, for a channel that keeps files of its own."""
    cls = channel_class(route.channel)
    try:
        creds: Credentials = cls.credentials_model.model_validate(credentials)
    except ValueError as exc:
        raise ConfigError(f"connector {route.connector_id!r} ({route.channel}): {exc}") from exc
    return cls.build(route, creds, data_dir)
