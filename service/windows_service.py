r"""Running dmp-bridge as a Windows service: the thin, documented path.

Practice PCs mostly run Windows. The service control manager stops a service by calling
`SvcStop` from ANOTHER thread than the one running asyncio; the only safe way to stop the bridge
from there is to set its stop event through the loop (`loop.call_soon_threadsafe`), which gives
exactly the graceful stop of SIGTERM on Linux: no new file taken, the job in hand finishes for a
few seconds, the store is closed — the whole stop under 10 s (the SCM waits 20 s by default).

This module cannot be exercised on the Linux machines the project is tested on; what it relies
on — `ThreadSafeStop` and `run_bridge(config, stop=event)` — is tested there
(tests/test_graceful_stop.py). Registering the service (`dmp-bridge service install`) belongs to
the operator tooling; with pywin32 installed:

    python -m service.windows_service --startup auto install
    python -m service.windows_service config C:\chemin\dmp-bridge.toml
    sc.exe start dmp-bridge

Where the configuration is: under pywin32 the service runs in `pythonservice.exe` (in
site-packages\win32), so neither `sys.executable` nor the working folder says where the
installation is. `config PATH` stores the absolute path of the configuration in the service's
registration (`win32serviceutil.SetServiceCustomOption`: the value `config` of
HKLM\System\CurrentControlSet\Services\dmp-bridge\Parameters); `SvcDoRun` reads it back with
`GetServiceCustomOption` and refuses to start, with a message in the event log, when it is
missing. The pure parts (`config_command`, `stored_config_path`) are tested on Linux.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

SERVICE_NAME = "dmp-bridge"
CONFIG_OPTION = "config"  # the registry value (under the service's Parameters key)
CONFIG_VERB = "config"  # python -m service.windows_service config PATH


def config_command(argv: Sequence[str]) -> Path | None:
    """The configuration path of `config PATH` (argv without the program), made absolute; None
    for any other command line (install, start, remove…: pywin32's own verbs)."""
    if len(argv) != 2 or argv[0] != CONFIG_VERB:
        return None
    return Path(argv[1]).resolve()


def stored_config_path(value: object) -> Path:
    """The configuration the service runs with, from the value stored at install.

    Raises ValueError with a French message (written to the event log) when there is none or it
    is not an absolute path: the service must not guess where the installation is."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            "Le service dmp-bridge ne sait pas où est sa configuration : relancez, dans une "
            "console administrateur, « dmp-bridge service install --config "
            "C:\\chemin\\dmp-bridge.toml ».")
    path = Path(value.strip())
    if not path.is_absolute():
        raise ValueError(
            f"Le chemin de configuration enregistré pour le service ({value}) n'est pas absolu : "
            "relancez « dmp-bridge service install --config CHEMIN_COMPLET ».")
    return path


class ThreadSafeStop:
    """A stop request that any thread may make, for a bridge running in another thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._requested = threading.Event()

    def bind(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Called from the bridge's loop once it runs; honours a stop asked earlier."""
        self._loop, self._event = loop, event
        if self._requested.is_set():
            loop.call_soon_threadsafe(event.set)

    def request(self) -> None:
        """From any thread (the SCM's SvcStop, a tray icon, a test)."""
        self._requested.set()
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)


def run_until_stopped(config_path: Path, stop: ThreadSafeStop) -> None:
    """Run the bridge in this thread until `stop.request()` is called from another one."""
    from service.config import load_config
    from service.logs import configure_logging
    from service.runner import run_bridge

    config = load_config(config_path)
    configure_logging(config.log_path, config.logging.level, stderr=False)

    async def main() -> None:
        event = asyncio.Event()
        stop.bind(asyncio.get_running_loop(), event)
        await run_bridge(config, stop=event)

    asyncio.run(main())


if sys.platform == "win32":  # pragma: no cover - Windows only, see the module docstring
    import servicemanager  # type: ignore[import-not-found]
    import win32service  # type: ignore[import-not-found]
    import win32serviceutil  # type: ignore[import-not-found]

    class DmpBridgeService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = "dmp-bridge (alimentation du DMP)"
        _svc_description_ = "Envoie au DMP les documents déposés par le logiciel du cabinet."

        def __init__(self, args: list[str]) -> None:
            super().__init__(args)
            self._stop = ThreadSafeStop()

        def SvcStop(self) -> None:
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self._stop.request()

        def SvcDoRun(self) -> None:
            try:
                config = stored_config_path(
                    win32serviceutil.GetServiceCustomOption(self._svc_name_, CONFIG_OPTION))
            except ValueError as exc:
                servicemanager.LogErrorMsg(str(exc))
                return
            servicemanager.LogInfoMsg(f"dmp-bridge démarre avec {config}")
            run_until_stopped(config, self._stop)

    def _main(argv: list[str]) -> None:
        config = config_command(argv[1:])
        if config is None:  # install, start, stop, remove… (pywin32's verbs)
            win32serviceutil.HandleCommandLine(DmpBridgeService, argv=argv)
            return
        win32serviceutil.SetServiceCustomOption(SERVICE_NAME, CONFIG_OPTION, str(config))
        print(f"Configuration du service {SERVICE_NAME} : {config}")

    if __name__ == "__main__":
        _main(sys.argv)
