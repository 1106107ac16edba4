"""Model paths: a Hugging Face directory as is, or a GGUF file imported once into one.

Every command that takes a model (``--model``, ``model.path``) resolves it through
:func:`resolve_model`. A ``.gguf`` file (or a directory holding exactly one, and no
``config.json``) is dequantised by transformers and written as a standard directory (safetensors,
config, tokenizer with its chat template, generation config) under the cache
(``$RESEARCH_RL_CACHE`` or ``~/.cache/research-rl``), keyed by the file's path, size and mtime,
so only the first run pays for the conversion.

transformers refuses ``save_pretrained`` on a model it loaded from GGUF, so the import builds a
fresh model from the (unquantised) config and loads the dequantised weights into it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from research_rl.config import ConfigError

MARKER = "research-rl-import.json"  # written last: a directory without it is not finished

C = TypeVar("C")


class ModelImportError(ConfigError):
    """A GGUF file that cannot be turned into a transformers model (a ConfigError, so every
    command reports it as one line)."""


def cache_root() -> Path:
    env = os.environ.get("RESEARCH_RL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "research-rl"


def gguf_file(path: str | Path) -> Path | None:
    """The GGUF file ``path`` names (itself, or the only one in a directory that is not already a
    transformers directory); None when ``path`` is not a GGUF model."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".gguf":
        return p
    if p.suffix.lower() == ".gguf" and not p.exists():
        raise FileNotFoundError(f"{p}: GGUF file not found")
    if p.is_dir() and not (p / "config.json").is_file():
        found = sorted(p.glob("*.gguf"))
        if len(found) > 1:
            names = ", ".join(f.name for f in found)
            raise ModelImportError(f"{p}: holds several GGUF files ({names}); name one")
        if found:
            return found[0]
    return None


def cache_dir_for(gguf: Path) -> Path:
    st = gguf.stat()
    key = f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_root() / "models" / f"{gguf.stem}-{digest}"


def resolve_model(path: str) -> str:
    """A path transformers' ``from_pretrained`` can load: GGUF models are imported (once)."""
    gguf = gguf_file(path)
    if gguf is None:
        return path
    out = cache_dir_for(gguf)
    if not (out / MARKER).is_file():
        import_gguf(gguf, out)
    return str(out)


def with_resolved_model(cfg: C) -> C:
    """A copy of a config whose ``model.path`` (and ``model.tokenizer``, if any) is resolved."""
    model = cfg.model  # type: ignore[attr-defined]
    path = resolve_model(model.path)
    tok = getattr(model, "tokenizer", None)
    tok_resolved = resolve_model(tok) if tok else tok
    if path == model.path and tok_resolved == tok:
        return cfg
    cfg = cfg.model_copy(deep=True)  # type: ignore[attr-defined]
    cfg.model.path = path  # type: ignore[attr-defined]
    if tok:
        cfg.model.tokenizer = tok_resolved  # type: ignore[attr-defined]
    return cfg


def end_of_turn_token(tokenizer: Any) -> str | None:
    """The special token the chat template closes a message with (ChatML's ``<|im_end|>``)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    sentinel = "RESEARCHRLSENTINEL"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": sentinel}], tokenize=False, add_generation_prompt=False
    )
    after = text.split(sentinel, 1)[1] if sentinel in text else ""
    specials = sorted(set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab()), key=len)
    for tok in reversed(specials):  # the longest first: one may be a prefix of another
        if tok and after.startswith(tok):
            return tok
    return None


def import_gguf(gguf: str | Path, out: str | Path) -> Path:
    """Write ``gguf`` as a transformers directory at ``out`` (replaced atomically)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    gguf, out = Path(gguf), Path(out)
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf}: GGUF file not found")
    folder, name = str(gguf.parent), gguf.name
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
    except ValueError as err:
        if "not supported" in str(err):
            raise ModelImportError(
                f"{gguf}: transformers cannot read this GGUF architecture ({err}); convert it to "
                "a Hugging Face directory another way"
            ) from None
        raise ModelImportError(f"{gguf}: not a readable GGUF model ({err})") from None
    except Exception as err:  # a truncated or foreign file fails deep inside the gguf reader
        raise ModelImportError(f"{gguf}: not a readable GGUF file ({err})") from None
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight") and config.tie_word_embeddings}
    if set(missing) - tied or unexpected:
        raise ModelImportError(
            f"{gguf}: the dequantised weights do not fit the model's config "
            f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    model.tie_weights()
    del loaded

    eot = end_of_turn_token(tokenizer)
    if eot is not None and tokenizer.eos_token != eot:
        tokenizer.eos_token = eot
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    model.config.eos_token_id = eos_id
    model.config.pad_token_id = tokenizer.pad_token_id
    gen = GenerationConfig(
        bos_token_id=model.config.bos_token_id,
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.generation_config = gen

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        gen.save_pretrained(tmp)
        st = gguf.stat()
        info = {"source": str(gguf.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        (tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same import first
            if not (out / MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
