"""The trainer of BladeNet (paper 000): its lbp, main and joint stages, on the global and local
blur streams at once."""

from __future__ import annotations

import torch

from training.losses import bce_loss, dice_loss
from training.streams import concat_batches
from training.trainers.base import Trainer


class BladeNetTrainer(Trainer):
    """BladeNet's schedule (paper 000, §4.4 and appendix), stages named in `train.stages`:

    - "lbp": the Local Blur Perception net alone, BCE of its probability against blur_mask.
    - "main": LBP fixed (its map is computed without gradients, in eval mode), the main net
      trained with mse·MSE (the paper's) and/or psnr·`psnr_loss`, plus dice·DICE(attention,
      blur_mask) on the synthetic local stream.
    - "joint": everything fine-tuned with the same terms + bce·BCE (the paper's weights: MSE 1.0,
      DICE 0.25, BCE 0.01).

    Every step trains on both data streams: `train.batch_size` samples of "global" (mostly camera
    shake; the paper's REDS) and as many of "local" (Local Blur Synthesis with masks), in one
    batch. The paper alternates the two datasets; with BatchNorm that fails here: a batch that is
    all camera shake is normalised by its own statistics, which erases exactly the "how blurred
    is this photo" signal the LBP net must learn (measured: its BCE stayed at the constant
    predictor's ~0.69 for 400 steps, blur-mask IoU 0.31). The DICE term applies to the local
    stream's samples only (kind other than "global"), as in the paper.
    """

    find_unused_parameters = True  # each stage trains only part of the network

    def next_batch(self, streams, step):
        return concat_batches(streams.next("global"), streams.next("local"))

    def train_step(self, batch, step):
        stage = self.stage(step).name
        image, mask, sharp = batch["blurred"], batch["blur_mask"], batch["sharp"]
        model = self.nets["model"]
        parts: dict[str, float] = {}
        with self.autocast():
            if stage == "lbp":
                probability = self.wrapped("model")(image, deblur=False).blur_probability
                loss = bce_loss(probability, mask)
                parts["bce"] = loss.item()
            else:
                probability = None
                if stage == "main":
                    with torch.no_grad():
                        model.eval()
                        probability = model.perceive(image)
                        model.train()
                output = self.wrapped("model")(image, probability)
                loss, parts = self.content_loss(output.restored, sharp)
                local = [i for i, kind in enumerate(batch["kind"]) if kind != "global"]
                if local and self.weights.get("dice", 0.0):
                    dice = dice_loss(output.attention[local], mask[local])
                    loss = loss + self.weights["dice"] * dice
                    parts["dice"] = dice.item()
                if stage == "joint" and self.weights.get("bce", 0.0):
                    bce = bce_loss(output.blur_probability, mask)
                    loss = loss + self.weights["bce"] * bce
                    parts["bce"] = bce.item()
        self.update("model", loss)
        parts["loss"] = loss.item()
        return parts
