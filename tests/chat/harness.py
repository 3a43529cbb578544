"""Runs ``switchroom up`` as a subprocess and waits until it says where to go."""

import signal

from switchroom.shared.redisproc import free_ports

from ..processes import ROOT, SwitchroomProcess

__all__ = ["ROOT", "UpProcess"]


class UpProcess(SwitchroomProcess):
    """``switchroom up examples.chat.app:app`` on free ports, ready once it prints its
    address; stopped with Ctrl-C (SIGINT), as a user stops it."""

    name = "up"
    stop_signal = signal.SIGINT
    stop_timeout = 30.0

    def __init__(self, *args: str, app: str = "examples.chat.app:app", env: dict[str, str] | None = None):
        self.port, self.email_port, self.standin_port = free_ports(3)
        command = [
            "up",
            app,
            "--http-port",
            str(self.port),
            "--email-port",
            str(self.email_port),
            "--slack-standin-port",
            str(self.standin_port),
            *([] if "--metrics-port" in args else ["--metrics-port", "0"]),
            *args,
        ]
        super().__init__(command, env, clean=True, ready=f"open http://127.0.0.1:{self.port}/")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
