"""Which platform channels are live (each is enabled by its credentials) and wiring them into the app."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.engine import Engine
    from bot.services import Services
    from integrations.delivery import ChannelSender, DeliveryWorker


def live_channels(settings: Settings) -> list[str]:
    from integrations import line, slack, telegram

    channels = ["cli", "web"]
    for name, module in (("slack", slack), ("telegram", telegram), ("line", line)):
        if module.is_configured(settings):
            channels.append(name)
    return channels


def build_senders(settings: Settings) -> dict[str, ChannelSender]:
    from integrations import line, slack, telegram

    senders: dict[str, Any] = {}
    if slack.is_configured(settings):
        senders["slack"] = slack.SlackSender(settings)
    if telegram.is_configured(settings):
        senders["telegram"] = telegram.TelegramSender(settings)
    if line.is_configured(settings):
        senders["line"] = line.LineSender(settings)
    return senders


def mount_channels(api: FastAPI, services: Services, engine: Engine,
                   slack_hooks: list[Any] | None = None) -> DeliveryWorker:
    """Webhook routes of every configured platform, and the worker that delivers their outbox."""
    from integrations import line, slack, telegram
    from integrations.delivery import ChannelRuntime, DeliveryWorker

    settings = services.settings
    senders = build_senders(settings)
    worker = DeliveryWorker(services, list(senders.values()))
    runtime = ChannelRuntime(engine, worker)
    if "slack" in senders:
        api.state.slack_app = slack.mount(api, settings, runtime, slack_hooks)
    if "telegram" in senders:
        telegram.mount(api, settings, services, runtime, senders["telegram"])
    if "line" in senders:
        line.mount(api, settings, services, runtime)
    api.state.channel_runtime = runtime
    return worker
