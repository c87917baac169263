"""Importing any module of services/ starts nothing and reads no environment: every module
is imported in a fresh interpreter whose environment holds only poisoned RADAR_* values
(any settings read fails), where `os.environ` reports each read made from this
repository's code, and where opening a connection, starting a thread or a process, running
an event loop, building a Faust app, a Kafka client or a spaCy pipeline raises."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import services
from shared.settings import env_vars

ROOT = Path(__file__).resolve().parents[2]

#: Run in the child: poison, import each module named on the command line, print a JSON
#: report {module: error} plus the environment reads made from ROOT's code.
PROBE = r'''
import json, os, sys, traceback

OURS = tuple(os.path.join(folder, "") for folder in json.loads(sys.argv[1]))
reads = []


class WatchedEnviron(dict):
    def _note(self, key):
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.endswith("os.py"):
            frame = frame.f_back
        if frame is not None and frame.f_code.co_filename.startswith(OURS):
            reads.append(f"{frame.f_code.co_filename}:{frame.f_lineno} reads {key}")

    def __getitem__(self, key):
        self._note(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._note(key)
        return dict.get(self, key, default)

    def __contains__(self, key):
        self._note(key)
        return dict.__contains__(self, key)


def poisoned(what):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"import-time side effect: {what}")
    return refuse


import asyncio, socket, subprocess, threading
socket.socket.connect = poisoned("socket connect")
socket.socket.connect_ex = poisoned("socket connect")
socket.create_connection = poisoned("socket connect")
threading.Thread.start = poisoned("thread start")
subprocess.Popen.__init__ = poisoned("process start")
os.fork = poisoned("fork")
asyncio.BaseEventLoop.run_until_complete = poisoned("event loop run")
asyncio.BaseEventLoop.run_forever = poisoned("event loop run")
for target, attr in (("faust", "App"), ("aiokafka", "AIOKafkaProducer"),
                     ("aiokafka", "AIOKafkaConsumer"), ("aiokafka.admin",
                                                        "AIOKafkaAdminClient")):
    cls = getattr(__import__(target, fromlist=[attr]), attr)
    cls.__init__ = poisoned(f"{target}.{attr} built")
import spacy
spacy.load = poisoned("spaCy pipeline loaded")
os.environ = WatchedEnviron(os.environ)

errors = {}
for name in sys.argv[2:]:
    try:
        __import__(name)
    except BaseException:  # a settings error is a SystemExit
        errors[name] = traceback.format_exc(limit=-3)
print(json.dumps({"errors": errors, "reads": sorted(set(reads))}))
'''


def service_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(services.__path__, "services."))


def probe(modules: list[str], watched: list[Path], path: list[Path]) -> dict:
    """Import `modules` in the poisoned child; report errors and the environment reads
    made from files under `watched`."""
    env = {name: "poison" for name in env_vars()}  # any settings load raises
    env["PYTHONPATH"] = ":".join(str(p) for p in path)
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps([str(w) for w in watched]),
                           *modules], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_service_module_imports_without_side_effects() -> None:
    modules = service_modules()
    assert {"services.aggregator.app", "services.aggregator.views",
            "services.ingestor.service", "services.cli.main"} <= set(modules)
    report = probe(modules, watched=[ROOT / "services", ROOT / "shared"], path=[ROOT])
    assert report["errors"] == {}, "\n".join(f"{m}:\n{e}" for m, e in report["errors"].items())
    assert report["reads"] == []


PLANTED = {
    "settings_at_import": "from shared.settings import AggregatorSettings, load\n"
                          "SETTINGS = load(AggregatorSettings)\n",
    "connects_at_import": "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
    "thread_at_import": "import threading\nthreading.Thread(target=print).start()\n",
    "app_at_import": "import faust\napp = faust.App('x')\n",
    "loop_at_import": "import asyncio\nasyncio.run(asyncio.sleep(0))\n",
}


def test_the_probe_catches_work_at_import(tmp_path: Path) -> None:
    package = tmp_path / "planted"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, code in PLANTED.items():
        (package / f"{name}.py").write_text(code)
    (package / "reads_env.py").write_text("import os\nLEVEL = os.environ.get('RADAR_X')\n")
    (package / "harmless.py").write_text("def f():\n    import os\n    return os.environ\n")
    report = probe([f"planted.{name}" for name in [*PLANTED, "reads_env", "harmless"]],
                   watched=[package], path=[ROOT, tmp_path])
    assert set(report["errors"]) == {f"planted.{name}" for name in PLANTED}
    assert [r.split(" reads ")[1] for r in report["reads"]] == ["RADAR_X"]
