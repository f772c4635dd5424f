"""The machine a benchmark figure comes from, read from the machine itself.

Every benchmark script prints this line first (and `run_all.sh` keeps it in
``machine.txt``): the CPU model as ``lscpu`` gives it, the cores, the load average when
the script started (anything else running shows there), and the versions that decide
speed. A figure quoted without it cannot be compared with another.

    python benchmarks/machine.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version


def cpu_model() -> str:
    """``lscpu``'s "Model name" (``/proc/cpuinfo``'s where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    """The machine, its load and the versions, as one JSON-able dict."""
    versions = {}
    for package in ("tensorflow", "keras", "keras-hub", "nltk", "numpy", "torch", "jax"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), **versions}


def print_machine(stream=None) -> dict:
    """Print the machine line (``machine: {...}``; on standard error by default, so that a
    script's JSON on standard output stays JSON) and return it."""
    import sys

    machine = describe()
    print("machine: " + json.dumps(machine), file=stream or sys.stderr, flush=True)
    return machine


if __name__ == "__main__":
    import sys

    print_machine(sys.stdout)
