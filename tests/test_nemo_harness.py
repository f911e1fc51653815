"""The NeMo reference harness itself: the checkpoints, the reference outputs and the audio.

These tests prove that what the parity tests compare against is real and meaningful: every
variant builds and saves a genuine ``.nemo``, restoring it changes nothing, every weight is
random (so every weight is exercised), greedy decoding produces a mix of blanks, tokens,
durations and max-symbols frames, and the reference shapes follow from the config.
"""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch
import yaml
from nemo_models import (
    MAX_SYMBOLS,
    VARIANTS,
    nemo_archive_members,
    nemo_archive_state_dict,
    nemo_reference,
    nemo_transcribe_text,
    nemo_word_timestamps,
    restore_nemo,
    state_dict_keys,
)

NAMES = list(VARIANTS)
CLIPS = ("clip_a", "clip_b", "clip_c", "speech_15s")
COMPONENTS = ("preprocessor.", "encoder.", "decoder.", "joint.")


# --------------------------------------------------------------------------------------
# Audio fixtures (no NeMo needed)
# --------------------------------------------------------------------------------------


def test_demo_and_fixture_audio(speech_paths, speech_audio, audio_texts, format_paths, audio_dir):
    import soundfile as sf

    info = sf.info(str(speech_paths["speech_15s"]))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (
        16000,
        1,
        240_000,
        "PCM_16",
    )
    assert 2.0 < len(speech_audio["speech_short"]) / 16000 < 4.5
    for name in ("clip_a", "clip_b", "clip_c"):
        assert 1.5 <= len(speech_audio[name]) / 16000 <= 4.0
        assert audio_texts[f"{name}.wav"]["text"]
    assert len({audio_texts[f"{n}.wav"]["voice"] for n in ("clip_a", "clip_b", "clip_c")}) == 3

    stereo = sf.info(str(format_paths["stereo_44k"]))
    assert (stereo.samplerate, stereo.channels) == (44100, 2)
    assert sf.info(str(format_paths["clip_8k"])).samplerate == 8000
    flac, sr = sf.read(str(format_paths["flac"]), dtype="int16")
    wav, _ = sf.read(str(audio_dir / "clip_b.wav"), dtype="int16")
    assert sr == 16000 and np.array_equal(flac, wav)  # lossless copy of clip_b
    ogg, sr = sf.read(str(format_paths["ogg"]), dtype="float32")
    assert sr == 16000 and len(ogg) == len(speech_audio["clip_a"])
    assert set(audio_texts) == {p.name for p in audio_dir.iterdir() if p.suffix != ".json"}
    assert sum(p.stat().st_size for p in audio_dir.iterdir()) < 1_000_000


def test_made_signals_are_deterministic(make_noise, make_silence, make_tone):
    assert np.array_equal(make_noise(1.0, seed=3), make_noise(1.0, seed=3))
    assert not np.array_equal(make_noise(1.0, seed=3), make_noise(1.0, seed=4))
    assert make_noise(0.5).dtype == np.float32 and len(make_noise(0.5)) == 8000
    assert not make_silence(2.0).any() and len(make_silence(2.0)) == 32000
    assert abs(np.abs(make_tone(1.0)).max() - 0.3) < 1e-3


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_variant_saves_a_real_nemo_archive(nemo_checkpoints, name):
    ckpt = nemo_checkpoints[name]
    v = ckpt.variant
    assert ckpt.path.read_bytes()[:2] != b"\x1f\x8b"  # not gzip
    with tarfile.open(ckpt.path, "r:") as tar:  # plain (uncompressed) tar
        cfg = yaml.safe_load(tar.extractfile("./model_config.yaml").read())
    members = [m.lstrip("./") for m in nemo_archive_members(ckpt.path)]
    assert "model_config.yaml" in members and "model_weights.ckpt" in members
    assert any(m.endswith("_tokenizer.model") for m in members)
    assert any(m.endswith("_vocab.txt") for m in members)
    assert cfg["tokenizer"]["model_path"].startswith("nemo:")

    # the config NeMo wrote describes the variant
    assert cfg["target"].endswith("EncDecRNNTBPEModel")
    assert cfg["decoder"]["vocab_size"] == v.vocab_size
    assert cfg["joint"]["num_classes"] == v.vocab_size
    assert cfg["joint"]["num_extra_outputs"] == len(v.durations)
    assert cfg["decoding"]["strategy"] == "greedy_batch"
    assert cfg["decoding"]["greedy"]["max_symbols"] == MAX_SYMBOLS
    assert cfg["encoder"]["subsampling_factor"] == v.subsampling_factor
    if v.is_tdt:
        assert cfg["loss"]["loss_name"] == "tdt"
        assert cfg["decoding"]["model_type"] == "tdt"
        assert list(cfg["decoding"]["durations"]) == list(v.durations)
        assert list(cfg["model_defaults"]["tdt_durations"]) == list(v.durations)
        assert list(cfg["loss"]["tdt_kwargs"]["durations"]) == list(v.durations)
    else:
        assert not cfg["decoding"].get("durations")
        assert ckpt.model.decoding.decoding.__class__.__name__.startswith("GreedyBatchedRNNT")

    # weights: only the four components, joint Linear where the variant says
    sd = nemo_archive_state_dict(ckpt.path)
    assert set(sd) == set(state_dict_keys(ckpt.model))
    assert all(k.startswith(COMPONENTS) for k in sd)
    lin = f"joint.joint_net.{v.joint_linear_index}"
    assert sd[f"{lin}.weight"].shape == (v.joint_out, v.joint_hidden)
    assert sd["decoder.prediction.embed.weight"].shape == (v.vocab_size + 1, v.pred_hidden)
    assert sd["preprocessor.featurizer.fb"].shape == (1, v.features, v.n_fft // 2 + 1)
    lstm = {k for k in sd if ".lstm." in k}
    assert len(lstm) == 4 * v.pred_rnn_layers
    assert any(k.endswith("linear_q.bias") for k in sd) == v.use_bias
    assert ckpt.model.encoder.xscale is None if not v.xscaling else ckpt.model.encoder.xscale > 1
    if not v.untie_biases:  # one shared Parameter, stored under every layer's name
        u = [sd[k] for k in sd if k.endswith("pos_bias_u")]
        assert len(u) == v.n_layers and all(torch.equal(u[0], x) for x in u)


def test_every_weight_is_random(nemo_checkpoints):
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    for name, ckpt in nemo_checkpoints.items():
        model = ckpt.model
        blank = model.decoder.blank_idx
        for key, value in model.state_dict().items():
            if key.startswith("preprocessor.") or key.endswith("num_batches_tracked"):
                continue
            if key == "decoder.prediction.embed.weight":
                assert not value[blank].any()  # padding row stays zero, as in real checkpoints
                value = torch.cat([value[:blank], value[blank + 1 :]])
            assert value.unique().numel() > value.numel() // 2, (name, key)
            if key.endswith("running_var"):
                assert (value > 0).all(), (name, key)
        # the window and mel filterbank are NeMo's own, untouched
        fresh = EncDecRNNTBPEModel.from_config_dict(model.cfg.preprocessor)
        for buf in ("window", "fb"):
            assert torch.equal(
                getattr(fresh.featurizer, buf), getattr(model.preprocessor.featurizer, buf)
            ), (name, buf)


@pytest.mark.parametrize("name", NAMES)
def test_restored_checkpoint_is_identical(nemo_checkpoints, nemo_reference_for, speech_audio, name):
    ckpt = nemo_checkpoints[name]
    restored = restore_nemo(ckpt.path)
    assert type(restored).__name__ == "EncDecRNNTBPEModel" and not restored.training
    a, b = ckpt.model.state_dict(), restored.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    ref = nemo_reference_for(name, "clip_a")
    got = nemo_reference(restored, speech_audio["clip_a"], tokens=ref["pred_tokens"][1:])
    for key in ("mel", "encoder", "pred_out", "joint_raw", "joint_logprobs"):
        assert np.array_equal(ref[key], got[key]), key
    for key in ("tokens", "timestamps", "durations", "text", "steps"):
        assert ref[key] == got[key], key


# --------------------------------------------------------------------------------------
# Reference outputs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_reference_shapes_follow_the_config(nemo_checkpoints, nemo_reference_for, name):
    v = nemo_checkpoints[name].variant
    model = nemo_checkpoints[name].model
    ref = nemo_reference_for(name, "clip_b")
    n = ref["num_samples"]
    hop = v.hop_length
    assert ref["mel"].shape == (v.features, n // hop + 1)
    assert ref["mel_length"] == n // hop
    t_enc = ref["encoder_length"]
    assert (
        t_enc
        == v.encoder_length(ref["mel_length"])
        == -(-ref["mel_length"] // v.subsampling_factor)
    )
    assert ref["encoder"].shape == (v.d_model, v.encoder_frames(n // hop + 1))
    assert np.isfinite(ref["encoder"]).all() and 0.3 < ref["encoder"].std() < 3.0
    assert np.isfinite(ref["mel"]).all()

    tokens, stamps = ref["tokens"], ref["timestamps"]
    assert len(tokens) == len(stamps) and all(0 <= t < v.vocab_size for t in tokens)
    assert stamps == sorted(stamps) and all(0 <= s < t_enc for s in stamps)
    if v.is_tdt:
        assert len(ref["durations"]) == len(tokens) and set(ref["durations"]) <= set(v.durations)
    else:
        assert ref["durations"] == []
    assert ref["text"] == model.tokenizer.ids_to_text(tokens) or tokens == []

    # every decoding step: non-blank steps are exactly the hypothesis
    assert ref["alignment_tokens"] == tokens
    nb = [(f, k, d) for f, k, d in ref["steps"] if k != v.blank_id]
    assert [k for _, k, _ in nb] == tokens and [f for f, _, _ in nb] == stamps
    if v.is_tdt:
        assert [d for _, _, d in nb] == ref["durations"]

    # prediction network: U+1 steps (blank first), state [layers, H] after each
    u1 = len(ref["pred_tokens"])
    assert ref["pred_tokens"][0] == v.blank_id
    assert ref["pred_out"].shape == (u1, v.pred_hidden)
    assert (
        ref["pred_state_h"].shape
        == ref["pred_state_c"].shape
        == (u1, v.pred_rnn_layers, v.pred_hidden)
    )
    t_out = ref["encoder"].shape[1]
    assert ref["joint_raw"].shape == ref["joint_logprobs"].shape == (t_out, u1, v.joint_out)


def test_encoder_returns_a_frame_past_its_length(nemo_checkpoints, make_noise):
    """When N // hop is a multiple of the subsampling factor NeMo's encoder returns one more
    frame than the length it reports (computed from N // hop + 1 mel frames)."""
    for ckpt in nemo_checkpoints.values():
        v = ckpt.variant
        n = v.hop_length * v.subsampling_factor * 25 + 37
        ref = nemo_reference(ckpt.model, make_noise(n / 16000, seed=1), with_alignments=False)
        assert ref["mel_length"] == v.subsampling_factor * 25
        assert ref["encoder_length"] == 25
        assert ref["encoder"].shape[1] == v.encoder_frames(v.mel_frames(n)) == 26
        assert np.abs(ref["encoder"][:, 25]).max() > 0.1  # the extra frame is not zeroed


def test_prediction_network_facts(nemo_checkpoints):
    """Feeding one token at a time with the state carried equals one call on the sequence,
    and the first step (blank id, zero state) equals NeMo's "no token" zero input."""
    model = nemo_checkpoints["tdt_v3"].model
    v = nemo_checkpoints["tdt_v3"].variant
    seq = torch.tensor([[v.blank_id, 5, 17, 3, 99]])
    with torch.no_grad():
        whole, _ = model.decoder.predict(seq, None, add_sos=False, batch_size=1)
        state, steps = None, []
        for i in range(seq.shape[1]):
            g, state = model.decoder.predict(seq[:, i : i + 1], state, add_sos=False, batch_size=1)
            steps.append(g)
        empty, _ = model.decoder.predict(None, None, add_sos=False, batch_size=1)
    torch.testing.assert_close(torch.cat(steps, 1), whole, rtol=1e-5, atol=1e-6)
    assert torch.equal(steps[0], empty)


def test_joint_on_cpu_returns_log_softmax(nemo_reference_for):
    """NeMo's ``joint()`` (log_softmax=None) log-softmaxes over all outputs on CPU."""
    for name in NAMES:
        ref = nemo_reference_for(name, "clip_c")
        expect = torch.log_softmax(torch.from_numpy(ref["joint_raw"]), dim=-1).numpy()
        np.testing.assert_allclose(ref["joint_logprobs"], expect, rtol=1e-5, atol=1e-5)
        assert (
            np.argmax(ref["joint_raw"], -1).tolist()
            == np.argmax(ref["joint_logprobs"], -1).tolist()
        )


def test_blank_bias_defaults_give_a_mix(nemo_reference_for):
    """On every speech clip each variant emits tokens and blanks; TDT variants use duration
    0 and durations > 0; and some frames hit the 10-symbols-per-frame cap."""
    cap_hits = {}
    for name, v in VARIANTS.items():
        durations = []
        for clip in CLIPS:
            ref = nemo_reference_for(name, clip)
            assert ref["tokens"], (name, clip, "no tokens")
            assert ref["blank_steps"] > 0, (name, clip, "no blanks")
            durations += ref["durations"]
            cap_hits[name, clip] = ref["max_symbols_frames"]
            # no decision on the greedy path is a near-tie: fp32 ports must follow it exactly
            assert min(ref["min_label_margin"], ref["min_duration_margin"]) > 1e-4, (name, clip)
            if ref["max_symbols_frames"]:
                assert ref["frame_symbols"].max() == MAX_SYMBOLS
        if v.is_tdt:
            assert 0 in durations and any(d > 0 for d in durations), (name, set(durations))
    assert cap_hits["rnnt", "clip_a"] > 0  # RNNT: frames that only the cap ends
    assert cap_hits["tdt_v3", "speech_15s"] > 0  # TDT: ten duration-0 tokens on one frame


def test_token_history_changes_the_joint_decision(nemo_reference_for):
    """The prediction network is not drowned out: on a good share of frames the joint's
    argmax depends on which tokens came before (so decoder-state bugs change transcripts)."""
    for name, v in VARIANTS.items():
        ref = nemo_reference_for(name, "speech_15s")
        labels = ref["joint_raw"][..., : v.blank_id + 1].argmax(-1)  # [T, U+1]
        assert (labels != labels[:, :1]).mean() > 0.1, name
        assert len(set(ref["tokens"])) >= 10, name


def test_blank_bias_moves_the_mix(nemo_checkpoints, speech_audio, tmp_path):
    """A larger blank bias means fewer tokens; without the calibrated bias nearly every
    step emits."""
    from nemo_models import build_nemo_model

    v = VARIANTS["rnnt"]
    counts = []
    for bias in (0.0, v.blank_bias, v.blank_bias + 2.0):
        model = build_nemo_model(v, tmp_path, seed=0, blank_bias=bias)
        ref = nemo_reference(model, speech_audio["clip_c"], with_alignments=True)
        counts.append((len(ref["tokens"]), ref["blank_steps"]))
    (t0, b0), (t1, b1), (t2, _) = counts
    assert t0 > t1 > t2 and b0 < b1
    assert b0 <= t0 // 20  # random joint: (almost) no blanks


# --------------------------------------------------------------------------------------
# transcribe()
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tdt_v3", "rnnt"])
def test_transcribe_matches_reference(nemo_checkpoints, nemo_reference_for, speech_paths, name):
    model = nemo_checkpoints[name].model
    texts = nemo_transcribe_text(model, [speech_paths["clip_a"], speech_paths["clip_c"]])
    assert texts == [
        nemo_reference_for(name, "clip_a")["text"],
        nemo_reference_for(name, "clip_c")["text"],
    ]
    words = nemo_word_timestamps(model, [speech_paths["clip_a"]])[0]
    assert [w["word"] for w in words] == texts[0].split()
    starts = [w["start_offset"] for w in words]
    assert starts == sorted(starts) and all(w["end_offset"] >= w["start_offset"] for w in words)
    assert model.cfg.decoding.get("compute_timestamps") in (None, False)  # put back as built
