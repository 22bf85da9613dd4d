"""The trainer of the deblurring networks with a reference: LCNet (paper 003) and the reference
network (paper 001)."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from training.distributed import DistInfo
from training.losses import patch_contrastive_loss, relativistic_average_loss
from training.trainers.base import Trainer


class DeblurTrainer(Trainer):
    """LCNet (paper 003) and the reference network (paper 001).

    Loss = l1·L1 + fft·FFT + structure·S (+ mse·MSE), all against the sharp frame; with
    `loss.gan` > 0 a PatchDiscriminator (`discriminator: {arch, kwargs}`) adds the relativistic
    average GAN loss of paper 001 (eqs. 10–11). For LCNet, `structure` replaces the paper's VGG
    perceptual loss (see losses.structure_loss). A network that needs a reference gets the
    sample's other view; with probability `train.reference_dropout` a step runs the
    no-reference twin instead (reference=None), so the same weights also work without one, and
    with probability `train.reference_unrelated` it gets another sample's view (the batch rolled
    by one), so it learns to ignore a reference of a different scene. With `loss.match` > 0 the
    matching encoder also learns correspondence: `patch_contrastive_loss` between its features of
    the blurry crop and of the aligned sharp frame.
    """

    def __init__(self, config, device, dist_info=DistInfo(), total_steps=None):
        # Steps without the reference leave the reference modules without gradients.
        self.find_unused_parameters = float(config["train"].get("reference_dropout", 0.0)) > 0
        super().__init__(config, device, dist_info, total_steps)
        self.uses_reference = bool(getattr(self.nets["model"], "needs_reference", False))
        if self.weights.get("gan", 0.0) > 0:
            spec = config.get("discriminator") or {"arch": "patchgan", "kwargs": {}}
            self.add_net("discriminator", spec)

    def restore(self, net: nn.Module, batch: dict[str, Any]):
        if not self.uses_reference:
            return net(batch["blurred"])
        dropout = float(self.train_config.get("reference_dropout", 0.0))
        unrelated = float(self.train_config.get("reference_unrelated", 0.0))
        draw = random.random()
        if draw < dropout:
            reference = None
        elif draw < dropout + unrelated:
            reference = batch["reference"].roll(1, dims=0)
        else:
            reference = batch["reference"]
        match_target = batch["sharp"] if self.weights.get("match", 0.0) > 0 else None
        return net(batch["blurred"], reference, match_target=match_target)

    def train_step(self, batch, step):
        sharp = batch["sharp"]
        with self.autocast():
            output = self.restore(self.wrapped("model"), batch)
            restored = output.restored
            loss, parts = self.content_loss(restored, sharp)
            if output.match_features is not None:
                match = patch_contrastive_loss(*output.match_features)
                loss = loss + self.weights["match"] * match
                parts["match"] = match.item()
            if "discriminator" in self.nets:
                discriminator = self.nets["discriminator"]
                with torch.no_grad():
                    real_logits = discriminator(sharp)
                adversarial = relativistic_average_loss(discriminator(restored), real_logits)
                loss = loss + self.weights["gan"] * adversarial
                parts["gan_g"] = adversarial.item()
        self.update("model", loss)
        if "discriminator" in self.nets:
            with self.autocast():
                logits = self.wrapped("discriminator")(torch.cat([sharp, restored.detach()]))
                real_logits, fake_logits = logits.chunk(2)
                d_loss = relativistic_average_loss(real_logits, fake_logits)
            self.update("discriminator", d_loss)
            parts["gan_d"] = d_loss.item()
        parts["loss"] = loss.item()
        return parts
