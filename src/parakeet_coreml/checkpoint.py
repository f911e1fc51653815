"""Reading and writing ``.nemo`` checkpoints without NeMo.

A ``.nemo`` file is a tar (old ones gzipped) holding ``model_config.yaml``,
``model_weights.ckpt`` (a ``torch.save`` of the state dict) and artifacts named
``<uuid>_<basename>`` that the config points at with ``nemo:<member>``. We read exactly
those three things, so loading needs only torch, PyYAML and SentencePiece.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
import yaml

from .config import ModelConfig, parse_model_config
from .errors import CheckpointError, UnsupportedModelError
from .tokenizer import Tokenizer

CONFIG_MEMBER = "model_config.yaml"
WEIGHTS_MEMBER = "model_weights.ckpt"


@dataclass
class Checkpoint:
    """Everything the port needs from a checkpoint: config, weights and tokenizer."""

    config: ModelConfig
    raw_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    source: str
    model_id: str | None = None
    _sha256: str | None = field(default=None, repr=False)

    @property
    def path(self) -> Path | None:
        p = Path(self.source)
        return p if p.exists() else None

    def sha256(self) -> str | None:
        """Digest of the source file (folders and ids have none); computed on first use."""
        if self._sha256 is None and self.path is not None and self.path.is_file():
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            self._sha256 = h.hexdigest()
        return self._sha256


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def _load_weights(fileobj: IO[bytes], where: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(fileobj, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged zip
        raise CheckpointError(
            f"{where}: {WEIGHTS_MEMBER} is truncated or corrupt ({type(e).__name__}: {e})"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{where}: {WEIGHTS_MEMBER} does not hold a state dict of tensors")
    return dict(obj)


def _parse_config(text: bytes, where: str) -> tuple[dict[str, Any], ModelConfig]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CheckpointError(f"{where}: {CONFIG_MEMBER} is not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where}: {CONFIG_MEMBER} is not a mapping")
    try:
        return raw, parse_model_config(raw)
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"{where}: {e}") from None


def _load_tokenizer(data: bytes, where: str, member: str) -> Tokenizer:
    try:
        return Tokenizer(data)
    except Exception as e:
        raise CheckpointError(f"{where}: tokenizer {member} is not a SentencePiece model ({e})") from None


def _check_vocab(cfg: ModelConfig, tok: Tokenizer, where: str) -> None:
    if tok.vocab_size != cfg.vocab_size:
        raise CheckpointError(
            f"{where}: tokenizer has {tok.vocab_size} pieces but the decoder vocabulary is "
            f"{cfg.vocab_size}"
        )


def _read_archive(path: Path) -> Checkpoint:
    where = str(path)
    try:
        tar = tarfile.open(path, "r:*")
    except tarfile.ReadError:  # its message lists every compression tried, one per line
        raise CheckpointError(f"{where}: not a .nemo archive (not a tar file)") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CheckpointError(f"{where}: not a .nemo archive (not a readable tar file: {e})") from None
    with tar:
        try:
            members = {_member_name(m.name): m for m in tar.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError, OSError) as e:
            raise CheckpointError(f"{where}: archive is truncated or corrupt ({e})") from None

        def read(name: str) -> IO[bytes]:
            m = members.get(name)
            if m is None:
                raise CheckpointError(f"{where}: archive has no {name} member")
            f = tar.extractfile(m)
            assert f is not None
            return f

        raw, cfg = _parse_config(read(CONFIG_MEMBER).read(), where)
        tok_name = cfg.tokenizer_member
        if tok_name not in members:  # older configs hold a plain path: match on basename
            matches = [n for n in members if n.endswith("_" + tok_name) or n == tok_name]
            if not matches:
                raise CheckpointError(f"{where}: archive has no tokenizer member {tok_name!r}")
            tok_name = matches[0]
        tokenizer = _load_tokenizer(read(tok_name).read(), where, tok_name)
        _check_vocab(cfg, tokenizer, where)
        weights = read(WEIGHTS_MEMBER)
        m = members[WEIGHTS_MEMBER]
        plain = isinstance(tar.fileobj, io.BufferedReader)
        if plain and m.offset_data + m.size > path.stat().st_size:
            raise CheckpointError(f"{where}: archive is truncated inside {WEIGHTS_MEMBER}")
        state = _mmap_weights(path, m, weights) if plain else None
        if state is None:
            # gzip streams cannot seek backwards cheaply: decompress once
            weights = tar.extractfile(m) if plain else io.BytesIO(weights.read())  # type: ignore[assignment]
            state = _load_weights(weights, where)
    return Checkpoint(cfg, raw, state, tokenizer, source=str(path))


def _mmap_weights(path: Path, member: tarfile.TarInfo, fileobj: IO[bytes]) -> dict[str, torch.Tensor] | None:
    """Zero-copy load: tensors view a private mapping of the ``.nemo`` itself.

    An uncompressed tar stores the weights zip verbatim at ``offset_data``, so torch's own
    mmap loader can read it in place (0.1 s instead of ~3 s for v3's 2.4 GB). This uses
    ``torch.serialization._load`` (torch is pinned); on any surprise we return None and the
    caller falls back to a plain ``torch.load``.
    """
    try:
        import torch.serialization as ts
        from torch import _weights_only_unpickler

        whole = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
        overall = whole[member.offset_data : member.offset_data + member.size]
        reader = torch._C.PyTorchFileReader(fileobj)
        obj = ts._load(reader, "cpu", _weights_only_unpickler, overall_storage=overall)
    except Exception:
        return None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        return None
    return dict(obj)


def _read_folder(path: Path) -> Checkpoint:
    where = str(path)
    cfg_file = path / CONFIG_MEMBER
    if not cfg_file.is_file():
        raise CheckpointError(f"{where}: folder has no {CONFIG_MEMBER}")
    raw, cfg = _parse_config(cfg_file.read_bytes(), where)
    tok = path / cfg.tokenizer_member
    if not tok.is_file():
        found = sorted(path.glob("*_" + cfg.tokenizer_member)) or sorted(path.glob("*tokenizer.model"))
        if not found:
            raise CheckpointError(f"{where}: folder has no tokenizer {cfg.tokenizer_member!r}")
        tok = found[0]
    tokenizer = _load_tokenizer(tok.read_bytes(), where, tok.name)
    _check_vocab(cfg, tokenizer, where)
    weights = path / WEIGHTS_MEMBER
    if not weights.is_file():
        raise CheckpointError(f"{where}: folder has no {WEIGHTS_MEMBER}")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
        if not isinstance(state, dict):
            raise ValueError
    except Exception:
        with open(weights, "rb") as f:
            state = _load_weights(f, where)
    return Checkpoint(cfg, raw, state, tokenizer, source=str(path))


def download_model(model_id: str) -> Path:
    """Fetch ``model_id``'s ``.nemo`` through huggingface_hub's cache; one clear line offline."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(model_id, allow_patterns=["*.nemo"])
    except Exception as first:  # network errors, unknown repos, auth
        try:
            folder = snapshot_download(model_id, allow_patterns=["*.nemo"], local_files_only=True)
        except Exception:
            raise CheckpointError(
                f"{model_id}: cannot download from Hugging Face and it is not in the local cache "
                f"({type(first).__name__}); are you offline? Pass --nemo-path with a local .nemo file"
            ) from None
    found = sorted(Path(folder).glob("*.nemo"))
    if not found:
        raise CheckpointError(f"{model_id}: the repository holds no .nemo file")
    return found[0]


def load_checkpoint(nemo_path: str | os.PathLike[str] | None = None, model_id: str | None = None) -> Checkpoint:
    """Load a ``.nemo`` file, a folder extracted from one, or a Hugging Face model id."""
    if (nemo_path is None) == (model_id is None):
        raise CheckpointError("give exactly one of --nemo-path or --model-id")
    if model_id is not None:
        ckpt = _read_archive(download_model(model_id))
        ckpt.model_id = model_id
        return ckpt
    path = Path(nemo_path)  # type: ignore[arg-type]
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    return _read_folder(path) if path.is_dir() else _read_archive(path)


def write_nemo(
    path: str | os.PathLike[str],
    raw_config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    tokenizer_model: bytes,
) -> Path:
    """Write a ``.nemo`` archive with NeMo's layout, atomically (temp sibling, then rename).

    ``raw_config['tokenizer']`` is pointed at the artifacts written here, the way NeMo's
    ``save_to`` does, so NeMo itself can restore the file.
    """
    path = Path(path)
    tok = Tokenizer(tokenizer_model)
    prefix = uuid.uuid4().hex
    artifacts = {
        f"{prefix}_tokenizer.model": tokenizer_model,
        f"{prefix}_vocab.txt": tok.vocab_txt().encode(),
        f"{prefix}_tokenizer.vocab": "".join(f"{p}\t0\n" for p in tok.pieces).encode(),
    }
    config = dict(raw_config)
    config["tokenizer"] = {
        **dict(config.get("tokenizer") or {}),
        "dir": None,
        "type": "bpe",
        "model_path": f"nemo:{prefix}_tokenizer.model",
        "vocab_path": f"nemo:{prefix}_vocab.txt",
        "spe_tokenizer_vocab": f"nemo:{prefix}_tokenizer.vocab",
    }
    weights = io.BytesIO()
    torch.save(state_dict, weights)
    members: dict[str, io.BytesIO] = {
        CONFIG_MEMBER: io.BytesIO(yaml.safe_dump(config, sort_keys=False).encode()),
        **{name: io.BytesIO(data) for name, data in artifacts.items()},
        WEIGHTS_MEMBER: weights,
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tarfile.open(tmp, "w:") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo("./" + name)
                info.size = data.getbuffer().nbytes
                info.mode = 0o644
                data.seek(0)
                tar.addfile(info, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
