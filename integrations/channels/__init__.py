"""The channels behind one interface: a registry of `Channel` (name, configured from settings, sender,
web routes, whether the platform has buttons), which platforms are live, and wiring them into the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bot.messages import Reply
from bot.settings import Settings
from datetime import timedelta
from bot.recovery import recover_unanswered
from bot.security import web_sessions
from integrations.channels.delivery import ChannelRuntime, DeliveryWorker, Every, Once

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.engine import Engine
    from bot.services import Services
    from bot.storage.models import OutboundMessage
    from integrations.channels.delivery import ChannelRuntime, ChannelSender, DeliveryWorker


@dataclass(frozen=True)
class Channel:
    """One platform behind the one interface the app knows."""
    name: str
    #: Live when this says so (its credentials are set); the terminal and the web chat always are.
    is_configured: Callable[[Settings], bool]
    #: The outbox sender (None: the user's client fetches its replies, as the terminal and the web chat do).
    sender: Callable[[Settings], ChannelSender] | None = None
    #: Its webhook routes on the app (None: nothing to mount).
    mount: Callable[[FastAPI, Services, ChannelRuntime, ChannelSender | None], None] | None = None
    #: The platform shows buttons; if not, options become numbered lines in the text (a typed number picks).
    buttons: bool = True


def _always(settings: Settings) -> bool:
    return True


def registry() -> tuple[Channel, ...]:
    """Every channel, in the order they are listed and mounted: adding one is one line here."""
    from integrations.channels import line, slack, telegram  # each platform's SDK loads only when the app or a command needs it

    def mount_slack(api: FastAPI, services: Services, runtime: ChannelRuntime, sender: ChannelSender | None) -> None:
        from integrations.slack_staff import staff_hooks  # cycle: slack_staff imports the channel registry

        api.state.slack_app = slack.mount(api, services.settings, services, runtime, staff_hooks(services))

    def mount_telegram(api: FastAPI, services: Services, runtime: ChannelRuntime,
                       sender: ChannelSender | None) -> None:
        telegram.mount(api, services.settings, services, runtime, cast("telegram.TelegramSender", sender))

    def mount_line(api: FastAPI, services: Services, runtime: ChannelRuntime, sender: ChannelSender | None) -> None:
        line.mount(api, services.settings, services, runtime)

    return (
        Channel("cli", _always),
        Channel("web", _always),
        Channel("slack", slack.is_configured, slack.SlackSender, mount_slack),
        Channel("telegram", telegram.is_configured, telegram.TelegramSender, mount_telegram),
        Channel("line", line.is_configured, line.LineSender, mount_line),
    )


def live_channels(settings: Settings) -> list[str]:
    return [channel.name for channel in registry() if channel.is_configured(settings)]


def build_senders(settings: Settings) -> dict[str, ChannelSender]:
    senders: dict[str, ChannelSender] = {}
    for channel in registry():
        if channel.sender is not None and channel.is_configured(settings):
            sender = channel.sender(settings)
            senders[channel.name] = sender if channel.buttons else NumberedOptions(sender)
    return senders


def mount_channels(api: FastAPI, services: Services, engine: Engine) -> DeliveryWorker:
    """Webhook routes of every configured platform, and the worker that delivers their outbox."""

    senders = build_senders(services.settings)
    worker = build_worker(services, senders)
    runtime = ChannelRuntime(engine, worker)
    for channel in registry():
        if channel.mount is not None and channel.is_configured(services.settings):
            sender = senders.get(channel.name)
            channel.mount(api, services, runtime, sender.inner if isinstance(sender, NumberedOptions) else sender)
    api.state.channel_runtime = runtime
    worker.tasks.insert(0, Once(startup_recovery(services, runtime)))
    return worker


def numbered(reply: Reply) -> Reply:
    """A reply for a platform without buttons: the options become numbered lines under the text."""
    if not reply.options:
        return reply
    lines = [f"{number}. {option.label}" for number, option in enumerate(reply.options, start=1)]
    return reply.model_copy(update={"text": "\n".join([reply.text, "", *lines]), "options": []})


class NumberedOptions:
    """Wraps the sender of a platform without buttons: every reply's options go out as numbered text."""
    def __init__(self, inner: ChannelSender) -> None:
        self.inner = inner
        self.channel = inner.channel

    def send(self, row: OutboundMessage, replies: list[Reply]) -> None:
        self.inner.send(row, [numbered(reply) for reply in replies])


def startup_recovery(services: Services, runtime: ChannelRuntime) -> Any:
    """First thing the worker does: process webhook events stored but not processed, then answer inbound
    messages left without a reply (a kill between storing a message and answering it), or apologise for them."""


    def run() -> int:
        done = sum(inbox.replay() for inbox in runtime.inboxes)
        grace = timedelta(seconds=services.settings.chat.unanswered_grace_seconds)
        return done + recover_unanswered(services, runtime.engine, grace)

    return run


def build_worker(services: Services, senders: dict[str, ChannelSender] | None = None) -> DeliveryWorker:
    """The outbox worker: platform senders, the Slack staff channel, and the capabilities' periodic tasks."""

    senders = build_senders(services.settings) if senders is None else senders
    tasks: list[Any] = [Every(task.every_seconds, _counted(task.run, services))
                        for capability in services.capabilities for task in capability.tasks
                        if task.every_seconds is not None and task.run is not None]
    tasks.append(Every(WEB_SESSION_PURGE_EVERY_S, lambda: purge_web_sessions(services)))
    from integrations.slack_staff import staff_channels  # cycle: slack_staff imports the channel registry

    if "slack" in senders and staff_channels(services):
        from integrations.slack_staff import StaffChannelNotifier  # cycle: slack_staff imports the channel registry

        tasks.append(StaffChannelNotifier(services))
    return DeliveryWorker(services, list(senders.values()), tasks=tasks)


#: How often the worker deletes the web chat's dead sessions.
WEB_SESSION_PURGE_EVERY_S = 3600


def purge_web_sessions(services: Services) -> int:
    """The web chat's expired sessions, and those never used to talk that sat idle a day: deleted."""
    with services.db.session() as session:
        return web_sessions.purge(session, timedelta(days=services.settings.web.session_days))


def _counted(run: Callable[[Services], object], services: Services) -> Callable[[], int]:
    """A capability's periodic task as the worker wants it: called with no arguments, returning how much it did."""
    def call() -> int:
        done = run(services)
        return len(done) if isinstance(done, list | tuple) else int(done) if isinstance(done, int) else 0
    return call
