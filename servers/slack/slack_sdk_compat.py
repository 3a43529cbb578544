"""The parts of slack-sdk's RTM client beyond its documented API that the Slack server
relies on, in one place.

``RTMClient.close()`` leaves automatic reconnects and its runner threads going, so a
stopping server turns reconnects off and shuts the runners and the worker pool down by
the attributes named here, for the versions ``SUPPORTED`` says (and setup.cfg admits);
``tests/test_compat.py`` checks them against the installed slack-sdk.
"""

from typing import Any

# slack-sdk releases whose RTM client has these attributes: >= 3.27, < 4.
SUPPORTED = ((3, 27), (4,))
# Attributes of an ``RTMClient`` instance that ``stop_rtm`` uses.
RTM_ATTRIBUTES = (
    "auto_reconnect_enabled",
    "current_app_monitor",
    "current_session_runner",
    "message_processor",
    "message_workers",
)


def stop_rtm(rtm: Any) -> None:
    """Close an RTM client for good: no reconnect, its runner threads and workers stopped."""
    rtm.auto_reconnect_enabled = False
    rtm.close()
    for runner in (rtm.current_app_monitor, rtm.current_session_runner, rtm.message_processor):
        if runner is not None:
            runner.shutdown()
    rtm.message_workers.shutdown(wait=False)
