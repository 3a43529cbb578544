"""The one start-up line for the causes found in process, without starting a process: a
port out of range, a host that does not resolve, a port already taken, an app that does
not load."""

import errno
import os
import socket

import pytest

from switchroom.layers import get_layer
from switchroom.shared.health import Health
from switchroom.shared.serving import open_health
from switchroom.shared.startup import PORT_RANGE, StartupError, build_layer, listen_error, os_error
from switchroom.up import check_free
from switchroom.worker.cli import APP_HELP, load_app


@pytest.mark.parametrize("port", [65536, 99999, -1])
def test_up_refuses_a_port_out_of_range_in_one_line(port):
    with pytest.raises(StartupError) as error:
        check_free("--http-port", "127.0.0.1", port)
    assert str(error.value) == f"--http-port {port}: {PORT_RANGE}"


async def test_a_metrics_port_out_of_range_is_one_line():
    with pytest.raises(StartupError) as error:
        await open_health("127.0.0.1", 99999, Health(get_layer("memory://")))
    assert str(error.value) == f"--metrics-bind 127.0.0.1 --metrics-port 99999: {PORT_RANGE}"


def test_an_unknown_host_is_not_called_a_taken_port():
    with pytest.raises(StartupError) as error:
        check_free("--http-port", "nosuchhost.invalid", 8000)
    text = str(error.value)
    assert "taken" not in text and "[Errno" not in text, text
    assert text.startswith("nosuchhost.invalid:8000 (--http-port): ") and "check the bind address" in text


def test_a_taken_port_is_named_with_its_flag():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartupError) as error:
            check_free("--email-port", "127.0.0.1", port)
    assert str(error.value).startswith(f"127.0.0.1:{port} (--email-port) is taken: ")
    assert str(error.value).endswith("choose another --email-port")


def test_name_lookup_errors_lose_their_code_and_gain_a_fix():
    text = str(os_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    assert text == "Name or service not known; no such host: check the bind address"
    assert str(listen_error(OverflowError("bind(): port must be 0-65535."))) == PORT_RANGE


def test_an_app_whose_dependency_is_missing_is_told_to_install_it(tmp_path, monkeypatch):
    (tmp_path / "needs_more.py").write_text("import nosuch_dependency_x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(StartupError) as error:
        load_app("needs_more:app")
    assert str(error.value) == (
        "cannot load the app 'needs_more:app': it imports 'nosuch_dependency_x', which is not "
        "installed: install it in this environment"
    )


@pytest.mark.parametrize("target", ["nosuch_app_x:app", "tests.nosuch_app_x:app"])
def test_an_app_module_that_is_not_there_is_told_to_give_module_attr(target):
    with pytest.raises(StartupError) as error:
        load_app(target)
    assert "No module named" in str(error.value) and str(error.value).endswith(APP_HELP)


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("capacity=abc", "capacity='abc': give a whole number"),
        ("expiry=soon", "expiry='soon': give a number"),
        ("local=maybe", "local='maybe': 'maybe' is not a boolean"),
    ],
)
def test_a_bad_layer_url_option_is_named(query, said):
    with pytest.raises(StartupError) as error:
        build_layer(f"redis://127.0.0.1:1/0?{query}")
    assert str(error.value).startswith(f"bad --layer: {said}")


@pytest.mark.parametrize(
    ("code", "said"), [(errno.EBADF, "no open descriptor"), (errno.ENOTSOCK, "other than a socket")]
)
def test_a_bad_fd_is_told_what_to_pass(code, said):
    text = str(os_error(OSError(code, os.strerror(code))))
    assert text.startswith(os.strerror(code) + "; --fd names ") and said in text
