"""The runner's one settings object.

Built once at start (``Settings.load``) and passed down; nothing reads the environment elsewhere.
Precedence: explicit overrides (CLI flags) > ``PROCVISION_RUNNER_*`` environment > the JSON config
file (``--config FILE``, else ``<root>/runner_config.json`` if it exists) > defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .store.layout import RootLayout


class Settings(BaseSettings):
    """Every tunable of the runner, with the unit in the name."""

    model_config = SettingsConfigDict(env_prefix="PROCVISION_RUNNER_", extra="forbid", frozen=True)

    # Where and how to serve.
    root: Path = Field(default=Path("algorithms"), description="Runtime root folder")
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    # Service manager. systemd (Type=notify) sets these without our prefix; both unset outside it.
    notify_socket: str | None = Field(default=None, validation_alias=AliasChoices("NOTIFY_SOCKET", "notify_socket"),
                                      description="sd_notify socket (a path, or @name for an abstract one)")
    watchdog_usec: int | None = Field(default=None, ge=1, validation_alias=AliasChoices("WATCHDOG_USEC",
                                                                                        "watchdog_usec"),
                                      description="systemd watchdog interval; the daemon pings at half of it")
    watchdog_pid: int | None = Field(default=None, validation_alias=AliasChoices("WATCHDOG_PID", "watchdog_pid"),
                                     description="the process the watchdog is meant for (another: no pings)")
    auth_enabled: bool = True
    # Package trust.
    # auto: require when <root>/trust/ holds a key or CA certificate, else warn. require: only packages
    # signed by a trusted key/CA install and activate. warn: unsigned installs go on, marked. off: no check.
    trust_mode: Literal["auto", "require", "warn", "off"] = "auto"
    token: str | None = Field(default=None, description="API bearer token; generated into <root>/.token if unset")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    watch_drop_folder: bool = True

    # Request limits. Every request body is capped while it streams in (413 before it is buffered).
    # JSON bodies (management API) and the JSON fields of /execute: size and nesting depth.
    max_json_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=64, ge=2, le=500)
    # One image file of /execute (image or guide_image); the whole /execute body may hold two.
    max_image_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Fast path. Local clients lease frame slots (shared memory they write frames into themselves)
    # and name them in /execute; bounded, leased per caller, reclaimed on expiry or client death.
    frame_slots_max: int = Field(default=8, ge=0, le=256)
    frame_slot_lease_s: float = Field(default=300.0, gt=0)
    # Also serve the API on this Unix socket (mode 0600), for local clients; None: TCP only.
    uds_path: Path | None = None
    # An idle keep-alive connection is closed after this long (clients reconnect; LocalClient does
    # so by itself). Longer keeps a slow camera loop's connection; each open one costs a socket.
    http_keep_alive_s: int = Field(default=5, ge=1, le=3600)
    # A raw image body (application/x-npy, or pixels + X-Image-Shape) is written by the socket
    # straight into the worker's shared memory (api/streaming/socket_to_memory.py). Off: it comes
    # through uvicorn's messages and is copied, as multipart bodies are (for diagnosis; slower).
    upload_socket_to_memory: bool = True

    # Worker protocol deadlines (names as in the ProcVision runner_config.json).
    pre_execute_timeout_ms: int = Field(default=3000, gt=0)
    execute_timeout_ms: int = Field(default=5000, gt=0)
    info_timeout_ms: int = Field(default=10000, gt=0)
    handshake_timeout_ms: int = Field(default=30000, gt=0)
    heartbeat_interval_ms: int = Field(default=5000, gt=0)
    heartbeat_grace_ms: int = Field(default=2000, gt=0)
    max_retries: int = Field(default=2, ge=0)
    max_defects: int = Field(default=20, ge=1)
    max_frame_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    # Supervision.
    workers_per_version: int = Field(default=1, ge=1, le=16)
    queue_max: int = Field(default=64, ge=1)
    restart_backoff_initial_ms: int = Field(default=500, gt=0)
    restart_backoff_max_ms: int = Field(default=30000, gt=0)
    restart_backoff_reset_after_s: float = Field(default=60.0, gt=0)
    crash_loop_max: int = Field(default=5, ge=1)
    crash_loop_window_s: float = Field(default=120.0, gt=0)
    shutdown_grace_s: float = Field(default=5.0, gt=0)
    log_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    log_backups: int = Field(default=3, ge=0)
    stderr_tail_lines: int = Field(default=200, ge=1)
    # Pre-faulted shared memory segments each worker keeps ready for call images (0: every call
    # creates its segment inline, ~2-3 ms more per 1920x1200 RGB image); each costs one image of RAM.
    shm_spares_per_worker: int = Field(default=2, ge=0, le=16)

    # Worker containment.
    # Memory limit of each worker's process tree in MB (0: none); a version can get its own at
    # activation. Enforced by the kernel: a memory cgroup (v2, else v1) where the daemon may create
    # one, else RLIMIT_DATA per process; ``worker_memory_mechanism`` picks one first ("auto": that order).
    worker_memory_limit_mb: int = Field(default=4096, ge=0)
    worker_memory_mechanism: Literal["auto", "cgroup-v2", "cgroup-v1", "rlimit-data", "none"] = "auto"
    # Environment variables workers inherit beyond the built-in allow-list (names, or prefixes
    # ending in "*"); PROCVISION_* and PROC_* never pass.
    worker_env_allow: list[str] = Field(default_factory=list)

    # Installing.
    installer: Literal["auto", "uv", "pip"] = "auto"
    python: str | None = Field(default=None, description="Interpreter for new venvs; default: matched to the package")
    uv_cache_dir: Path | None = None
    venv_timeout_s: float = Field(default=120.0, gt=0)
    pip_timeout_s: float = Field(default=600.0, gt=0)
    smoke_timeout_s: float = Field(default=120.0, gt=0)
    smoke_test: bool = True
    max_zip_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_zip_entries: int = Field(default=20000, gt=0)
    max_uncompressed_bytes: int = Field(default=4 * 1024**3, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1)
    drop_stable_s: float = Field(default=1.0, ge=0)
    retain_versions: int = Field(default=3, ge=1)
    # Whole-archive expansion bound (overlapping-entry zip bombs keep each entry under the per-entry ratio).
    max_total_compression_ratio: float = Field(default=100.0, gt=1)

    # Worker sandbox.
    # auto: box every worker with the best mechanism that works here (bubblewrap), else run unboxed
    # and say so loudly; require: refuse to start workers (and smoke tests) that cannot be boxed;
    # off: never box.
    sandbox: Literal["auto", "require", "off"] = "auto"
    sandbox_bwrap: str = Field(default="bwrap", description="bubblewrap executable (name on PATH or path)")
    sandbox_network: list[str] = Field(
        default_factory=list, description="Versions whose workers may use the network: 'name' or 'name@version'")
    sandbox_devices: list[str] = Field(
        default_factory=list, description="Device paths or globs shown to every boxed worker, e.g. /dev/nvidia*")
    sandbox_worker_user: str = Field(
        default="procvision-worker", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$",
        description="User (name or numeric uid) boxed workers run as when the daemon runs as root")

    # Console (the operator's page at /). Recent calls are kept in memory, with a small thumbnail
    # (<= console_thumbnail_width px wide) for at most console_thumbnails_per_s calls a second (0:
    # none); health charts cover console_health_window_s seconds.
    # Sign-ins are kept in memory (at most console_sessions_max), each valid console_session_ttl_s.
    console_enabled: bool = True
    console_recent_calls: int = Field(default=50, ge=1, le=1000)
    console_thumbnail_width: int = Field(default=160, ge=16, le=640)
    console_thumbnails_per_s: float = Field(default=10.0, ge=0, le=1000)
    console_health_window_s: int = Field(default=600, ge=60, le=3600)
    console_session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    console_sessions_max: int = Field(default=64, ge=1, le=10000)

    # uv installs no bytecode: after publishing, compile the venv's site-packages in the background
    # (one core), so workers do not compile numpy & co. at every start; later versions link it.
    compile_bytecode: bool = True
    bytecode_timeout_s: float = Field(default=600.0, gt=0)

    @field_validator("sandbox_worker_user")
    @classmethod
    def _unprivileged_worker_user(cls, value: str) -> str:
        if value in ("0", "root"):
            raise ValueError("sandbox_worker_user must be an unprivileged user, not root")
        return value

    @field_validator("sandbox_devices")
    @classmethod
    def _device_paths(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith("/dev/") or ".." in item.split("/"):
                raise ValueError(f"sandbox_devices entries must be paths under /dev/, got {item!r}")
        return value

    # The daemon's own environment, read once when the settings are built: the base workers inherit
    # (allow-listed per worker). Not a setting; runner modules take it from here, not from os.environ.
    _inherited_env: dict[str, str] = PrivateAttr(default_factory=lambda: dict(os.environ))

    @property
    def inherited_environment(self) -> dict[str, str]:
        """The process environment as it was when these settings were built (a copy)."""
        return dict(self._inherited_env)

    def with_environment(self, environ: Mapping[str, str]) -> Settings:
        """These settings with ``environ`` as the inherited environment (what a test or an embedding
        program gives workers and install tools instead of this process's own)."""
        copy = self.model_copy()
        copy._inherited_env = dict(environ)
        return copy

    @property
    def layout(self) -> RootLayout:
        return RootLayout(self.root.resolve())

    @property
    def uv_cache(self) -> Path:
        return self.uv_cache_dir if self.uv_cache_dir is not None else self.layout.uv_cache

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The JSON file is injected by load() as the lowest-priority init values; see there.
        return (init_settings, env_settings)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from overrides > env > config file > defaults.

        ``overrides`` with value None are ignored, so CLI flags that were not given fall through.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        probe = cls.model_validate(given) if not config_file else None
        if config_file is None and probe is not None:
            candidate = RootLayout(Path(probe.root)).config_file
            config_file = candidate if candidate.is_file() else None
        file_values: dict[str, Any] = {}
        if config_file is not None:
            try:
                file_values = json.loads(Path(config_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot read config file {config_file}: {exc}") from exc
            if not isinstance(file_values, dict):
                raise ValueError(f"config file {config_file} must hold a JSON object")
        env_only = cls.model_validate({})  # env + defaults
        env_set = {name for name in cls.model_fields if name in env_only.model_fields_set}
        merged = {k: v for k, v in file_values.items() if k not in env_set}
        merged.update(given)
        return cls.model_validate(merged)
