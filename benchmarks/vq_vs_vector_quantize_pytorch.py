"""seqae's VectorQuantizer against lucidrains' vector-quantize-pytorch on the same inputs and settings.

Settings (both): EMA codebook (decay 0.99), k-means initialisation (10 iterations), dead-code expiry at a
moving-average count of 2 per batch, commitment weight 0.25, straight-through gradients (the peer's
rotation trick off), batch 64 x 1024 vectors of dim 64, K = 512. Inputs: a mixture of 2048 Gaussians,
so a good codebook uses every code.

Prints, from one run: forward+backward time per step of each and their ratio, codebook usage after the
same number of steps (on a held-out batch), and checks that with the same codebook both pick the same
nearest codes.

    bash benchmarks/setup_env.sh        # .venv-bench: seqae + vector-quantize-pytorch 1.32.0
    .venv-bench/bin/python benchmarks/vq_vs_vector_quantize_pytorch.py [--steps 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from vector_quantize_pytorch import VectorQuantize

from seqae.nn.quantize import VectorQuantizer


def mixture(n_centres: int, dim: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_centres, dim, generator=generator) * 2.0

    def sample(shape, generator):
        idx = torch.randint(0, n_centres, shape, generator=generator)
        return centres[idx] + 0.3 * torch.randn(*shape, dim, generator=generator)

    return sample


def make_seqae(dim, k):
    return VectorQuantizer(dim, k, ema=True, decay=0.99, beta=0.25, kmeans_init=True, kmeans_iters=10, dead_code_threshold=2.0)


def make_peer(dim, k):
    return VectorQuantize(
        dim=dim, codebook_size=k, decay=0.99, commitment_weight=0.25, kmeans_init=True, kmeans_iters=10,
        threshold_ema_dead_code=2, rotation_trick=False,
    )


def step_seqae(model, x):
    out = model(x)
    (out.quantized.square().mean() + out.loss).backward()
    return out.codes


def step_peer(model, x):
    quantized, codes, loss = model(x)
    (quantized.square().mean() + loss.sum()).backward()
    return codes


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def usage(codes: torch.Tensor, k: int) -> float:
    return torch.unique(codes).numel() / k


def run(args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    sample = mixture(2048, args.dim, seed=1)
    data_gen = torch.Generator().manual_seed(2)
    batches = [sample((args.batch, args.seq), data_gen) for _ in range(args.steps + 1)]
    held_out = sample((args.batch, args.seq), torch.Generator().manual_seed(3)).to(device)

    models = {"seqae": make_seqae(args.dim, args.k).to(device), "vector-quantize-pytorch": make_peer(args.dim, args.k).to(device)}
    steps = {"seqae": step_seqae, "vector-quantize-pytorch": step_peer}
    times = {name: [] for name in models}
    for i, batch in enumerate(batches):
        # alternate who goes first so neither gains from a warm cache
        order = list(models) if i % 2 == 0 else list(reversed(models))
        for name in order:
            x = batch.to(device).requires_grad_(True)
            sync(device)
            start = time.perf_counter()
            steps[name](models[name], x)
            sync(device)
            if i > 0:  # step 0 runs the k-means initialisation
                times[name].append(time.perf_counter() - start)

    result = {"device": str(device), "steps": args.steps, "batch": [args.batch, args.seq, args.dim], "codebook_size": args.k}
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            codes = step_codes(name, model, held_out)
        result[name] = {
            "ms_per_step_median": 1000 * statistics.median(times[name]),
            "ms_per_step_mean": 1000 * statistics.mean(times[name]),
            "codebook_usage_held_out": usage(codes, args.k),
        }
    result["time_ratio_peer_over_seqae"] = result["vector-quantize-pytorch"]["ms_per_step_median"] / result["seqae"]["ms_per_step_median"]
    result["usage_seqae_minus_peer"] = (
        result["seqae"]["codebook_usage_held_out"] - result["vector-quantize-pytorch"]["codebook_usage_held_out"]
    )
    result["same_codes_given_same_codebook"] = same_codes_check(models, held_out)
    return result


def step_codes(name, model, x):
    if name == "seqae":
        return model(x).codes
    return model(x)[1]


@torch.no_grad()
def same_codes_check(models, x) -> dict:
    """Give seqae the peer's codebook; both must choose the same code for every vector (where the two
    nearest codes are not tied to float32 precision)."""
    ours, peer = models["seqae"], models["vector-quantize-pytorch"]
    ours.codebook.copy_(peer._codebook.embed[0])
    a, b = ours(x).codes.reshape(-1), peer(x)[1].reshape(-1)
    differ = (a != b).nonzero().reshape(-1)
    flat = x.reshape(-1, x.shape[-1])
    ties = 0
    for i in differ.tolist():
        da = (flat[i] - ours.codebook[a[i]]).square().sum()
        db = (flat[i] - ours.codebook[b[i]]).square().sum()
        ties += bool(torch.isclose(da, db, rtol=1e-4))
    identical = len(differ) - ties == 0
    if not identical:
        raise SystemExit(f"different nearest codes for {len(differ) - ties} vectors that are not ties")
    return {"vectors": int(a.numel()), "different": int(len(differ)), "of_which_float_ties": ties, "ok": identical}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"device {result['device']}, {args.steps} steps of {args.batch} x {args.seq} vectors, dim {args.dim}, K = {args.k}")
    for name in ("seqae", "vector-quantize-pytorch"):
        r = result[name]
        print(f"  {name:<24} {r['ms_per_step_median']:8.1f} ms/step (median)   codebook usage {r['codebook_usage_held_out']:.3f}")
    print(f"  speed ratio (peer time / seqae time): {result['time_ratio_peer_over_seqae']:.2f}x")
    check = result["same_codes_given_same_codebook"]
    print(f"  same codebook -> same codes: {check['vectors'] - check['different'] + check['of_which_float_ties']}/{check['vectors']} "
          f"({check['of_which_float_ties']} float ties)")


if __name__ == "__main__":
    main()
