"""The private APIs of our dependencies, named in one compatibility module each, exist in
the installed versions, and those versions are the ones the modules and setup.cfg admit."""

import asyncio
import configparser
from importlib.metadata import version
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from packaging.requirements import Requirement
from slack_sdk.rtm_v2 import RTMClient

from switchroom.servers.email import aiosmtpd_compat
from switchroom.servers.slack import slack_sdk_compat

SETUP = Path(__file__).resolve().parents[1] / "setup.cfg"


def release(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version(name).split(".")[:3] if part.isdigit())


def requirement(name: str) -> Requirement:
    config = configparser.ConfigParser()
    config.read(SETUP)
    for line in config["options"]["install_requires"].split("\n"):
        if line.strip() and Requirement(line.strip()).name == name:
            return Requirement(line.strip())
    raise AssertionError(f"{name} is not in setup.cfg")


@pytest.mark.parametrize("name, module", [("aiosmtpd", aiosmtpd_compat), ("slack-sdk", slack_sdk_compat)])
def test_the_installed_version_is_the_one_the_module_supports_and_setup_cfg_bounds(name, module):
    low, high = module.SUPPORTED
    assert low <= release(name) < high
    bounds = requirement(name).specifier
    assert version(name) in bounds
    assert ".".join(map(str, high)) not in bounds, "setup.cfg admits a release the module does not support"


async def test_aiosmtpd_has_what_the_inbound_server_uses():
    for name in aiosmtpd_compat.METHODS:
        assert callable(getattr(SMTP, name, None)), name
    session = SMTP(handler=object())
    transport = _Transport()
    session.connection_made(transport)
    try:
        for name in aiosmtpd_compat.SESSION_ATTRIBUTES:
            assert getattr(session, name, None) is not None, name
        assert isinstance(aiosmtpd_compat.reader(session), asyncio.StreamReader)
        assert aiosmtpd_compat.parse_address(session, "<a@b.example>")[0] == "a@b.example"
    finally:
        session.connection_lost(None)
        await asyncio.sleep(0)


def test_slack_sdks_rtm_client_has_what_stopping_it_uses():
    client = RTMClient(token="xoxb-not-used", auto_reconnect_enabled=False)
    for name in slack_sdk_compat.RTM_ATTRIBUTES:
        assert hasattr(client, name), name


class _Transport(asyncio.Transport):
    """Enough of a transport for an SMTP session to start on."""

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 2525) if name == "peername" else default

    def write(self, data):
        pass

    def is_closing(self):
        return False

    def close(self):
        pass
