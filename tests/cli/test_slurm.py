"""A real single-node SLURM cluster (scripts/slurm-local.sh): sweeps through submitit, DDP under
srun, and Lightning's auto-requeue on SIGUSR1."""

import os
import shutil
import subprocess
import sys

import pytest

from genkit.checkpoints.files import load_checkpoint
from tests.helpers import REPO, TINY_IMAGE_RUN, run_cli, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPT = REPO / "scripts" / "slurm-local.sh"


@pytest.fixture(scope="module")
def slurm():
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster needs root (it installs packages and writes /etc/slurm)")
    if shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        pytest.skip("neither SLURM nor apt-get is available")
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        pytest.fail(f"scripts/slurm-local.sh start failed:\n{started.stdout}\n{started.stderr}")
    yield
    subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)
    left = subprocess.run(["pgrep", "-x", "slurmctld|slurmd"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "slurm-local.sh stop left daemons behind"


def job_dirs(sweep_root):
    (sweep,) = sweep_root.iterdir()
    return sweep, sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


def test_sweep_of_two_slurm_jobs(slurm, tmp_path, tiny_data_root):
    out = run_cli(
        "train",
        "-m",
        "launcher=slurm",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN,
        "trainer.max_steps=10",
        "trainer.max_epochs=-1",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=2",
        "model.optimizer_g.lr=1e-4,2e-4",
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweep, jobs = job_dirs(tmp_path / "outputs" / "multirun" / "gan-mnist")
    assert [j.name for j in jobs] == ["0", "1"]
    for job in jobs:
        assert load_checkpoint(job / "checkpoints" / "last.ckpt")["global_step"] == 10
    assert list((sweep / ".submitit").iterdir())  # the jobs really went through sbatch


def test_ddp_one_node_two_tasks_under_srun(slurm, tmp_path, tiny_data_root):
    out = run_cli(
        "train",
        "-m",
        "launcher=slurm",
        "trainer=ddp_cpu",
        f"data.root={tiny_data_root}",
        *TINY_IMAGE_RUN[:3],
        "trainer.max_steps=6",
        "trainer.max_epochs=-1",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=4",
        cwd=tmp_path,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweep, (job,) = job_dirs(tmp_path / "outputs" / "multirun" / "gan-mnist")
    assert load_checkpoint(job / "checkpoints" / "last.ckpt")["global_step"] == 6
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*") if p.suffix in (".out", ".err"))
    assert "MEMBER: 1/2" in logs and "MEMBER: 2/2" in logs  # both ranks, from SLURM's tasks


def test_sigusr1_saves_requeues_and_resumes(slurm, tmp_path, tiny_data_root):
    """SLURM's warning signal: genkit saves, Lightning requeues, the requeued job resumes and finishes."""
    run, max_steps = tmp_path / "run", tmp_path / "max_steps"
    max_steps.write_text("1000000")  # the first run must still be going when the signal comes
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"cd {tmp_path}\n"
        f"exec {sys.executable} -m genkit.cli train data.root={tiny_data_root} {' '.join(TINY_IMAGE_RUN[:3])} "
        f"trainer.accelerator=cpu trainer.max_steps=$(cat {max_steps}) trainer.max_epochs=-1 "
        f"callbacks.progress.every_n_steps=10 callbacks.model_checkpoint.every_n_train_steps=1000 "
        f"hydra.run.dir={run}\n"
    )
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--requeue",
            "--open-mode=append",
            "-n",
            "1",
            "-c",
            "1",
            "-o",
            str(tmp_path / "slurm-%j.out"),
            str(script),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = submitted.stdout.strip()
    log = tmp_path / f"slurm-{job_id}.out"
    assert wait_for(lambda: log.exists() and "step 50/" in log.read_text(), timeout=300, interval=1)
    subprocess.run(["scancel", "--signal=USR1", "--full", job_id], check=True)

    def state() -> str:
        return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout.strip()

    assert wait_for(lambda: state() == "PENDING", timeout=120, interval=1)  # requeued
    saved = load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"]
    assert saved >= 50 and (run / "hpc_ckpt_1.ckpt").is_file()  # genkit's save and Lightning's
    max_steps.write_text(str(saved + 20))
    # SLURM holds a requeued job for two minutes before it may start again; let it start now
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)
    assert wait_for(lambda: state() == "", timeout=300, interval=1)
    text = log.read_text()
    assert "Requeued SLURM job" in text and "Resuming from" in text
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == saved + 20
