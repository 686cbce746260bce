"""A trainable copy of the embedded model: SmolLM2-135M-Instruct in transformers, fp32.

transformers reads the shipped GGUF (with the ``gguf`` package) into a LlamaForCausalLM,
but flags it as quantized, and then neither ``save_pretrained`` nor the trainers take it.
So the weights are copied once into a fresh model built from the same config and saved
as a plain Hugging Face folder in genlab's cache (about 516 MiB; never committed). The
Q4_1 rounding of the GGUF is baked into those weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import platformdirs

from genlab.errors import ConfigError
from genlab.models.registry import entries, find_entry, get_backend
from genlab.torch_setup import prepare_torch

BASE_NAME = "smollm2-135m-instruct"


def cache_dir() -> Path:
    """genlab's cache: GENLAB_CACHE, else the user's cache directory."""
    value = os.environ.get("GENLAB_CACHE")
    return Path(value).expanduser() if value else Path(platformdirs.user_cache_dir("genlab"))


def base_model_dir(progress=None) -> Path:
    """Return the folder of the fp32 copy, building it from the GGUF on first use."""
    target = cache_dir() / BASE_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    prepare_torch()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConfigError("training needs genlab's training extras: pip install torch==2.13.0 'genlab[train]'") from exc
    from genlab.models import embedded_gguf

    gguf = embedded_gguf()
    if progress:
        progress(f"building a trainable copy of the embedded model in {target} (once)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The GGUF loader marks the config as quantized; the copy is plain fp32 weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = BASE_NAME
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=BASE_NAME + "-", dir=target.parent))
    # Written aside and renamed into place, so a half-written copy is never taken for a
    # finished one; a write that fails (a full disk, Ctrl-C) leaves no 0.5 GB behind.
    try:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)      # another process finished first
    return target


def has_weights(spec: str) -> bool:
    """True when genlab can load the spec's weights: local, hf:DIR, a trained folder."""
    if (Path(spec).expanduser() / "config.json").is_file():
        return True
    return any(entry.trainable and entry.matches(spec) for entry in entries())


def trainable_dir(spec: str | None) -> Path | None:
    """The folder of ``spec``'s weights (``hf:DIR`` or a folder), or None for the embedded
    model (``None``/``local``), whose copy is built on first use; refuses, without loading
    anything, a spec genlab cannot train."""
    if not spec or (not Path(spec).expanduser().is_dir() and find_entry(spec).name == "local"):
        return None
    if not has_weights(spec):
        forms = ", ".join(e.usage for e in entries() if e.trainable)
        raise ConfigError(f"'{spec}' has no weights genlab can train; use {forms} or a folder written by genlab tune")
    if spec.startswith("hf:"):
        get_backend(spec)    # refuses a folder that is not there or holds no model, as --model does
    return Path(spec.removeprefix("hf:")).expanduser()


def resolve_model_dir(spec: str | None, progress=None) -> Path:
    """``None``/``local``: the embedded model's copy; ``hf:DIR`` or a folder: that folder."""
    return trainable_dir(spec) or base_model_dir(progress)
