"""Which platform channels are live (each is enabled by its credentials) and wiring them into the app."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from bot.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.engine import Engine
    from bot.services import Services
    from integrations.channels.delivery import ChannelSender, DeliveryWorker


def live_channels(settings: Settings) -> list[str]:
    from integrations.channels import line, slack, telegram

    channels = ["cli", "web"]
    for name, module in (("slack", slack), ("telegram", telegram), ("line", line)):
        if module.is_configured(settings):
            channels.append(name)
    return channels


def build_senders(settings: Settings) -> dict[str, ChannelSender]:
    from integrations.channels import line, slack, telegram

    senders: dict[str, Any] = {}
    if slack.is_configured(settings):
        senders["slack"] = slack.SlackSender(settings)
    if telegram.is_configured(settings):
        senders["telegram"] = telegram.TelegramSender(settings)
    if line.is_configured(settings):
        senders["line"] = line.LineSender(settings)
    return senders


def mount_channels(api: FastAPI, services: Services, engine: Engine) -> DeliveryWorker:
    """Webhook routes of every configured platform, and the worker that delivers their outbox."""
    from integrations.channels import line, slack, telegram
    from integrations.channels.delivery import ChannelRuntime, Once

    settings = services.settings
    senders = build_senders(settings)
    worker = build_worker(services, senders)
    runtime = ChannelRuntime(engine, worker)
    if "slack" in senders:
        from integrations.slack_staff import staff_hooks

        api.state.slack_app = slack.mount(api, settings, runtime, staff_hooks(services))
    if "telegram" in senders:
        telegram.mount(api, settings, services, runtime, senders["telegram"])
    if "line" in senders:
        line.mount(api, settings, services, runtime)
    api.state.channel_runtime = runtime
    worker.tasks.insert(0, Once(startup_recovery(services, runtime)))
    return worker


def startup_recovery(services: Services, runtime: ChannelRuntime) -> Any:
    """First thing the worker does: process webhook events stored but not processed, then apologise for
    inbound messages left without a reply (a kill between storing a message and answering it)."""
    from datetime import timedelta

    from bot.recovery import apologise_for_unanswered

    def run() -> int:
        done = sum(inbox.replay() for inbox in runtime.inboxes)
        grace = timedelta(seconds=services.settings.unanswered_grace_seconds)
        return done + apologise_for_unanswered(services, grace)

    return run


def build_worker(services: Services, senders: dict[str, ChannelSender] | None = None) -> DeliveryWorker:
    """The outbox worker: platform senders, the Slack staff channel, and the capabilities' periodic tasks."""
    from integrations.channels.delivery import DeliveryWorker, Every

    senders = build_senders(services.settings) if senders is None else senders
    tasks: list[Any] = [Every(task.every_seconds, partial(task.run, services))
                        for capability in services.capabilities for task in capability.tasks
                        if task.every_seconds is not None and task.run is not None]
    if "slack" in senders and services.settings.slack_staff_channel:
        from integrations.slack_staff import StaffChannelNotifier

        tasks.append(StaffChannelNotifier(services))
    return DeliveryWorker(services, list(senders.values()), tasks=tasks)
