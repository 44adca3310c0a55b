"""Official GenieDrive weights in gdrive: the key maps, `gdrive import-weights`, the Python API and the
official rollout, checked against outputs of the official code (../shared/official-reference:
random weights, CPU). Tests that need the pack are skipped with a reason where it is absent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geniedrive.pipelines.errors import BadInput
from geniedrive.pipelines.geometry import planar_pose
from geniedrive.pipelines.occworld import WorldModel, official_rollout
from geniedrive.pipelines.occworld.configs import CONFIGS
from geniedrive.pipelines.import_weights import ImportRequest, run_import_weights
from geniedrive.pipelines.occworld.official_protocol import official_inputs
from geniedrive.pipelines.occworld.official_weights import vae_state_from_official
from geniedrive.pipelines.occworld.vae import TriplaneVAE
from geniedrive.pipelines.store import Workspace
from geniedrive.pipelines.weights import read_state_dict
from tests.helpers import REPO, run_cli

PACK = REPO.parent / "shared" / "official-reference" / "occ"
needs_pack = pytest.mark.skipif(not (PACK / "rollout_ref.npz").is_file(), reason=f"official reference pack not at {PACK}")
OBSERVE = ("relative_rotation", "delta_translation", "ego_lcf_feat")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> WorldModel:
    """The pack's EE_World checkpoint imported into a workspace, reloaded through the public API."""
    if not (PACK / "stage2_random.pth").is_file():
        pytest.skip(f"official reference pack not at {PACK}")
    ws = Workspace.at(tmp_path_factory.mktemp("ws"))
    res = run_import_weights(ws, ImportRequest("geniedrive-occ", str(PACK / "stage2_random.pth"), name="genie"))
    torch.set_num_threads(2)
    return WorldModel.from_pretrained(res["path"])


@needs_pack
def test_import_weights_writes_a_model_folder_with_its_sources(capsys, tmp_path):
    r = run_cli(capsys, "--json", "import-weights", "--format", "geniedrive-occ", "--checkpoint",
                PACK / "stage2_random.pth", "--vae", PACK / "vae_random.pth", "--name", "genie")
    assert r.code == 0, r.err
    out = r.json()
    folder = Path(out["path"])
    assert folder.name == "genie" and sorted(p.name for p in folder.iterdir()) == [
        "config.json", "forecaster.safetensors", "manifest.json", "vae.safetensors"]
    manifest = json.loads((folder / "manifest.json").read_text())
    for role, file in (("checkpoint", "stage2_random.pth"), ("vae", "vae_random.pth")):
        assert manifest["sources"][role]["sha256"] == hashlib.sha256((PACK / file).read_bytes()).hexdigest()
    config = json.loads((folder / "config.json").read_text())
    assert config["protocol"] == "geniedrive" and config["forecaster"]["ffn_dim"] == 512
    assert out["parameters"] == 3_466_490
    again = run_cli(capsys, "--json", "import-weights", "--format", "geniedrive-occ", "--checkpoint",
                    PACK / "stage2_random.pth", "--vae", PACK / "vae_random.pth", "--name", "genie")
    assert again.code == 0 and again.json()["reused"] is True


@needs_pack
def test_encode_and_decode_match_the_official_vae(imported):
    ref = np.load(PACK / "vae_ref.npz")
    xyz = ref["sample_xyz"]
    with torch.no_grad():
        mu = imported.encode(ref["labels"])
        assert mu.dtype == torch.float32 and tuple(mu.shape) == (1, 64, 50, 58)
        assert np.abs(mu.numpy() - ref["mu"]).max() < 1e-4
        for latent, name in ((mu, ""), (ref["latent_rand"], "rand_")):
            logits = imported.decode(latent)[0]
            assert np.array_equal(logits.argmax(0).numpy().astype(np.uint8), ref[f"logits_{name}argmax"][0])
            sample = logits[:, xyz[:, 0], xyz[:, 1], xyz[:, 2]].T.numpy()
            assert np.abs(sample - ref[f"logits_{name}sample"]).max() < 1e-4


@needs_pack
def test_one_predictor_step_matches_the_official_layers(imported):
    z = np.load(PACK / "step_ref.npz")
    t = {k: torch.from_numpy(z[k]) for k in z.files}
    f = imported.forecaster
    acts = {}
    for i, layer in enumerate(f.low):
        layer.register_forward_hook(lambda m, a, o, i=i: acts.__setitem__(f"low{i}", o))
    f.fusion.register_forward_hook(lambda m, a, o: acts.__setitem__("fusion", o))
    controls = torch.cat([t["in.history_delta_translation"], t["in.history_relative_rotation"],
                          t["in.history_ego_lcf_feat"]], -1)
    with torch.no_grad():
        latent, pred = f.step(t["in.curr_latent"], t["in.history_token"], controls, t["in.curr_ego_mode"],
                              t["in.curr_to_future_ego_rt"])
    for i in range(5):
        assert (acts[f"low{i}"][0][:1] - t[f"act.low{i}.out"]).abs().max() < 1e-4
        assert (acts[f"low{i}"][1][:1] - t[f"act.low{i}.out_plan"]).abs().max() < 1e-5
    assert (acts["fusion"][:1] - t["act.fusion.out"]).abs().max() < 1e-4
    assert (latent - t["out.pred_latent"]).abs().max() < 1e-4
    assert (pred[:, :2] - t["out.pred_delta_translation"]).abs().max() < 1e-5
    assert (pred[:, 2:] - t["out.pred_relative_rotation"]).abs().max() < 1e-5


@needs_pack
@pytest.mark.parametrize("file", ["rollout_ref.npz", "rollout_start_ref.npz"])
def test_official_rollout_matches_forward_sample(imported, file):
    z = np.load(PACK / file)
    metas = {k[len("meta."):]: z[k][None] for k in z.files if k.startswith("meta.") and k != "meta.start_of_sequence"}
    start = bool(z["meta.start_of_sequence"])
    observe = None if start else {n: z[f"observe_{n}"] for n in OBSERVE}
    out = official_rollout(imported, z["latents"], metas, observe)
    assert np.abs(np.asarray(out["pred_latents"]) - z["out.pred_latents"]).max() < 1e-4
    assert np.abs(np.asarray(out["pred_delta_translations"]) - z["out.pred_delta_translations"]).max() < 1e-5
    assert np.abs(np.asarray(out["pred_relative_rotations"]) - z["out.pred_relative_rotations"]).max() < 1e-5
    for n in OBSERVE:
        assert np.abs(np.asarray(out["observe"][n]) - z[f"after_observe_{n}"]).max() < 1e-5


def _tiny_official_model() -> WorldModel:
    """`debug` sizes with the official 9 history slots, under the official protocol."""
    cfg = CONFIGS["debug"]
    cfg = dataclasses.replace(cfg, forecaster=dataclasses.replace(cfg.forecaster, history=9), protocol="geniedrive")
    torch.manual_seed(0)
    return WorldModel(cfg).eval()


def test_window_inputs_hold_the_buffers_the_official_walk_carries(one_torch_thread):
    """Walking a scene's windows in order and carrying the observe buffers from call to call (the
    official evaluation) gives the buffers `official_inputs` rebuilds from the log for each window."""
    wm = _tiny_official_model()
    poses = np.stack([planar_pose(1.5 * i + 0.1 * i * i, 0.3 * i * i, 0.05 * i) for i in range(16)])
    cmds = np.eye(3, dtype=np.float32)[[2, 2, 1, 1, 0, 2]]
    latents = torch.randn(1, 4, *wm.vae_latent_shape)
    c0, carried = 3, None
    for c in range(c0, 9):
        metas, rebuilt = official_inputs(poses, c, cmds, known_from=c0)
        if carried is None:
            assert all(torch.equal(rebuilt[n], torch.ones_like(rebuilt[n]) if n == "relative_rotation"
                                   else torch.zeros_like(rebuilt[n])) for n in OBSERVE)
        else:
            for n in OBSERVE:
                assert torch.allclose(torch.as_tensor(carried[n]), rebuilt[n], atol=1e-6), (c, n)
        carried = official_rollout(wm, latents, metas, carried)["observe"]
    q = metas["ego_to_global_rotation"][0]
    assert torch.allclose(rebuilt["relative_rotation"][0, -1], torch.tensor(
        [np.cos(0.025), 0.0, 0.0, np.sin(0.025)], dtype=torch.float32), atol=1e-6)  # 0.05 rad of yaw per step
    assert torch.allclose(q.norm(dim=-1), torch.ones(len(q)))


def test_official_rollout_checks_its_inputs():
    wm = _tiny_official_model()
    lat = torch.zeros(1, 4, *wm.vae_latent_shape)
    poses = np.stack([planar_pose(float(i), 0.0, 0.0) for i in range(8)])
    metas, _ = official_inputs(poses, 1, np.eye(3, dtype=np.float32)[[2, 2]])
    with pytest.raises(ValueError, match=r"latents has shape \(1, 3, 8, 50, 58\)"):
        official_rollout(wm, lat[:, :3], metas)
    with pytest.raises(ValueError, match="metas has no 'gt_ego_fut_cmd'"):
        official_rollout(wm, lat, {k: v for k, v in metas.items() if k != "gt_ego_fut_cmd"})
    with pytest.raises(ValueError, match=r"observe\['delta_translation'\] has shape \(1, 3, 2\)"):
        official_rollout(wm, lat, metas, {"relative_rotation": torch.ones(1, 4, 4), "delta_translation": torch.zeros(1, 3, 2),
                                          "ego_lcf_feat": torch.zeros(1, 4, 3)})
    out = official_rollout(wm, lat.numpy(), {k: v.numpy() for k, v in metas.items()})
    assert tuple(out["pred_latents"].shape) == (1, 2, 8, 50, 58)


def _save(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


class _NeedsCode:  # pickled by reference: loading it needs this module's code
    pass


def _expect_refused(capsys, ws: Path, args: list, *needles: str) -> None:
    r = run_cli(capsys, "import-weights", "--format", "geniedrive-occ", *args, "--name", "bad")
    assert r.code == 2, r.err
    assert len(r.err_lines) == 1, r.err_lines
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    assert not (ws / "models" / "bad").exists()


def test_bad_files_are_refused_in_one_line_and_nothing_is_written(capsys, tmp_path):
    ws = tmp_path / "ws"
    garbage = tmp_path / "notes.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    _expect_refused(capsys, ws, ["--checkpoint", garbage], "--checkpoint", "notes.pth", "not a safetensors or torch state-dict file")
    code = _save(tmp_path, "code.pth", {"state_dict": {"x": torch.zeros(1)}, "obj": _NeedsCode()})
    _expect_refused(capsys, ws, ["--checkpoint", code], "code.pth", "_NeedsCode")
    vae_like = _save(tmp_path, "vae.pth", {"class_embeds.weight": torch.zeros(18, 8), "vox_encoder.conv1.weight": torch.zeros(1)})
    _expect_refused(capsys, ws, ["--checkpoint", vae_like], "is a standalone VAE", "pass it as --vae")
    _expect_refused(capsys, ws, ["--checkpoint", tmp_path / "absent.pth"], "does not exist")
    r = run_cli(capsys, "import-weights", "--format", "geniedrive-lidar", "--checkpoint", garbage, "--name", "bad")
    assert r.code == 2 and len(r.err_lines) == 1 and "--format 'geniedrive-lidar': unknown format" in r.err
    r = run_cli(capsys, "import-weights", "--format", "geniedrive-occ", "--checkpoint", garbage, "--transformer",
                garbage, "--name", "bad")
    assert r.code == 2 and len(r.err_lines) == 1 and "--transformer: not used by --format geniedrive-occ" in r.err
    assert not (ws / "models").exists()


@needs_pack
def test_checkpoints_that_do_not_fit_are_named_and_nothing_is_written(capsys, tmp_path):
    ws = tmp_path / "ws"
    full = torch.load(PACK / "stage2_random.pth", map_location="cpu", weights_only=True)
    state = full["state_dict"]
    missing = dict(state)
    del missing["transformer.pose_attn.linear.2.bias"]
    _expect_refused(capsys, ws, ["--checkpoint", _save(tmp_path, "missing.pth", {"meta": {}, "state_dict": missing})],
                    "gdrive weights not filled: fusion.cross.mlp.2.bias")
    extra = {**state, "transformer.extra_head.weight": torch.zeros(2)}
    _expect_refused(capsys, ws, ["--checkpoint", _save(tmp_path, "extra.pth", {"meta": {}, "state_dict": extra})],
                    "official keys with no place: transformer.extra_head.weight")
    stray = {**state, "img_backbone.conv.weight": torch.zeros(2)}
    _expect_refused(capsys, ws, ["--checkpoint", _save(tmp_path, "stray.pth", {"meta": {}, "state_dict": stray})],
                    "keys outside pose_encoder. / transformer. / vqvae.: img_backbone.conv.weight")
    narrow = dict(state)
    narrow["transformer.inter_decoder.layers.0.ffns.0.layers.0.0.weight"] = torch.zeros(128, 64)
    _expect_refused(capsys, ws, ["--checkpoint", _save(tmp_path, "narrow.pth", {"meta": {}, "state_dict": narrow})],
                    "'transformer.inter_decoder.layers.0.ffns.0.layers.0.0.weight' has shape (128, 64)", "(512, 64)")
    no_vae = {k: v for k, v in state.items() if not k.startswith("vqvae.")}
    _expect_refused(capsys, ws, ["--checkpoint", _save(tmp_path, "novae.pth", {"meta": {}, "state_dict": no_vae})],
                    "holds no vqvae. weights", "--vae")
    _expect_refused(capsys, ws, ["--checkpoint", PACK / "stage2_random.pth", "--vae", PACK / "stage2_random.pth"],
                    "--vae", "holds predictor keys")
    ema = _save(tmp_path, "iter_100_ema.pth", {"iter": 100, "state_dict": state, "updates": 100})
    r = run_cli(capsys, "--json", "import-weights", "--format", "geniedrive-occ", "--checkpoint", ema, "--name", "ema")
    assert r.code == 0, r.err
    assert r.json()["parameters"] == 3_466_490


def test_an_official_key_with_no_place_is_named():
    own = TriplaneVAE(CONFIGS["debug"].vae).state_dict()
    with pytest.raises(BadInput, match=r"official keys with no place: surprise\.weight"):
        vae_state_from_official({"surprise.weight": torch.zeros(1)}, own, "x.pth")


@needs_pack
def test_official_vae_from_the_standalone_file_equals_the_checkpoint_part():
    a = read_state_dict(PACK / "vae_random.pth", "--vae")
    b = {k[len("vqvae."):]: v for k, v in read_state_dict(PACK / "stage2_random.pth", "--checkpoint").items()
         if k.startswith("vqvae.")}
    own = TriplaneVAE(CONFIGS["paper"].vae).state_dict()
    sa, sb = vae_state_from_official(a, own, "a"), vae_state_from_official(b, own, "b")
    assert sa.keys() == own.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_geniedrive_protocol_model_forecasts_evaluates_and_round_trips(capsys, tmp_path, one_torch_thread):
    """A model folder of protocol "geniedrive" (what import-weights writes) is taken by forecast and
    evaluate occ with --model, reloads equal through from_pretrained, and is no init for e2e."""
    from tests.helpers import write_occ_folder

    wm = _tiny_official_model()
    folder = tmp_path / "wm-official"
    wm.save_pretrained(folder)
    again = WorldModel.from_pretrained(folder)
    assert again.cfg == wm.cfg and json.loads((folder / "config.json").read_text())["protocol"] == "geniedrive"
    assert all(torch.equal(a, b) for a, b in zip(wm.state_dict().values(), again.state_dict().values()))
    src = write_occ_folder(tmp_path / "export", scenes=1, frames=12)
    assert run_cli(capsys, "prepare-occ", "--source", "occ-folder", "--dataroot", src, "--name", "w", "--no-previews").code == 0
    r = run_cli(capsys, "--json", "forecast", "--dataset", "w", "--scene", "town00", "--model", folder,
                "--horizon", "2", "--no-previews", "--no-adherence")
    assert r.code == 0, r.err
    assert r.json()["frames"] == 2
    r = run_cli(capsys, "--json", "evaluate", "occ", "--dataset", "w", "--model", folder, "--max-windows", "2", "--no-adherence")
    assert r.code == 0, r.err
    rep = r.json()
    assert rep["protocol"]["name"] == "geniedrive" and rep["windows"] == 2
    r = run_cli(capsys, "train-forecaster", "--stage", "e2e", "--dataset", "w", "--init", folder, "--steps", "1")
    assert r.code == 2 and len(r.err_lines) == 1 and "protocol 'geniedrive'" in r.err
