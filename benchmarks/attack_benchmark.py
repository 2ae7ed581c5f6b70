"""Our batched minimum-distortion search against the per-example scipy reference, the exact optimum and foolbox.

Everything is measured in this one run, on the same test images and random targets:

1. speed: examples per second of ours (batched) and of the per-example scipy L-BFGS-B reference at
   the same settings (c steps, iterations, memory), with their ratio and their distortion ratio
   on the examples both attacked;
2. the gap to the exact optimum: mean distortion of ours ÷ the exact QP's, for softmax1-3, with the
   paper's objective and with the sharpened one (cross-entropy on scaled logits);
3. foolbox 3's FMN, DDN and C&W on N100-100-10: distortion, success and seconds per 1000 examples,
   with the engine issue's speed target (ours at least 1.5x DDN's speed) and distortion target (at most
   1.01 × C&W's).

Sections 1 and 3 time every attack as :data:`intriguing.peers.TIMING` says.

Usage: python benchmarks/attack_benchmark.py [--profile smoke|full] [--examples 1000] [--scipy-examples 50]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from intriguing.artifacts import trained_network
from intriguing.attacks import exact_linear_attack, min_distortion_attack, random_targets
from intriguing.chapters.blind_spots import SHARPENED_LOGIT_SCALE
from intriguing.data import load_mnist
from intriguing.peers import FOOLBOX_ATTACKS, OURS, SCIPY, compare_attacks
from intriguing.profiles import get_profile


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="networks of this profile (default: $INTRIGUING_PROFILE or full)")
    parser.add_argument("--examples", type=int, default=1000, help="test images attacked by the batched attacks")
    parser.add_argument("--scipy-examples", type=int, default=50, help="of those, attacked by the slow scipy reference")
    args = parser.parse_args(argv)

    profile = get_profile(args.profile)
    test = load_mnist("test")
    images, labels = test.images[:args.examples], test.labels[:args.examples]
    targets = random_targets(labels, seed=0)
    print(f"{profile.name} profile networks, {args.examples} test images, random targets, {torch.get_num_threads()} threads")
    out: dict[str, float] = {}

    net = trained_network("N100-100-10", profile).model
    runs = compare_attacks(net, images, targets, labels=labels, scipy_examples=args.scipy_examples,
                           settings=profile.search)
    ours, ref = runs[OURS], runs[SCIPY]
    out["speed_ratio"] = ref["s / 1000 examples"] / ours["s / 1000 examples"]
    out["distortion_ratio_vs_scipy"] = ref["ours on the same"] / ref["distortion"]
    print("\n1. N100-100-10: ours (batched) vs scipy L-BFGS-B (per example), same settings")
    print(f"   ours : {1000 / ours['s / 1000 examples']:8.1f} examples/s  success {ours['success (%)']:.1f}%  "
          f"mean distortion {ours['distortion']:.4f}")
    print(f"   scipy: {1000 / ref['s / 1000 examples']:8.1f} examples/s  success {ref['success (%)']:.1f}%  "
          f"mean distortion on its {ref['examples']} {ref['distortion']:.4f} (ours on the same: {ref['ours on the same']:.4f})")
    print(f"   speed ratio {out['speed_ratio']:.1f}x, distortion ratio ours/scipy {out['distortion_ratio_vs_scipy']:.4f}")

    print("\n2. gap to the exact optimum (linear models)")
    for name in ["softmax1", "softmax2", "softmax3"]:
        model = trained_network(name, profile).model
        linear = model.weight_layers()[0]
        exact = exact_linear_attack(linear.weight, linear.bias, images, targets)
        for label, scale in [("paper's objective", 1.0), ("sharpened", SHARPENED_LOGIT_SCALE)]:
            settings = replace(profile.search, logit_scale=scale)
            ours_lin = min_distortion_attack(model, images, targets, settings=settings, progress=False)
            both = ours_lin.success & exact.success
            ratio = (ours_lin.distortion[both].mean() / exact.distortion[both].mean()).item()
            out[f"exact_ratio_{name}_{'paper' if scale == 1 else 'sharpened'}"] = ratio
            print(f"   {name}, {label:17s}: ours {ours_lin.distortion[both].mean():.4f} / exact "
                  f"{exact.distortion[both].mean():.4f} = {ratio:.4f}  (success ours "
                  f"{ours_lin.success.float().mean():.1%}, exact {exact.success.float().mean():.1%})")

    print("\n3. N100-100-10: foolbox peers on the same examples")
    print(f"   {'attack':8s} {'distortion':>10s} {'success':>8s} {'s/1000':>8s}")
    for name, row in [("ours", ours)] + [(peer, runs[f"foolbox {peer}"]) for peer in FOOLBOX_ATTACKS]:
        print(f"   {name:8s} {row['distortion']:10.4f} {row['success (%)']:7.1f}% {row['s / 1000 examples']:8.3f}")
    best_peer = min((runs[f"foolbox {peer}"]["distortion"] for peer in FOOLBOX_ATTACKS
                     if runs[f"foolbox {peer}"]["success (%)"] == 100), default=float("inf"))
    out["distortion_ratio_vs_best_foolbox"] = ours["distortion"] / best_peer
    print(f"   ours / best fully successful foolbox peer: {out['distortion_ratio_vs_best_foolbox']:.4f}")
    ddn, cw = runs["foolbox DDN"], runs["foolbox C&W"]
    out["speed_ratio_vs_ddn"] = ddn["s / 1000 examples"] / ours["s / 1000 examples"]
    out["distortion_ratio_vs_cw"] = ours["distortion"] / cw["distortion"]
    print(f"   ours / DDN speed: {out['speed_ratio_vs_ddn']:.2f}x (target >= 1.5); "
          f"ours / C&W distortion: {out['distortion_ratio_vs_cw']:.5f} (target <= 1.01)")
    return out


if __name__ == "__main__":
    main()
