"""ViT-tiny on graphs through permutation symmetrization (PS), on CPU.

1. Peak memory and training samples/s of ViT-tiny + PS at N = 188 nodes for k = 1, 4, 10
   samples (each in its own process, so peak memory is its own).
2. Pretrained vs from scratch at equal budget: pretrain ViT-tiny on the locally generated
   shapes task, save its weights, load them through the real checkpoint path, fine-tune
   with PS on SBM node classification; the same steps from random weights.

Last line: ``graph_vit_samples_per_s=<value at k=1>``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from symtrain.data.graphs import sbm_pattern
from symtrain.data.images import shapes_dataset
from symtrain.models.graph_vit import create_graph_vit, create_vit, graph_vit_symmetry
from symtrain.symmetrize import ProbabilisticSymmetrization
from symtrain.symmetrize.interfaces import PermutationInterface


def ps_node_model(vit_name: str, max_nodes: int, node_dim: int, k_train: int, k_eval: int,
                  checkpoint=None, **timm_kwargs):
    base = create_graph_vit(vit_name, max_nodes=max_nodes, node_dim=node_dim, out_dim=2, task="node",
                            checkpoint=checkpoint, **timm_kwargs)
    interface = PermutationInterface(in_features=node_dim, hidden=32, layers=2, max_nodes=max_nodes)
    model = ProbabilisticSymmetrization(base, graph_vit_symmetry("node"), interface,
                                           samples=k_train, eval_samples=k_eval, noise_scale=1.0)
    return model, base


def optimizer_for(model, base, lr_backbone: float, lr_new: float):
    backbone = {id(p) for p in base.backbone_parameters()}
    rest = [p for p in model.parameters() if id(p) not in backbone]
    return torch.optim.AdamW([{"params": base.backbone_parameters(), "lr": lr_backbone},
                              {"params": rest, "lr": lr_new}], weight_decay=0.01)


def node_loss(model, graphs):
    logits = model(graphs.adjacency, graphs.features, graphs.mask)
    labels = graphs.labels
    loss = F.cross_entropy(logits[graphs.mask], labels[graphs.mask])
    return loss + model.aux_loss()


# --- 1. throughput and memory, one process per k -----------------------------------
def child(k: int, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    n = 188
    model, base = ps_node_model("vit_tiny_patch16_224", n, 3, k, k)
    opt = optimizer_for(model, base, 1e-4, 1e-3)
    adj = (torch.rand(batch, n, n) < 0.05).float()
    adj = ((adj + adj.transpose(1, 2)) > 0).float()
    feats = F.one_hot(torch.randint(3, (batch, n)), 3).float()
    graphs = st_graphs(adj, feats, torch.ones(batch, n, dtype=torch.bool), torch.randint(2, (batch, n)))
    model.train()
    step = lambda: (opt.zero_grad(), node_loss(model, graphs).backward(), opt.step())  # noqa: E731
    step()  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"k": k, "samples_per_s": batch / dt, "step_s": dt, "peak_rss_mb": peak / 1024,
            "peak_growth_mb": (peak - before) / 1024}


def st_graphs(adj, feats, mask, labels):
    from symtrain.data.graphs import DenseGraphs

    return DenseGraphs(adjacency=adj, features=feats, mask=mask, labels=labels)


# --- 2. pretrained vs scratch ------------------------------------------------------
TINY = dict(img_size=64, patch_size=8)  # ViT-tiny width and depth, an 8×8 token grid


def pretrain(path: Path, seconds: float, log) -> dict:
    torch.manual_seed(0)
    vit = create_vit("vit_tiny_patch16_224", num_classes=6, **TINY)
    gen = torch.Generator().manual_seed(0)
    x_test, y_test = shapes_dataset(512, size=64, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(vit.parameters(), lr=5e-4, weight_decay=0.05)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y = shapes_dataset(64, size=64, generator=gen)
        loss = F.cross_entropy(vit(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    vit.eval()
    with torch.no_grad():
        acc = (vit(x_test).argmax(1) == y_test).float().mean().item()
    torch.save(vit.state_dict(), path)
    log(f"pretrained ViT-tiny on shapes: {steps} steps, held-out accuracy {acc:.3f}")
    return {"pretrain_steps": steps, "pretrain_accuracy": acc}


def sbm(num, seed):
    return sbm_pattern(num, communities=4, community_size=(4, 8), pattern_size=8,
                       generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def node_accuracy(model, graphs):
    model.eval()
    pred = model(graphs.adjacency, graphs.features, graphs.mask).argmax(-1)
    right = (pred == graphs.labels)[graphs.mask]
    return right.float().mean().item()


def finetune(checkpoint, steps: int, train, test, batch: int) -> float:
    torch.manual_seed(0)
    n = train.adjacency.shape[1]
    model, base = ps_node_model("vit_tiny_patch16_224", n, train.features.shape[-1], 1, 4,
                                checkpoint=checkpoint, **TINY)
    opt = optimizer_for(model, base, 1e-4, 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        model.train()
        idx = torch.randint(len(train), (batch,), generator=gen)
        loss = node_loss(model, train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return node_accuracy(model, test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--pretrain-seconds", type=float, default=120.0)
    parser.add_argument("--finetune-steps", type=int, default=150)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.batch, args.steps)))
        return
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    rows = []
    for k in (1, 4, 10):
        out = subprocess.run([sys.executable, __file__, "--child", str(k), "--batch", str(args.batch),
                              "--steps", str(args.steps)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    log(f"ViT-tiny + PS, N = 188, batch {args.batch}, training steps (forward + backward + AdamW)")
    log(f"{'k':>3} {'samples/s':>10} {'s/step':>8} {'peak RSS MB':>12} {'growth MB':>10}")
    for r in rows:
        log(f"{r['k']:>3} {r['samples_per_s']:>10.3f} {r['step_s']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['peak_growth_mb']:>10.0f}")

    train, test = sbm(400, 0), sbm(100, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vit_tiny_shapes.pth"
        pretrain(path, args.pretrain_seconds, log)
        acc_pre = finetune(path, args.finetune_steps, train, test, batch=16)
    acc_scratch = finetune(None, args.finetune_steps, train, test, batch=16)
    base_rate = 1 - test.labels[test.mask].float().mean().item()
    log(f"SBM node classification, ViT-tiny + PS (k=1 train / 4 eval), {args.finetune_steps} steps each:")
    log(f"  from the local pretrained checkpoint: test accuracy {acc_pre:.3f}")
    log(f"  from scratch:                          test accuracy {acc_scratch:.3f}")
    log(f"  majority class:                        {base_rate:.3f}")
    print(f"graph_vit_samples_per_s={rows[0]['samples_per_s']:.3f}")


if __name__ == "__main__":
    main()
