"""The trainer of NeurMAP's motion-estimation network (paper 002), supervised on synthetic pairs
and optionally with the unpaired MAP part (a deblurring backbone and a discriminator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deblurstudio.models.neurmap import motion_from_axis
from training.distributed import DistInfo
from training.losses import kernel_prior_loss, lsgan_loss, motion_axis_loss, reblur_loss, tv_loss
from training.trainers.base import Trainer


class MotionTrainer(Trainer):
    """NeurMAP's motion-estimation network (paper 002).

    M outputs blur-axis fields (see `MotionNet`); priors and TV act on them, reblur on the motion
    maps `motion_from_axis` gives (TV on motion would penalise the jump between the equal blurs
    m and −m where the half-angle wraps; the paper's maps are motion).
    Supervised part, on synthetic pairs: motion·motion_axis_loss(M(B), motion) over motion_valid
    (sign-free), kernel_prior·(M(S) → 0 field), tv·TV of both maps, reblur·L1(reblur(S, M(B)), B).

    Optional unpaired MAP part (`neurmap.deblur: {arch, kwargs}` configured): a deblurring
    backbone G and an LSGAN natural-image PatchDiscriminator D join, trained on the unpaired
    streams (real blurry B_u, sharp photos S_u) exactly as eqs. (4)–(12) describe:
      M: reblur·L1(reblur(D_u, M(B_u) − M(D_u)), B_u) + kernel_prior·(M(B_u) → long,
         M(S_u) → 0, M(D_u) → s·M(B_u)) + tv·TV(all maps), D_u = G(B_u) held fixed;
      G: content·L1 on the paired batch + reblur·(data term through D_u) + sharp_prior·(M(D_u) → 0)
         + tv·TV(M(D_u)) + gan·LSGAN(D(D_u) → natural);
      D: LSGAN, natural = B_u and S_u, fake = D_u.
    Without it the motion network is trained by the supervised part alone.
    """

    best_metric = ("epe", "min")

    def __init__(self, config, device, dist_info=DistInfo(), total_steps=None):
        super().__init__(config, device, dist_info, total_steps)
        neurmap = config.get("neurmap") or {}
        model = self.nets["model"]
        self.max_length = float(neurmap.get("prior_max_length", model.max_length))
        self.reblur_steps = int(neurmap.get("reblur_steps", 16))
        self.unremoved_fraction = float(neurmap.get("unremoved_fraction", 0.5))
        self.with_map = bool(neurmap.get("deblur"))
        if self.with_map:
            self.add_net("deblur", neurmap["deblur"])
            self.add_net(
                "discriminator", neurmap.get("discriminator") or {"arch": "patchgan", "kwargs": {}}
            )

    def next_batch(self, streams, step):
        batch = streams.next(self.stream(step))
        if self.with_map:
            batch["unpaired_blurred"] = streams.next("unpaired_blurred")["blurred"]
            batch["unpaired_sharp"] = streams.next("unpaired_sharp")["sharp"]
        return batch

    def train_step(self, batch, step):
        if self.with_map:
            return self._map_step(batch)
        blurred, sharp = batch["blurred"], batch["sharp"]
        with self.autocast():
            axis_blurred, axis_sharp = self.wrapped("model")(torch.cat([blurred, sharp])).chunk(2)
            loss, parts = self._supervised_terms(batch, axis_blurred, axis_sharp)
        self.update("model", loss)
        parts["loss"] = loss.item()
        return parts

    def _supervised_terms(self, batch, axis_blurred, axis_sharp):
        w = self.weights
        motion = motion_axis_loss(axis_blurred, batch["motion"], batch["motion_valid"])
        prior = kernel_prior_loss(self.max_length, sharp=axis_sharp)
        tv = tv_loss(axis_blurred.float()) + tv_loss(axis_sharp.float())
        reblur = reblur_loss(
            batch["sharp"], motion_from_axis(axis_blurred), batch["blurred"], self.reblur_steps
        )
        loss = (
            w.get("motion", 1.0) * motion
            + w.get("kernel_prior", 0.0) * prior
            + w.get("tv", 0.0) * tv
            + w.get("reblur", 0.0) * reblur
        )
        parts = {
            "motion": motion.item(),
            "kernel_prior": prior.item(),
            "tv": tv.item(),
            "reblur": reblur.item(),
        }
        return loss, parts

    def _map_step(self, batch):
        w = self.weights
        unpaired_blurred, unpaired_sharp = batch["unpaired_blurred"], batch["unpaired_sharp"]
        n = batch["blurred"].shape[0]
        with self.autocast():
            restored = self.wrapped("deblur")(
                torch.cat([batch["blurred"], unpaired_blurred])
            ).restored
            restored_paired, deblurred = restored[:n], restored[n:]
            # M update: one call (DDP allows one forward per backward) on all five image sets.
            motions = self.wrapped("model")(
                torch.cat(
                    [
                        batch["blurred"],
                        batch["sharp"],
                        unpaired_blurred,
                        unpaired_sharp,
                        deblurred.detach(),
                    ]
                )
            )
            m_blurred, m_sharp, m_unpaired, m_unpaired_sharp, m_deblurred = motions.split(
                [n, n, len(unpaired_blurred), len(unpaired_sharp), len(deblurred)]
            )
            loss_m, parts = self._supervised_terms(batch, m_blurred, m_sharp)
            data_m = reblur_loss(
                deblurred.detach(),
                motion_from_axis(m_unpaired) - motion_from_axis(m_deblurred),
                unpaired_blurred,
                self.reblur_steps,
            )
            prior_m = kernel_prior_loss(
                self.max_length,
                sharp=m_unpaired_sharp,
                blurred=m_unpaired,
                deblurred=m_deblurred,
                blurred_reference=m_unpaired,
                unremoved_fraction=self.unremoved_fraction,
            )
            tv_m = sum(tv_loss(m.float()) for m in (m_unpaired, m_unpaired_sharp, m_deblurred))
            loss_m = (
                loss_m
                + w.get("reblur", 0.0) * data_m
                + w.get("kernel_prior", 0.0) * prior_m
                + w.get("tv", 0.0) * tv_m
            )
        self.update("model", loss_m)

        with self.autocast():
            # G update: gradients flow through the bare M and D into G only.
            m_restored = self.nets["model"](deblurred)
            content = F.l1_loss(restored_paired.float(), batch["sharp"].float())
            data_g = reblur_loss(
                deblurred,
                motion_from_axis(m_unpaired.detach()) - motion_from_axis(m_restored),
                unpaired_blurred,
                self.reblur_steps,
            )
            sharp_prior = kernel_prior_loss(self.max_length, sharp=m_restored)
            adversarial = lsgan_loss(self.nets["discriminator"](deblurred), True)
            loss_g = (
                w.get("content", 1.0) * content
                + w.get("reblur", 0.0) * data_g
                + w.get("sharp_prior", 0.0) * sharp_prior
                + w.get("tv", 0.0) * tv_loss(m_restored.float())
                + w.get("gan", 0.0) * adversarial
            )
        self.update("deblur", loss_g)

        with self.autocast():
            logits = self.wrapped("discriminator")(
                torch.cat([unpaired_blurred, unpaired_sharp, deblurred.detach()])
            )
            natural, fake = logits.split(
                [len(unpaired_blurred) + len(unpaired_sharp), len(deblurred)]
            )
            loss_d = lsgan_loss(natural, True) + lsgan_loss(fake, False)
        self.update("discriminator", loss_d)
        parts.update(
            loss=loss_m.item(),
            map_reblur=data_m.item(),
            map_prior=prior_m.item(),
            content=content.item(),
            sharp_prior=sharp_prior.item(),
            gan_g=adversarial.item(),
            gan_d=loss_d.item(),
        )
        return parts
