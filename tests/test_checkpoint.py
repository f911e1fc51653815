"""Loading .nemo archives without NeMo, and refusing bad or foreign checkpoints clearly."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from parakeet_coreml.checkpoint import load_checkpoint, write_nemo
from parakeet_coreml.errors import CheckpointError, UnsupportedModelError
from parakeet_coreml.model import ParakeetModel


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _rewrite(path: Path, members: dict[str, bytes], mode: str = "w:") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _config(members: dict[str, bytes]) -> tuple[str, dict]:
    name = next(n for n in members if n.endswith("model_config.yaml"))
    return name, yaml.safe_load(members[name])


def test_synthetic_archive_has_nemo_layout(tiny_nemo: Path) -> None:
    names = sorted(_members(tiny_nemo))
    assert "./model_config.yaml" in names and "./model_weights.ckpt" in names
    assert any(n.endswith("_tokenizer.model") for n in names)
    assert any(n.endswith("_vocab.txt") for n in names)


def test_load_archive_folder_and_gzip_agree(tiny_nemo: Path, tmp_path: Path) -> None:
    ref = load_checkpoint(tiny_nemo)
    folder = tmp_path / "extracted"
    with tarfile.open(tiny_nemo) as tar:
        tar.extractall(folder, filter="data")
    legacy = _rewrite(tmp_path / "legacy.nemo", _members(tiny_nemo), mode="w:gz")
    for other in (load_checkpoint(folder), load_checkpoint(legacy)):
        assert other.config == ref.config
        assert other.tokenizer.pieces == ref.tokenizer.pieces
        assert other.state_dict.keys() == ref.state_dict.keys()
        assert all(torch.equal(other.state_dict[k], v) for k, v in ref.state_dict.items())


def test_state_dict_loads_strictly_and_reproduces_weights(tiny_nemo: Path) -> None:
    ckpt = load_checkpoint(tiny_nemo)
    model = ParakeetModel.from_checkpoint(ckpt)
    own = model.state_dict()
    assert own.keys() == ckpt.state_dict.keys()
    assert all(torch.equal(own[k], ckpt.state_dict[k]) for k in own)


def test_written_archive_roundtrips(tiny_nemo: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(tiny_nemo)
    out = write_nemo(tmp_path / "copy.nemo", ckpt.raw_config, ckpt.state_dict, ckpt.tokenizer.model_proto)
    again = load_checkpoint(out)
    # Artifact names carry a fresh uuid, as NeMo's do; everything else is identical.
    assert replace(again.config, tokenizer_member="") == replace(ckpt.config, tokenizer_member="")
    assert all(torch.equal(again.state_dict[k], v) for k, v in ckpt.state_dict.items())
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind


@pytest.mark.parametrize("cut", [0.003, 0.5, 0.98])
def test_truncated_archive_is_one_clear_error(tiny_nemo: Path, tmp_path: Path, cut: float) -> None:
    data = tiny_nemo.read_bytes()
    bad = tmp_path / "truncated.nemo"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match=r"truncated.nemo: .*(truncated|corrupt)"):
        load_checkpoint(bad)


def test_not_a_tar_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.nemo"
    bad.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(CheckpointError, match="model.nemo: not a .nemo archive"):
        load_checkpoint(bad)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.nemo")


@pytest.mark.parametrize("drop", ["model_weights.ckpt", "_tokenizer.model", "model_config.yaml"])
def test_missing_member_is_named(tiny_nemo: Path, tmp_path: Path, drop: str) -> None:
    members = {n: d for n, d in _members(tiny_nemo).items() if not n.endswith(drop)}
    bad = _rewrite(tmp_path / "partial.nemo", members)
    with pytest.raises(CheckpointError, match=f"partial.nemo: .*{drop.strip('_').split('.')[0]}"):
        load_checkpoint(bad)


def test_corrupt_weights_member_is_refused(tiny_nemo: Path, tmp_path: Path) -> None:
    members = _members(tiny_nemo)
    members["./model_weights.ckpt"] = b"PK\x03\x04 garbage" * 10
    bad = _rewrite(tmp_path / "garbage.nemo", members)
    with pytest.raises(CheckpointError, match="garbage.nemo: model_weights.ckpt is truncated or corrupt"):
        load_checkpoint(bad)


def _with_config(tiny_nemo: Path, tmp_path: Path, edit) -> Path:
    members = _members(tiny_nemo)
    name, cfg = _config(members)
    edit(cfg)
    members[name] = yaml.safe_dump(cfg).encode()
    return _rewrite(tmp_path / "edited.nemo", members)


def test_ctc_only_model_is_refused_naming_it(tiny_nemo: Path, tmp_path: Path) -> None:
    def ctc(cfg: dict) -> None:
        cfg["target"] = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"
        cfg["decoder"] = {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 64}
        del cfg["joint"]

    with pytest.raises(UnsupportedModelError, match="EncDecCTCModelBPE is not a transducer .*ConvASRDecoder"):
        load_checkpoint(_with_config(tiny_nemo, tmp_path, ctc))


def test_non_conformer_encoder_is_refused(tiny_nemo: Path, tmp_path: Path) -> None:
    def citrinet(cfg: dict) -> None:
        cfg["encoder"]["_target_"] = "nemo.collections.asr.modules.ConvASREncoder"

    with pytest.raises(UnsupportedModelError, match="encoder is ConvASREncoder"):
        load_checkpoint(_with_config(tiny_nemo, tmp_path, citrinet))


def test_limited_context_attention_is_refused(tiny_nemo: Path, tmp_path: Path) -> None:
    def local(cfg: dict) -> None:
        cfg["encoder"]["self_attention_model"] = "rel_pos_local_attn"
        cfg["encoder"]["att_context_size"] = [128, 128]

    with pytest.raises(UnsupportedModelError, match="rel_pos_local_attn"):
        load_checkpoint(_with_config(tiny_nemo, tmp_path, local))


def test_weights_that_do_not_fit_the_config_are_named(tiny_nemo: Path, tmp_path: Path) -> None:
    def bigger(cfg: dict) -> None:
        cfg["encoder"]["n_layers"] = 3

    ckpt = load_checkpoint(_with_config(tiny_nemo, tmp_path, bigger))
    with pytest.raises(CheckpointError, match=r"weights do not fit the config: \d+ missing \(e.g. encoder.layers.2"):
        ParakeetModel.from_checkpoint(ckpt)


def test_tokenizer_of_wrong_size_is_refused(tiny_nemo: Path, tmp_path: Path) -> None:
    from parakeet_coreml.tokenizer import build_synthetic_sentencepiece

    members = _members(tiny_nemo)
    tok = next(n for n in members if n.endswith("_tokenizer.model"))
    members[tok] = build_synthetic_sentencepiece(300)
    with pytest.raises(CheckpointError, match="tokenizer has 300 pieces but the decoder vocabulary is 256"):
        load_checkpoint(_rewrite(tmp_path / "tok.nemo", members))


def test_offline_model_id_suggests_nemo_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Hugging Face cannot be reached from here or CI; HF_HUB_OFFLINE makes that instant.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="nvidia/parakeet-tdt-0.6b-v3: cannot download .* --nemo-path"):
        load_checkpoint(model_id="nvidia/parakeet-tdt-0.6b-v3")


def test_exactly_one_source_is_required(tiny_nemo: Path) -> None:
    with pytest.raises(CheckpointError, match="exactly one"):
        load_checkpoint()
    with pytest.raises(CheckpointError, match="exactly one"):
        load_checkpoint(nemo_path=tiny_nemo, model_id="x/y")


def test_copy_of_archive_keeps_source_digest(tiny_nemo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.nemo"
    shutil.copy(tiny_nemo, copy)
    assert load_checkpoint(copy).sha256() == load_checkpoint(tiny_nemo).sha256()
    import hashlib

    assert load_checkpoint(copy).sha256() == hashlib.sha256(copy.read_bytes()).hexdigest()
