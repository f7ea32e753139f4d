"""Provenance: where, on what and with what an execution or experiment ran.

:func:`capture_provenance` is called once per execution (``evalledger run``) and per
tracked experiment, and costs a few tens of milliseconds: packages come from
``importlib.metadata`` (no ``pip`` subprocess), the CPU from ``/proc/cpuinfo``, GPUs from
``/proc/driver/nvidia`` or, only when that is missing and it is on PATH, ``nvidia-smi -L``
(never from importing torch), data versions from the ``.dvc`` files and ``dvc.lock`` (read
as YAML, without importing DVC).

Environment variables are recorded only from an allow-list (:data:`ENV_PREFIXES`,
:data:`ENV_NAMES`, and the names or ``PREFIX_`` prefixes listed, comma-separated, in
``EVALLEDGER_PROVENANCE_ENV``), and every recorded value passes :mod:`evalledger.redact`:
secret-named variables (``*_KEY``, ``*_TOKEN``, ``*PASSWORD*``, ...) are redacted whole,
token-looking values and URL passwords whatever the name.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from evalledger.gitinfo import git_diff_hash
from evalledger.manifest import Provenance, utcnow
from evalledger.redact import REDACTED, is_secret_name, redact_text

__all__ = [
    "ENV_NAMES",
    "ENV_PREFIXES",
    "capture_provenance",
    "data_versions",
    "detect_accelerators",
    "git_diff_hash",
    "installed_packages",
    "selected_env",
]

#: Prefixes of environment variables worth recording: accelerators and math libraries,
#: Python and its environments, ML libraries and model providers, schedulers, evalledger.
ENV_PREFIXES = (
    "CUDA_", "NVIDIA_", "NCCL_", "CUDNN_", "ROCM_", "HIP_", "HSA_", "TPU_", "XLA_", "JAX_",
    "TF_CPP_", "TF_ENABLE_", "TF_GPU_", "TF_FORCE_GPU_", "TF_XLA_", "TF_DETERMINISTIC_",
    "TORCH_", "PYTORCH_", "OMP_", "MKL_", "OPENBLAS_", "KMP_",
    "PYTHON", "CONDA_", "PIP_", "UV_",
    "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "DATASETS_", "ACCELERATE_",
    "VLLM_", "WANDB_", "MLFLOW_", "DVC_", "OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_",
    "SLURM_", "EVALLEDGER_",
)  # fmt: skip
#: Single environment variables worth recording. Not PATH: long, and says little.
ENV_NAMES = frozenset({
    "VIRTUAL_ENV", "LANG", "LC_ALL", "TZ", "CI",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "GITHUB_SHA", "GITHUB_REF", "GITHUB_RUN_ID", "GITHUB_WORKFLOW", "GITHUB_REPOSITORY",
})  # fmt: skip
#: Names or ``PREFIX_`` prefixes (comma-separated) to record on top of the allow-list.
EXTRA_ENV_VAR = "EVALLEDGER_PROVENANCE_ENV"

_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
_SUBPROCESS_TIMEOUT = 2.0


def capture_provenance(root: Path) -> Provenance:
    """The provenance of a run starting now in the project at ``root``."""
    return Provenance(
        captured_at=utcnow(),
        user=_user(),
        hostname=socket.gethostname() or None,
        os=platform.platform(),
        python=platform.python_version(),
        executable=sys.executable or None,
        packages=installed_packages(),
        cpu=_cpu_model(),
        cpu_count=os.cpu_count(),
        memory_bytes=_memory_bytes(),
        accelerators=detect_accelerators(),
        data=data_versions(root),
        env=selected_env(),
    )


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_packages() -> dict[str, str]:
    """Installed distributions, canonical name -> version, as ``pip freeze`` lists them.

    Where several copies are installed, the first on ``sys.path`` wins (the one imported).
    Names and versions are read from the ``name-version.dist-info`` folder names, which is
    ~100 times faster than parsing every METADATA file; the metadata is read only for the
    rare layouts whose folder name lacks the version (some ``.egg-info``).
    """
    from importlib.metadata import distributions

    out: dict[str, str] = {}
    for dist in distributions():
        folder = getattr(dist, "_path", None)
        name = version = None
        if isinstance(folder, Path) and folder.suffix == ".dist-info":
            name, sep, version = folder.stem.partition("-")
            if not sep or "-" in version:
                name = version = None
        if not name or not version:
            try:
                name, version = dist.metadata["Name"], dist.version
            except Exception:
                continue
            if not name or not version:
                continue
        out.setdefault(_canonical(name), version)
    return dict(sorted(out.items()))


def _cpu_model() -> str | None:
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f,
    ):
        for line in f:
            key, _, value = line.partition(":")
            # x86: "model name"; some ARM kernels: "Hardware", "Processor" or "cpu model".
            if key.strip().lower() in ("model name", "cpu model", "hardware", "processor"):
                value = value.strip()
                if value and not value.isdigit():  # x86's "processor : 0" is an index
                    return value
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT, check=False,
            )  # fmt: skip
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
    # platform.processor() may run `uname -p`; machine() is a cached uname field.
    return platform.machine() or None


def _memory_bytes() -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on Windows or macOS' older Pythons
        return None
    return pages * size if pages > 0 and size > 0 else None


def detect_accelerators() -> list[str]:
    """GPUs and other accelerators, e.g. ``GPU 0: NVIDIA A100-SXM4-80GB (0000:07:00.0)``.

    NVIDIA: the driver's ``/proc/driver/nvidia/gpus/*/information``; without it,
    ``nvidia-smi -L`` if on PATH (2 s timeout); else ``/dev/nvidia<N>`` device files. AMD
    ROCm: ``/dev/kfd`` and the kernel's per-card product names. TPUs: ``/dev/accel*`` or
    ``/dev/vfio`` with ``TPU_NAME``. Apple silicon: its integrated GPU. Never imports a
    deep-learning library.
    """
    found = _nvidia_gpus()
    if Path("/dev/kfd").exists():
        names = []
        for card in sorted(Path("/sys/class/drm").glob("card[0-9]*/device/product_name")):
            with contextlib.suppress(OSError):
                names.append(card.read_text().strip())
        found += [f"AMD GPU: {n}" for n in names if n] or ["AMD ROCm device (/dev/kfd)"]
    accel = sorted(str(p) for p in Path("/dev").glob("accel[0-9]*"))
    if accel or os.environ.get("TPU_NAME"):
        found += [f"TPU ({p})" for p in accel] or [f"TPU {os.environ['TPU_NAME']}"]
    if sys.platform == "darwin" and platform.machine() == "arm64":
        found.append("Apple silicon GPU (Metal)")
    return found


def _nvidia_gpus() -> list[str]:
    gpus: list[str] = []
    with contextlib.suppress(OSError):
        for folder in sorted(_NVIDIA_PROC.iterdir()) if _NVIDIA_PROC.is_dir() else []:
            info = {}
            for line in (folder / "information").read_text().splitlines():
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
            if info.get("Model"):
                gpus.append(f"GPU {len(gpus)}: {info['Model']} ({folder.name})")
    if gpus:
        return gpus
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc = subprocess.run(
                [smi, "-L"], capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT,
                check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                # "GPU 0: NVIDIA A100 (UUID: GPU-...)": the UUID identifies the machine only.
                lines = [re.sub(r"\s*\(UUID: [^)]*\)", "", ln).strip()
                         for ln in proc.stdout.splitlines()]  # fmt: skip
                return [ln for ln in lines if ln.startswith("GPU")]
    devices = sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))
    return [f"NVIDIA GPU (/dev/{d})" for d in devices]


def selected_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment variables, redacted (see the module doc)."""
    env = dict(os.environ if environ is None else environ)
    prefixes = list(ENV_PREFIXES)
    names = set(ENV_NAMES)
    for entry in env.get(EXTRA_ENV_VAR, "").split(","):
        entry = entry.strip().rstrip("*")
        if entry.endswith("_"):
            prefixes.append(entry)
        elif entry:
            names.add(entry)
    out: dict[str, str] = {}
    for name in sorted(env):
        if name in names or name.startswith(tuple(prefixes)):
            value = env[name]
            out[name] = REDACTED if is_secret_name(name) and value else redact_text(value)
    return out


def data_versions(root: Path) -> dict[str, str]:
    """DVC-tracked data -> its DVC hash: ``.dvc`` files' outs and ``dvc.lock``'s deps.

    Paths are relative to ``root`` (posix). ``dvc.lock`` contributes its stages'
    dependencies (data, code) with their recorded md5, not params and not outputs (those
    are results). Unreadable files are skipped: provenance never fails a run.
    """
    out: dict[str, str] = {}
    for dvc_file in _dvc_files(root):
        data = _load_yaml(root / dvc_file)
        outs = data.get("outs") if isinstance(data, dict) else None
        for entry in outs if isinstance(outs, list) else []:
            _add_version(out, Path(dvc_file).parent, entry)
    lock = _load_yaml(root / "dvc.lock")
    stages = lock.get("stages") if isinstance(lock, dict) else None
    if isinstance(stages, dict):
        for stage in stages.values():
            deps = stage.get("deps") if isinstance(stage, dict) else None
            for entry in deps if isinstance(deps, list) else []:
                _add_version(out, Path(), entry)
    return dict(sorted(out.items()))


def _add_version(out: dict[str, str], base: Path, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return
    digest = entry.get("md5") or entry.get("etag") or entry.get("checksum")
    if isinstance(digest, str) and digest:
        path = os.path.normpath(base / entry["path"])
        out[Path(path).as_posix()] = digest


def _load_yaml(path: Path) -> Any:
    """A DVC file's data through the safe loader; None when missing or damaged."""
    from evalledger.errors import CorruptFileError
    from evalledger.safeload import MAX_DVC_FILE_BYTES, parse_yaml, read_bounded

    try:
        return parse_yaml(read_bounded(path, MAX_DVC_FILE_BYTES), max_bytes=MAX_DVC_FILE_BYTES)
    except (OSError, ValueError, CorruptFileError):
        return None


def _dvc_files(root: Path) -> list[str]:
    """``*.dvc`` files of the project, relative to ``root``.

    git's tracked and untracked-but-not-ignored ones; outside git, a walk that skips
    hidden folders.
    """
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
             "*.dvc", ":(exclude).dvc"],
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            return sorted({p for p in proc.stdout.split("\0") if p})
    except (OSError, subprocess.SubprocessError):
        pass
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        found += [os.path.relpath(Path(folder, f), root) for f in files if f.endswith(".dvc")]
    return sorted(found)
