"""Algorithm doubles, written as the source of an algorithm module (what a package or project holds).

Tests that need an algorithm with one particular behaviour do not write a whole ``BaseAlgorithm``
subclass: ``algorithm_source`` writes the class around the bodies that matter (the rest answers OK),
and the factories below name the doubles several test files share. Workers import these modules in
their own venv, so a double can use only the SDK, numpy and the standard library, never ``tests``.

The package-level doubles (the brightness judge every package test installs, the routing, supervision
and SDK-adapter algorithms whose behaviour ``user_params`` choose) are built with ``algorithm_source``
next to their fixtures: tests/support/packages.py, tests/support/routing_fixtures.py,
tests/runner/supervision_support.py and tests/sdk/conftest.py.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal


def algorithm_info(name: str = "algo", version: str = "1.0.0", pids: Iterable[str] = ("P1",)) -> dict[str, Any]:
    """What get_info returns for a one-step algorithm (matches ``packages.manifest_for``'s manifest)."""
    return {"name": name, "version": version, "supported_pids": list(pids),
            "steps": [{"index": 1, "name": "inspect", "params": []}]}


#: The info of a double that does not care about it.
DEFAULT_INFO: Mapping[str, Any] = algorithm_info()

#: Execute body of a double that passes every part.
RETURN_OK = 'return {"status": "OK", "message": "", "data": {"result_status": "OK", "defect_rects": []}}'
#: Pre-execute body of a double with nothing to prepare.
RETURN_READY = 'return {"status": "OK", "message": "ready", "data": {}}'

#: ``phase``: our SDK and the public 0.0.x SDK (get_info, pre_execute, execute on a shared-memory
#: image); ``execute_only``: the public 0.3.x SDK (one execute on decoded images, no get_info).
Style = Literal["phase", "execute_only"]

_PHASE_ARGS = "self, step_index, pid, session, user_params, shared_mem_id, image_meta"
_EXECUTE_ONLY_ARGS = "self, step_index, step_desc, cur_image, guide_image, guide_info"


def _body(code: str, indent: int) -> str:
    return textwrap.indent(textwrap.dedent(code).strip("\n"), " " * indent)


def algorithm_source(*, execute: str = RETURN_OK, pre_execute: str = RETURN_READY,
                     info: Mapping[str, Any] | str = DEFAULT_INFO, sdk_names: Iterable[str] = (),
                     imports: str = "", prelude: str = "", methods: str = "", class_name: str = "Algorithm",
                     style: Style = "phase") -> str:
    """The source of a module defining one ``BaseAlgorithm`` subclass named ``class_name``.

    ``execute`` and ``pre_execute`` are method bodies (written at any indentation); they see the
    SDK's arguments by their usual names. ``info`` is what get_info returns: a mapping (written as a
    literal) or a Python expression. ``sdk_names`` are imported from the SDK besides BaseAlgorithm;
    ``imports`` and ``prelude`` are module code before the class (a prelude runs at import, in the
    worker); ``methods`` are further methods (hooks, helpers) written at class level.
    """
    names = ", ".join(["BaseAlgorithm", *sdk_names])
    module = [textwrap.dedent(imports).strip("\n"), f"from procvision_algorithm_sdk import {names}",
              textwrap.dedent(prelude).strip("\n")]
    parts = ["\n\n".join(part for part in module if part), "", "", f"class {class_name}(BaseAlgorithm):"]
    if methods:
        parts += [_body(methods, 4), ""]
    if style == "phase":
        info_text = info if isinstance(info, str) else repr(dict(info))
        parts += ["    def get_info(self):", f"        return {info_text}", "",
                  f"    def pre_execute({_PHASE_ARGS}):", _body(pre_execute, 8), "",
                  f"    def execute({_PHASE_ARGS}):", _body(execute, 8)]
    else:
        parts += [f"    def execute({_EXECUTE_ONLY_ARGS}):", _body(execute, 8)]
    return "\n".join(parts) + "\n"


def memory_hog(info: Mapping[str, Any] = DEFAULT_INFO, *, until_stopped: bool = False) -> str:
    """An algorithm whose execute, when ``user_params["hog"]`` is set, keeps 64 MB blocks (written,
    so really resident): ``user_params["blocks"]`` of them (default 200), or without end when
    ``until_stopped``, so only a memory limit can stop it. Otherwise it passes and says its pid and
    how many blocks it holds."""
    grow = ("while True:" if until_stopped
            else 'for _ in range(int(user_params.get("blocks", 200))):')
    return algorithm_source(
        info=info, imports="import os", prelude="_BLOCKS = []",
        pre_execute='return {"status": "OK", "message": "", "data": {"pid": os.getpid()}}',
        execute=f'''
            if user_params.get("hog"):
                {grow}
                    _BLOCKS.append(bytearray(b"\\x01") * (64 << 20))
            return {{"status": "OK", "message": "", "data": {{"result_status": "OK", "defect_rects": [],
                                                            "pid": os.getpid(), "blocks": len(_BLOCKS)}}}}
        ''')


def child_spawner(record: Path, info: Mapping[str, Any] = DEFAULT_INFO) -> str:
    """An algorithm that starts two long-sleeping children at import, one in the worker's process
    group and one escaped into a session of its own (only a cgroup catches that one), and appends
    "<worker pid> <child pid> <escaped pid>" to ``record`` for each worker that imports it. Execute
    exits the worker (status 9) when ``user_params["crash"]`` is set."""
    return algorithm_source(
        info=info, imports="import os\nimport subprocess\nimport sys",
        prelude=f'''
            _SLEEP = [sys.executable, "-c", "import time; time.sleep(3600)", "pv-test-child"]
            _CHILD = subprocess.Popen(_SLEEP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            _ESCAPED = subprocess.Popen(_SLEEP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        start_new_session=True)
            with open({str(record)!r}, "a", encoding="utf-8") as fh:
                fh.write(f"{{os.getpid()}} {{_CHILD.pid}} {{_ESCAPED.pid}}\\n")
        ''',
        execute=f'''
            if user_params.get("crash"):
                os._exit(9)
            {RETURN_OK}
        ''')


def recorded_children(record: Path) -> list[tuple[int, int, int]]:
    """What ``child_spawner`` recorded: (worker, child, escaped child) per worker that imported it."""
    if not record.exists():
        return []
    rows = [line.split() for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(int(a), int(b), int(c)) for a, b, c in rows]
