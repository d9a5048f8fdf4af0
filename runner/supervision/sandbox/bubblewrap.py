"""Boxing a worker with bubblewrap (``bwrap``, Debian package ``bubblewrap``, the sandbox under Flatpak).

As root, bwrap builds the box (own mount, pid, ipc, uts, cgroup and, unless allowed, network
namespaces) and ``setpriv`` (util-linux) then drops to the unprivileged worker user with no
capabilities, an empty bounding set and no-new-privileges before Python starts. As an ordinary
user, bwrap uses a user namespace instead and the worker keeps the daemon's uid. Either way bwrap
loads the seccomp filter (``seccomp.py``) last, just before the worker's command starts; a shell
opens it on fd 3 and ``exec``s bwrap, since the worker's spawn passes no extra descriptors.

The box dies with its monitor: bwrap runs with ``--die-with-parent`` under coreutils ``timeout 0``
(no time limit; it only waits, forwards SIGTERM/SIGINT and exits as bwrap did). A parent-death signal
fires when the parent *thread* ends, so bwrap must not be the direct child of the daemon thread that
spawned it; and since the monitor cannot signal a process that switched users, only bwrap's own init
(still root) can take the worker down with it. Killing the pid the runner shows (``timeout``'s) thus
kills the whole box. ``--new-session`` is not used: the worker is already a session leader without a
terminal (the client starts it with ``start_new_session``) and the runner signals that process group.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from procvision_algorithm_sdk.shared_memory import SHM_DIR_ENV
from runner.config import Settings
from runner.errors import PackageErrorCode, RunnerError

from .base import BoxedCommand, BoxRequest, Probe, Protections, Sandbox
from .mounts import device_paths, nested_last, system_plan
from .python_paths import interpreter_folders
from .seccomp import seccomp_filter
from .users import WorkerUser, resolve_worker_user

PROBE_TIMEOUT_S = 15.0
#: Environment variables of the daemon's settings: never shown to a boxed worker.
DAEMON_ENV_PREFIX = "PROCVISION_RUNNER_"
_SWITCH_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def _namespace_options(as_root: bool, network: bool) -> list[str]:
    options = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        options.append("--unshare-net")
    if not as_root:
        # An ordinary user needs a user namespace to build the box at all; the worker must not make
        # nested ones (to rearrange its mounts) - bubblewrap >= 0.8.
        options += ["--unshare-user", "--disable-userns"]
    return options


def _drop_privileges(setpriv: str, user: WorkerUser) -> list[str]:
    """setpriv's command prefix: become ``user`` with no groups, no capabilities, no new privileges."""
    return [setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
            "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]


def _with_filter(bwrap_argv: list[str], seccomp: Path | None) -> list[str]:
    """``bwrap_argv`` with the seccomp program on fd 3: the worker's spawn passes no extra descriptors,
    so a shell opens the file and becomes bwrap (``exec``: no extra process)."""
    if seccomp is None:
        return bwrap_argv
    return ["/bin/sh", "-c", 'exec "$@" 3<"$0"', str(seccomp), bwrap_argv[0], "--seccomp", "3", *bwrap_argv[1:]]


@functools.lru_cache(maxsize=8)
def probe_bwrap(executable: str, as_root: bool, setpriv: str | None, seccomp: Path | None) -> Probe:
    """Run a trivial boxed command the way workers will be run. Cached: a machine fact per process."""
    argv = [executable, *_namespace_options(as_root, network=False), *system_plan(False).args, "--cap-drop", "ALL"]
    if as_root and setpriv:
        argv += [arg for cap in _SWITCH_CAPS for arg in ("--cap-add", cap)]
        argv += ["--", *_drop_privileges(setpriv, WorkerUser(65534, 65534, "probe")), "/bin/true"]
    else:
        argv += ["--", "/bin/true"]
    argv = _with_filter(argv, seccomp)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Probe(False, f"bubblewrap did not finish a test box within {PROBE_TIMEOUT_S:g} s")
    except OSError as exc:
        return Probe(False, f"bubblewrap cannot be run: {exc}")
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        hint = "" if as_root else " (unprivileged user namespaces may be disabled: user.max_user_namespaces)"
        return Probe(False, f"bubblewrap failed a test box (exit {done.returncode}): "
                            f"{why[-1] if why else 'no output'}{hint}")
    return Probe(True)


class BubblewrapSandbox(Sandbox):
    """Each worker in its own bwrap box; see the module docstring."""

    name = "bubblewrap"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.executable = shutil.which(settings.sandbox_bwrap)
        self.as_root = os.geteuid() == 0
        self.setpriv = shutil.which("setpriv") if self.as_root else None
        self.timeout = shutil.which("timeout")
        self.seccomp = seccomp_filter(settings.layout.sandbox_dir)
        self.user = resolve_worker_user(settings.sandbox_worker_user) if self.setpriv else None

    def probe(self) -> Probe:
        if self.executable is None:
            return Probe(False, f"bubblewrap is not installed (no {self.settings.sandbox_bwrap!r} found); "
                                "install the Debian package 'bubblewrap'")
        return probe_bwrap(self.executable, self.as_root, self.setpriv, self.seccomp.path)

    def network_allowed(self, request: BoxRequest) -> bool:
        allowed = self.settings.sandbox_network
        return request.name in allowed or f"{request.name}@{request.version}" in allowed

    def protections(self, request: BoxRequest) -> Protections:
        if self.user is not None:
            user, separate = self.user.label, True
        elif self.as_root:
            user, separate = "root without capabilities (setpriv missing: install util-linux)", False
        else:
            user, separate = "the daemon's user (cannot switch users: not root)", False
        return Protections(
            mechanism=self.name, filesystem=True, processes=True,
            network="allowed" if self.network_allowed(request) else "isolated",
            user=user, separate_user=separate, no_new_privileges=True, capabilities_dropped=True,
            seccomp=self.seccomp.path is not None,
            devices=tuple(str(p) for p in device_paths(self.settings.sandbox_devices)), reason=self.seccomp.reason)

    def segment_dir(self, work_dir: Path) -> Path | None:
        # The worker's private folder itself: the only image folder its box shows (segment files
        # are named pvshm-*, the public dialects' files pvimg-*, so they never clash).
        return work_dir

    def _prepare(self, work_dir: Path) -> Path:
        """The worker's private folder: the runner writes into it, only this worker's user reads it."""
        segments = work_dir
        try:
            segments.mkdir(parents=True, exist_ok=True)
            if self.user is not None:
                # setgid: every segment the runner creates gets the worker's group (mode 0640).
                os.chown(segments, -1, self.user.gid)
                os.chmod(segments, 0o2750)
            else:
                os.chmod(segments, 0o700)
        except OSError as exc:
            raise RunnerError(PackageErrorCode.SANDBOX_FAILED,
                              f"cannot prepare the worker's private folder {segments}: {exc}",
                              path=str(segments)) from exc
        return segments

    def wrap(self, argv: Sequence[str], env: Mapping[str, str], request: BoxRequest) -> BoxedCommand:
        if self.executable is None:
            raise RunnerError(PackageErrorCode.SANDBOX_UNAVAILABLE, self.probe().reason)
        protections = self.protections(request)
        network = protections.network == "allowed"
        work_dir = Path(os.path.realpath(request.work_dir))
        segments = self._prepare(work_dir)
        plan = system_plan(network)
        readable = [*interpreter_folders(request.python), Path(os.path.realpath(request.package_dir))]
        for folder in nested_last([p for p in readable if not plan.covered(p)]):
            plan.bind(folder)
        for hidden in request.hidden:
            real = Path(os.path.realpath(hidden))
            if plan.covered(real):
                plan.tmpfs(real, "0755")
        # Hiding may have covered a folder shown above (a package under a hidden root): show it again.
        for folder in nested_last([p for p in readable if not plan.covered(p)]):
            plan.bind(folder)
        # The interpreter is started by the path it was given: through the version's venv link.
        venv_link = Path(os.path.abspath(request.python)).parent.parent
        if not plan.covered(venv_link):
            plan.bind(venv_link, source=Path(os.path.realpath(venv_link)))
        plan.bind(work_dir, writable=True)
        for device in protections.devices:
            plan.device(Path(device))
        options = [self.executable, *_namespace_options(self.as_root, network), *plan.args,
                   "--chdir", str(os.path.realpath(request.package_dir)), "--cap-drop", "ALL",
                   *(["--die-with-parent"] if self.timeout else [])]
        # The daemon's own settings (PROCVISION_RUNNER_TOKEN may hold the API token) stay outside.
        boxed_env = {k: v for k, v in env.items() if not k.startswith(DAEMON_ENV_PREFIX)}
        boxed_env.update({"HOME": "/tmp", "TMPDIR": "/tmp", SHM_DIR_ENV: str(segments)})
        monitor = [self.timeout, "0"] if self.timeout else []
        if self.user is not None and self.setpriv is not None:
            options += [arg for cap in _SWITCH_CAPS for arg in ("--cap-add", cap)]
            command = [*monitor, *_with_filter([*options, "--", *_drop_privileges(self.setpriv, self.user), *argv],
                                               self.seccomp.path)]
            boxed_env.update({"USER": self.settings.sandbox_worker_user,
                              "LOGNAME": self.settings.sandbox_worker_user})
        else:
            command = [*monitor, *_with_filter([*options, "--", *argv], self.seccomp.path)]
        return BoxedCommand(command, boxed_env, segments, protections)
