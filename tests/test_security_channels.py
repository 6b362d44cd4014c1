"""Channels under attack (issue 20): user text reaches the Slack staff channel escaped and unfurled by
nothing (finding 10). Real signed HTTP, the real slack_sdk against a local Slack stand-in."""

from __future__ import annotations

from tests.conftest import eventually
from tests.test_slack_staff import STAFF_CHANNEL, StaffRig, staff_rig  # noqa: F401  (the fixture)

HOSTILE = "<!channel> 至急 <https://evil.example|事務局ログイン> & <@U0BOSS>"


def _unfurls(body: dict) -> bool:  # type: ignore[type-arg]
    return any(body.get(key) not in (False, "false", "0", 0) for key in ("unfurl_links", "unfurl_media"))


def test_user_text_reaches_the_staff_channel_escaped_and_without_unfurling(staff_rig: StaffRig) -> None:  # noqa: F811
    rig = staff_rig
    rig.user("担当者と話したい")
    rig.user(HOSTILE)
    post = rig.platform.wait_for("slack", 1, "chat.postMessage")[0]
    shown = str(post.body["blocks"]) + post.body["text"]
    assert post.body["channel"] == STAFF_CHANNEL
    assert "<!channel>" not in shown and "<https://evil.example" not in shown and "<@U0BOSS>" not in shown
    assert "&lt;!channel&gt;" in str(post.body["blocks"]) and "&amp;" in str(post.body["blocks"])
    assert not _unfurls(post.body), post.body
    ticket = eventually(lambda: rig.ticket() if rig.ticket().slack_ts else None)
    rig.user("続き " + HOSTILE)
    follow = eventually(lambda: [c for c in rig.platform.of("slack", "chat.postMessage")
                                 if c.body.get("thread_ts") == ticket.slack_ts and "続き" in c.body["text"]])
    assert "<!channel>" not in follow[0].body["text"] and "&lt;https://evil.example|事務局ログイン&gt;" in follow[0].body["text"]
    assert not _unfurls(follow[0].body), follow[0].body
