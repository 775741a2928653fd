"""Under DDP the EMA statistics, k-means initialisation and dead-code restarts stay identical on every rank."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seqae.nn.quantize import VectorQuantizer


def worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(100 + rank)  # different initial codebooks and data on each rank
    # usage decays fast enough (0.8 a step) for unused codes to fall below the threshold within the run
    q = VectorQuantizer(8, 32, ema=True, kmeans_init=True, dead_code_threshold=0.5, usage_decay=0.8)
    restarted = 0.0
    for step in range(30):
        # each rank sees its own data; some codes go unused and get restarted
        x = torch.randn(64, 8) * (1 + rank) + step * 0.1
        restarted += float(q(x).metrics["restarted_codes"])
    gathered = [torch.zeros_like(q.codebook) for _ in range(world)]
    dist.all_gather(gathered, q.codebook)
    sizes = [torch.zeros_like(q.cluster_size) for _ in range(world)]
    dist.all_gather(sizes, q.cluster_size)
    counts = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([restarted]))
    if rank == 0:
        torch.save({"codebooks": gathered, "cluster_sizes": sizes, "restarted": [float(c) for c in counts]}, out_file)
    dist.destroy_process_group()


def test_codebooks_stay_identical_on_every_rank(tmp_path):
    out = tmp_path / "codebooks.pt"
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    result = torch.load(out)
    a, b = result["codebooks"]
    assert torch.equal(a, b)
    assert torch.equal(*result["cluster_sizes"])
    assert torch.isfinite(a).all()
    # restarts happened (the test would say nothing otherwise), the same number on every rank
    assert result["restarted"][0] > 0 and result["restarted"][0] == result["restarted"][1]
