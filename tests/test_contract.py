"""The I/O contract is derived from the config, and the committed doc cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from parakeet_coreml.contract import COMPONENTS, build_contract, contract_markdown
from parakeet_coreml.synthetic import preset_config

ROOT = Path(__file__).resolve().parents[1]


def test_v3_window_shapes_follow_nemo_length_rules() -> None:
    cfg = preset_config("v3")
    c = build_contract(cfg)
    # NeMo: T_feat = N // hop + 1 with center=True; each dw_striding conv gives ceil(L / 2).
    assert c.window_samples == 15 * 16000
    assert c.mel_frames == 240000 // 160 + 1
    frames = c.mel_frames
    for _ in range(3):
        frames = -(-frames // 2)
    assert c.encoder_frames == frames
    assert c["encoder"].output("encoder").shape == (1, cfg.encoder.d_model, frames)
    assert c["joint"].output("logits").shape == (1, frames, 1, cfg.vocab_size + 1 + len(cfg.durations))
    assert c["decoder"].input("h_in").shape == (cfg.decoder.pred_rnn_layers, 1, cfg.decoder.pred_hidden)


def test_shapes_change_with_window_and_config() -> None:
    tiny = preset_config("tiny")
    c = build_contract(tiny, window_seconds=4.0, top_k=500)
    assert c["preprocessor"].input("audio_signal").shape == (1, 64000)
    assert c["mel_encoder"].output("encoder").shape[1] == tiny.encoder.d_model
    # top-k never exceeds the number of token logits (vocabulary + blank)
    assert c["joint_decision_single_step"].output("top_k_ids").shape[-1] == tiny.vocab_size + 1


def test_lengths_and_ids_are_int32_everything_else_float32() -> None:
    c = build_contract(preset_config("v3"))
    for name in COMPONENTS:
        for t in c[name].inputs + c[name].outputs:
            integer = t.name.endswith("_length") or t.name in {"targets", "token_id", "duration", "top_k_ids"}
            assert t.dtype == ("int32" if integer else "float32"), (name, t.name)


def test_committed_io_doc_matches_the_contract() -> None:
    doc = ROOT / "context" / "coreml_component_io.md"
    expected = contract_markdown(
        build_contract(preset_config("v3")), "Parakeet-TDT v3 (0.6B) CoreML component I/O"
    )
    assert doc.read_text() == expected, "regenerate with: uv run parakeet-coreml io-doc --output context/coreml_component_io.md"


def test_io_doc_states_fluidaudio_shapes() -> None:
    # Independent reference: the FluidAudio I/O contract in shared/reference/anchors.md.
    text = (ROOT / "context" / "coreml_component_io.md").read_text()
    for fragment in (
        "`audio_signal` float32 [1, 240000]",
        "`mel` float32 [1, 128, 1501]",
        "`encoder` float32 [1, 1024, 188]",
        "`h_in` float32 [2, 1, 640]",
        "`logits` float32 [1, 188, 1, 8198]",
        "`top_k_logits` float32 [1, 1, 1, 64]",
    ):
        assert fragment in text
