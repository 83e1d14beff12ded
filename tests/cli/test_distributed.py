"""DDP on 2 CPU processes (gloo), and Hydra multiruns whose jobs are DDP runs."""

import pytest

from genkit.checkpoints.files import load_checkpoint
from tests.helpers import TINY_IMAGE_RUN, needs_shared, run_cli, tiny_text_run

pytestmark = pytest.mark.slow


@needs_shared("mnist")
def test_ddp_cpu_gan_on_mnist_writes_once(tmp_path):
    run = tmp_path / "run"
    out = run_cli(
        "train",
        "trainer=ddp_cpu",
        "model=gan",
        "data=mnist",
        "++trainer.max_steps=20",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MEMBER: 2/2" in out.stdout + out.stderr
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt"]
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 20
    assert len(list((run / "samples").glob("*.png"))) == 1
    assert not (tmp_path / "outputs").exists()  # the second rank used the same run directory


def test_ddp_cpu_gpt_on_text(tmp_path):
    run = tmp_path / "run"
    overrides = [*tiny_text_run(tmp_path), "trainer=ddp_cpu", "trainer.max_steps=6", f"hydra.run.dir={run}"]
    out = run_cli("train", *overrides, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "val/ppl" in (run / "metrics.csv").read_text().splitlines()[0]


def test_multirun_of_ddp_jobs_trains_each_job_once(tmp_path, tiny_data_root):
    """Lightning relaunches the command line in the second rank; under -m that must not rerun the sweep."""
    out = run_cli(
        "train",
        "-m",
        "trainer=ddp_cpu",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN[:3],
        "trainer.max_steps=3",
        "model.optimizer_g.lr=1e-4,2e-4",
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "multirun" / "gan-mnist").iterdir())
    assert len(sweeps) == 1, sweeps  # the bug made a second sweep directory
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and not p.name.startswith("."))
    assert jobs == ["0", "1"]
    for job in jobs:
        assert load_checkpoint(sweeps[0] / job / "checkpoints" / "last.ckpt")["global_step"] == 3
    assert (out.stdout + out.stderr).count("training stopped at step 3") == 2
    assert not (tmp_path / "outputs" / "gan-mnist").exists()  # no stray single-run directories
