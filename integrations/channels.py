"""Which channels are live: each is enabled by its credentials in the settings."""

from __future__ import annotations

from bot.settings import Settings


def live_channels(settings: Settings) -> list[str]:
    channels = ["cli", "web"]
    if settings.slack_bot_token and settings.slack_signing_secret:
        channels.append("slack")
    if settings.telegram_bot_token:
        channels.append("telegram")
    if settings.line_channel_secret and settings.line_channel_access_token:
        channels.append("line")
    return channels
