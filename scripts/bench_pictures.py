"""How `data=image_folder` scales: preparation time and memory, and the loader's pictures per second
against what the training steps consume. Results: docs/benchmarks/data.md ("## Pictures").

python scripts/bench_pictures.py --n 10000 [--work /tmp/bench_pictures] [--sizes 64 128 256] [--steps]
python scripts/bench_pictures.py --n 100000 --sizes 128 --no-train-fresh --clean
python scripts/bench_pictures.py --n 100000 --sizes 128 --no-train-fresh --no-loader --shards

1. Writes --n JPEGs of 200 to 320 x 160 to 256 pixels (a coloured shape on noise, 4 class folders)
   under <work>/pictures (kept between runs of the same --n; --clean deletes them at the end).
2. Preparation, at the first of --sizes, with a fresh cache and then again reading it: the data
   module alone (prepare, set up, 50 training batches: this script with --data-alone), and
   `genkit train model=gan data=image_folder data.path=<pictures> data.image_size=<size>
   ++trainer.max_steps=1` on the CPU, each under /usr/bin/time -v: wall time, the largest
   process's peak RSS (time -v), and the peak of the RSS and PSS summed over the process and its
   decoding workers (sampled every 0.2 s).
3. Loader: for each of --sizes, the data module's training batches (64 pictures, the config's
   default), read from the decoded cache and scaled to [-1, 1], in pictures/s: in this process
   (data.num_workers=0), with 2 DataLoader workers, and with data.augment=[hflip,crop] added.
4. --shards: `genkit prepare` of the decoded pictures into shards, then one training step of the GAN
   on them (`data=image_shards`) with validation batches of 256 and of 64, each under time -v.
5. --steps: `genkit bench` of the GAN and the diffusion model on those pictures at 64 and 128
   pixels (this machine's device: what the training step consumes, in pictures/s).

Every figure goes to <work>/results-<n>.json and is printed with this machine's CPU model, and each
block with the 1-minute load average before it (other jobs on the machine slow it down).
"""

import argparse
import json
import logging
import multiprocessing
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GENKIT = Path(sys.executable).with_name("genkit")
CLASSES = ("red_circle", "green_square", "blue_triangle", "orange_cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "orange": (240, 150, 20)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {len(os.sched_getaffinity(0))} cores"
    return platform.processor() or "unknown CPU"


# ---- pictures ----------------------------------------------------------------------------------------


def write_pictures(args: tuple[Path, int, int]) -> int:
    """Pictures start..end-1 (one worker's share): a filled shape on per-pixel noise, as JPEG."""
    from PIL import Image, ImageDraw

    out, start, end = args
    rng = np.random.default_rng(start)
    for i in range(start, end):
        name = CLASSES[i % len(CLASSES)]
        width, height = int(rng.integers(200, 321)), int(rng.integers(160, 257))
        base = rng.integers(120, 256, 3)
        noise = rng.integers(-30, 31, (height, width, 3))
        image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        r = min(width, height) * rng.uniform(0.2, 0.35)
        cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
        box = (cx - r, cy - r, cx + r, cy + r)
        draw, fill = ImageDraw.Draw(image), COLOURS[name.split("_")[0]]
        shape = name.split("_")[1]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        elif shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        else:
            draw.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=fill)
            draw.rectangle((cx - r / 3, cy - r, cx + r / 3, cy + r), fill=fill)
        image.save(out / name / f"{i:07d}.jpg", quality=90)
    return end - start


def make_pictures(out: Path, n: int) -> dict:
    done = out / f".{n}.done"
    if done.is_file():
        return json.loads(done.read_text())
    shutil.rmtree(out, ignore_errors=True)
    for name in CLASSES:
        (out / name).mkdir(parents=True)
    start = time.perf_counter()
    step = 500
    with multiprocessing.Pool(len(os.sched_getaffinity(0))) as pool:
        pool.map(write_pictures, [(out, s, min(s + step, n)) for s in range(0, n, step)])
    size = sum(f.stat().st_size for f in out.rglob("*.jpg"))
    info = {"pictures": n, "bytes": size, "seconds_to_write": time.perf_counter() - start}
    done.write_text(json.dumps(info))
    return info


# ---- preparation -----------------------------------------------------------------------------------


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over a process and its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
            rss, pss = rss + info.rss, pss + info.pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, pss


def train_command(pictures: Path, cache: Path, size: int, run_dir: Path) -> list[str]:
    shutil.rmtree(run_dir, ignore_errors=True)  # else genkit resumes the run found there
    return [
        str(GENKIT), "train", "model=gan", "data=image_folder", f"data.path={pictures}", f"data.image_size={size}",
        f"data.cache_dir={cache}", "++trainer.max_steps=1", "trainer.accelerator=cpu", "trainer.limit_val_batches=1",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def data_command(pictures: Path, cache: Path, size: int, work: Path) -> list[str]:
    """The data module alone, in a process of its own: prepare, set up, 50 training batches."""
    return [sys.executable, __file__, "--data-alone", str(pictures), str(cache), str(size), str(work)]


def data_alone(pictures: Path, cache: Path, size: int, work: Path) -> None:
    logging.basicConfig(level=logging.INFO)  # the data module's "Decoded ... in ... s" line
    dm = data_module(pictures, cache, size, work)
    dm.prepare_data()
    dm.setup("fit")
    batches = iter(dm.train_dataloader())
    for _ in range(50):
        next(batches)


def timed(command: list[str], cwd: Path) -> dict:
    """Wall time and memory of a command run under /usr/bin/time -v."""
    command = ["/usr/bin/time", "-v", *command]
    load, start = round(os.getloadavg()[0], 2), time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            rss, pss = tree_memory(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:4])} failed:\n{stderr[-3000:]}")
    max_rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1)) * 1024
    decoded = re.search(r"Decoded (\d+) pictures of .* in ([\d.]+) s", stdout + stderr)
    return {
        "command": " ".join(command[2:]),
        "load_before": load,
        "wall_s": round(wall, 1),
        "decode_s": float(decoded.group(2)) if decoded else None,
        "max_rss_largest_process_gb": round(max_rss / 2**30, 2),
        "peak_rss_all_processes_gb": round(peak[0] / 2**30, 2),
        "peak_pss_all_processes_gb": round(peak[1] / 2**30, 2),
    }


# ---- the loader ------------------------------------------------------------------------------------


def data_module(pictures: Path, cache: Path, size: int, work: Path, *overrides: str):
    from hydra.utils import instantiate

    from genkit.training.config import compose_config

    cfg = compose_config(
        "train",
        ["model=gan", "data=image_folder", f"data.path={pictures}", f"data.image_size={size}",
         f"data.cache_dir={cache}", *overrides],
        work,
    )  # fmt: skip
    return instantiate(cfg.data)


def loader_rate(dm, batches: int, augment: bool = False) -> float:
    """Training pictures per second the loader hands over (the first batches, which start the
    workers, not counted); with augment, data.augment applied to each batch as training does."""
    import torch

    from genkit.data.image_folder import augment as augmented

    generator = torch.Generator().manual_seed(0)
    loader = iter(dm.train_dataloader())
    for _ in range(3):
        next(loader)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        x, y = next(loader)
        if augment:
            x = augmented(x, dm.augment, generator)
        seen += len(y)
    return seen / (time.perf_counter() - start)


def loader_rates(pictures: Path, cache: Path, size: int, work: Path, batches: int) -> dict:
    dm = data_module(pictures, cache, size, work)
    start = time.perf_counter()
    dm.prepare_data()
    prepare = time.perf_counter() - start
    dm.setup("fit")
    result = {"size": size, "prepare_s": round(prepare, 1), "train_pictures": len(dm.train_set)}
    result["load_before"] = round(os.getloadavg()[0], 2)
    result["in_process"] = round(loader_rate(dm, batches))
    workers = data_module(pictures, cache, size, work, "data.num_workers=2")
    workers.setup("fit")
    result["2_workers"] = round(loader_rate(workers, batches))
    augmenting = data_module(pictures, cache, size, work, "data.augment=[hflip,crop]")
    augmenting.setup("fit")
    result["in_process_hflip_crop"] = round(loader_rate(augmenting, batches, augment=True))
    return result


# ---- training steps ----------------------------------------------------------------------------------


def step_rate(pictures: Path, cache: Path, family: str, size: int, work: Path) -> dict:
    out = work / f"bench-{family}-{size}.json"
    command = [
        str(GENKIT), "bench", f"model={family}", "data=image_folder", f"data.path={pictures}",
        f"data.image_size={size}", f"data.cache_dir={cache}", "trainer.accelerator=cpu", "steps=3", "warmup=1",
        "rounds=1", "compare=false", f"out={out}", f"hydra.run.dir={work / 'runs' / f'{family}-{size}'}",
    ]  # fmt: skip
    shutil.rmtree(work / "runs" / f"{family}-{size}", ignore_errors=True)
    load = round(os.getloadavg()[0], 2)
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"genkit bench failed:\n{done.stderr[-3000:]}")
    report = json.loads(out.read_text())
    return {
        "family": family, "size": size, "batch": report["batch_size"], "steps_per_s": round(report["steps_per_s"], 3),
        "pictures_per_s": round(report["samples_per_s"], 1), "precision": report["precision"],
        "command": " ".join(command[1:-3]), "load_before": load,
    }  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--data-alone"]:
        pictures, cache, size, work = sys.argv[2:6]
        return data_alone(Path(pictures), Path(cache), int(size), Path(work))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="pictures to write and prepare")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_pictures"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="the first: preparation's")
    parser.add_argument("--batches", type=int, default=60, help="batches timed per loader")
    parser.add_argument("--no-loader", action="store_true", help="preparation alone")
    parser.add_argument("--no-train-fresh", action="store_true", help="genkit train only on the prepared cache")
    parser.add_argument("--steps", action="store_true", help="also time the GAN's and diffusion's training steps")
    parser.add_argument("--shards", action="store_true", help="also `genkit prepare` shards and train a step on them")
    parser.add_argument("--clean", action="store_true", help="delete the pictures and caches at the end")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    pictures, cache = args.work / f"pictures-{args.n}", args.work / f"cache-{args.n}"
    results: dict = {"cpu": cpu_model(), "n": args.n, "disk_free_gb": shutil.disk_usage(args.work).free / 1e9}
    results["pictures"] = make_pictures(pictures, args.n)
    print(json.dumps(results["pictures"]), flush=True)
    shutil.rmtree(cache, ignore_errors=True)
    size = args.sizes[0]
    results["data_alone_fresh"] = timed(data_command(pictures, cache, size, args.work), args.work)
    print(json.dumps(results["data_alone_fresh"]), flush=True)
    results["data_alone_cached"] = timed(data_command(pictures, cache, size, args.work), args.work)
    print(json.dumps(results["data_alone_cached"]), flush=True)
    if not args.no_train_fresh:
        shutil.rmtree(cache, ignore_errors=True)
        results["train_fresh"] = timed(train_command(pictures, cache, size, args.work / "run-fresh"), args.work)
        print(json.dumps(results["train_fresh"]), flush=True)
    results["train_cached"] = timed(train_command(pictures, cache, size, args.work / "run-cached"), args.work)
    print(json.dumps(results["train_cached"]), flush=True)
    results["cache_gb"] = sum(f.stat().st_size for f in cache.rglob("*")) / 1e9
    if args.shards:  # from the decoded cache: the copy into shards, then one step trained on them
        shards = args.work / f"shards-{args.n}"
        shutil.rmtree(shards, ignore_errors=True)
        prepare = [str(GENKIT), "prepare", "data=image_folder", f"data.path={pictures}", f"data.image_size={size}",
                   f"data.cache_dir={cache}", f"out={shards}"]  # fmt: skip
        results["prepare_shards"] = timed(prepare, args.work)
        print(json.dumps(results["prepare_shards"]), flush=True)
        for eval_batch in (256, 64):  # the config's validation batch, and a quarter of it
            run = args.work / f"run-shards-{eval_batch}"
            shutil.rmtree(run, ignore_errors=True)
            train = [str(GENKIT), "train", "model=gan", "data=image_shards", f"data.path={shards}",
                     f"data.eval_batch_size={eval_batch}", "++trainer.max_steps=1", "trainer.accelerator=cpu",
                     "trainer.limit_val_batches=1", f"hydra.run.dir={run}"]  # fmt: skip
            results[f"train_shards_eval_batch_{eval_batch}"] = timed(train, args.work)
            print(json.dumps(results[f"train_shards_eval_batch_{eval_batch}"]), flush=True)
    if not args.no_loader:
        results["loader"] = []
        for size in args.sizes:
            results["loader"].append(loader_rates(pictures, cache, size, args.work, args.batches))
            print(json.dumps(results["loader"][-1]), flush=True)
    if args.steps:
        results["steps"] = []
        for family in ("gan", "diffusion"):
            for size in (64, 128):
                results["steps"].append(step_rate(pictures, cache, family, size, args.work))
                print(json.dumps(results["steps"][-1]), flush=True)
    (args.work / f"results-{args.n}.json").write_text(json.dumps(results, indent=1))
    print(f"CPU: {results['cpu']}; results in {args.work / f'results-{args.n}.json'}")
    if args.clean:
        shutil.rmtree(pictures, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":  # worker processes (the pictures' writers, the decoders) import this file again
    main()
