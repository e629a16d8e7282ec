"""Engine settings: plain values, picklable, handed to the worker process."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # the NVIDIA driver's folder per GPU it sees


def setting_name(role: str) -> str:
    """The setting that names a role's default model (e.g. FILL_MASK_MODEL)."""
    return f"{role.upper()}_MODEL"


def list_setting_name(role: str) -> str:
    """The setting that lists the models a user may pick for a role (the first is the default)."""
    return f"{role.upper()}_MODELS"


def cuda_gpu_present() -> bool:
    """Whether this machine has an NVIDIA GPU, known without importing torch (the bot process never does): a GPU
    in the driver's list, or nvidia-smi on the PATH (what the Makefile asks)."""
    return (NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())) or shutil.which("nvidia-smi") is not None


def runs_on_cuda(device: str) -> bool:
    """Whether the worker puts the models on a CUDA GPU with this DEVICE setting (auto: when one is present)."""
    return device.startswith("cuda") or (device == "auto" and cuda_gpu_present())


@dataclass(frozen=True)
class ModelInfo:
    """A model the worker holds in memory, as /status shows it."""

    model_id: str
    roles: tuple[str, ...]  # the roles it has answered for (one model may serve several)
    dtype: str
    megabytes: float
    replica: str = ""  # the Ray replica that holds it (its pid); "": the local worker


@dataclass(frozen=True)
class EngineConfig:
    models: dict[str, str] = field(default_factory=dict)  # role -> its default model (bot/settings.py fills it)
    alternatives: dict[str, tuple[str, ...]] = field(default_factory=dict)  # role -> more models a user may pick
    decoder_roles: frozenset[str] = frozenset()  # roles whose models generate text (the dtype they get, unloaded)
    memory_budget_mb: float = 0.0  # models held at once fit in this (least recently used go first); 0: no limit
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto (per role, from what the hardware runs natively) | float32 | float16 | bfloat16
    offline: bool = False  # never contact the Hub (HF_HUB_OFFLINE=1 in the worker)
    cache_dir: Path = Path(".cache/models")
    max_queue: int = 64  # waiting interactive requests before Busy
    max_per_user: int = 3  # queued + running per user
    max_background: int = 256  # waiting background (auto-tagging) requests
    max_batch_tokens: int = 8192  # estimated tokens in one batch
    max_batch_size: int = 32  # rows decoding at once; a forward pass of classification takes at most this many
    forward_rows: int = 0  # rows in one classification forward pass; 0: by device (passes.pass_shape)
    forward_tokens: int = 0  # tokens the scheduler puts in one classification pass; 0: by device
    profile_passes: bool = False  # time each unit's phases in the worker (bench/profile.py; profiling.py)
    generation_batching: str = "auto"  # auto | continuous | static (see tasks/generation.py)
    stall_timeout: float = 120.0  # seconds without progress before the worker is restarted (the upper bound)
    torch_threads: int = 0  # 0: torch's default (one per core)
    metrics_port: int = 0  # Prometheus metrics on this port (prometheus.py); 0: none
    metrics_host: str = "127.0.0.1"  # the address the metrics server binds
    log_level: str = "INFO"  # the worker's logging level (LOG_LEVEL)
    progress_bars: bool = True  # transformers' progress bars (loading weights) on the worker's stderr
    # Scaling out (README "Scaling out"): where units run.
    backend: str = "local"  # local (one worker process) | ray (Ray Serve replicas)
    ray_address: str = ""  # "": start a local Ray; "auto" or ray://host:port: join a running cluster
    ray_replicas: int = 2
    ray_gpus_per_replica: float = 0.0
    generation_backend: str = "local"  # local (the worker or replicas) | openai (an OpenAI-compatible server)
    openai_base_url: str = ""  # e.g. http://127.0.0.1:8000/v1
    openai_api_key: str = field(default="", repr=False)
    openai_model: str = ""
    openai_timeout: float = 60.0  # seconds to connect, and between two streamed chunks

    def streaming_batching(self) -> str:
        """What a new unseeded streaming request gets: "continuous" or "static" (GENERATION_BATCHING)."""
        return "continuous" if self.generation_batching == "auto" else self.generation_batching

    def allowed(self, role: str) -> tuple[str, ...]:
        """The models a request of `role` may name, the default first."""
        default = self.models.get(role, "")
        return tuple(dict.fromkeys([*([default] if default else []), *self.alternatives.get(role, ())]))
