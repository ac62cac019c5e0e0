"""Training in separate processes: killed and restarted, and on 8 simulated devices."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.training_processes import ROOT, complete_checkpoints, load_results
from tests.helpers.training_processes import process_env as _env
from tests.helpers.training_processes import tiny_run_command as _command


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["in_memory", "streamed"])
def test_killed_run_resumes_to_the_same_parameters(tmp_path, streamed):
    args = ["--stage", "coarse", "--steps", "40", "--checkpoint-every", "5", "--dropout", "0.1",
            *(["--streamed"] if streamed else [])]
    subprocess.run(_command(tmp_path / "ref", tmp_path / "ref_", *args), env=_env(), check=True,
                   cwd=ROOT, capture_output=True, timeout=300)

    run_dir, out = tmp_path / "killed", tmp_path / "killed_"
    command = _command(run_dir, out, *args, "--sleep", "0.1")
    proc = subprocess.Popen(command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    killed_after = None
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        step = int(re.match(r"step (\d+)", line).group(1))
        saved = complete_checkpoints(run_dir / "-1x1")
        if saved and saved[-1] >= 5 and step >= saved[-1] + 3:
            proc.send_signal(signal.SIGKILL)
            killed_after = (saved[-1], step)
            break
        assert time.monotonic() < deadline
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and killed_after is not None
    last_checkpoint, last_step = killed_after
    assert last_step < 40 and not Path(f"{out}-1x1.npz").exists()

    subprocess.run(command[:-2], env=_env(), check=True, cwd=ROOT, capture_output=True,
                   timeout=300)
    resumed, report = load_results(out, "-1x1")
    reference, ref_report = load_results(tmp_path / "ref_", "-1x1")
    assert report["summary"]["resumed_from_step"] >= last_checkpoint
    assert ref_report["summary"]["resumed_from_step"] is None
    assert report["losses"] == ref_report["losses"][-len(report["losses"]):]
    assert resumed.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


@pytest.mark.slow
def test_data_parallel_fsdp_and_one_device_give_the_same_losses(tmp_path):
    meshes = ["8x1", "4x2", "1x1"]
    result = subprocess.run(
        _command(tmp_path / "runs", tmp_path / "out_", "--stage", "fine", "--steps", "6",
                 "--checkpoint-every", "6", "--dropout", "0", "--mesh", *meshes),
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"), cwd=ROOT,
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {mesh: load_results(tmp_path / "out_", mesh) for mesh in meshes}
    for mesh, (_, report) in runs.items():
        assert report["summary"]["device"]["device_count"] == "8"
        n_data, n_fsdp = mesh.split("x")
        assert report["summary"]["device"]["mesh_shape"] == f"data={n_data},fsdp={n_fsdp}"
    reference_params, reference = runs["1x1"]
    assert reference["losses"][-1] < reference["losses"][0]
    for mesh in ("8x1", "4x2"):
        params, report = runs[mesh]
        np.testing.assert_allclose(report["losses"], reference["losses"], rtol=2e-5)
        for name, value in reference_params.items():
            np.testing.assert_allclose(params[name], value, atol=2e-5, err_msg=f"{mesh} {name}")
