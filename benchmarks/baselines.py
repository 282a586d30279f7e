"""Template-style baselines: the same maths as hw5's four training loops, written the way the course
templates write them.

Each baseline iterates a ``torch.utils.data.DataLoader`` over a per-item ``Dataset`` that turns one uint8
image into a float tensor per ``__getitem__`` (as torchvision's ``ToTensor`` does), with the homework's
batch size and ``shuffle=True``; it computes in fp32, builds the loss with autograd and reads each loss
back with ``.item()`` every step, as the templates' logging does. The models are the templates' own
(written out here), or hw5's modules where the template leaves the architecture to the student (DCGAN).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from hw5.models.dcgan import DCGAN


class ImageDataset(Dataset):
    """Per-item access to uint8 images (N, 28, 28): ``ToTensor`` (and optionally ``Normalize(0.5, 0.5)``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, signed: bool = False) -> None:
        self.images, self.labels, self.signed = images.numpy(), labels.numpy(), signed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i]).float().div(255.0).unsqueeze(0)  # (1, 28, 28) in [0, 1]
        if self.signed:
            x = (x - 0.5) / 0.5
        return x, int(self.labels[i])


def loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, signed: bool = False,
           seed: int = 0) -> DataLoader:
    """The templates' ``DataLoader(dataset, batch_size, shuffle=True)``."""
    return DataLoader(ImageDataset(images, labels, signed), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


# --- Problem 1: DCGAN, fp32, sigmoid + BCELoss as in the 2023 GAN template --------------------------------

def gan_epoch(model: DCGAN, data: DataLoader, device: torch.device, max_steps: int) -> list[float]:
    """Alternating D and G steps with Adam(2e-4, (0.5, 0.999)), non-saturating G loss; returns G losses."""
    g_opt = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = nn.BCELoss()
    losses = []
    for step, (x, _) in enumerate(data):
        if step == max_steps:
            break
        x = x.to(device)
        ones, zeros = torch.ones(x.size(0), device=device), torch.zeros(x.size(0), device=device)
        z = torch.randn(x.size(0), 100, device=device)
        fake = model.generator(z)
        d_loss = (criterion(torch.sigmoid(model.discriminator(x)), ones)
                  + criterion(torch.sigmoid(model.discriminator(fake.detach())), zeros))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = criterion(torch.sigmoid(model.discriminator(fake)), ones)
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        losses.append(g_loss.item())
        _ = d_loss.item()
    return losses


# --- Problem 2: the course RBM template ----------------------------------------------------------------

class TemplateRBM(nn.Module):
    """The course's Gaussian-Bernoulli RBM template (sigma = 1): W (F, D) ~ 1e-2 randn, biases zero."""

    def __init__(self, D: int = 784, F: int = 256, k: int = 5) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(F, D) * 1e-2)
        self.v_bias = nn.Parameter(torch.zeros(D))
        self.h_bias = nn.Parameter(torch.zeros(F))
        self.k = k

    def sample_from_p(self, p: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.sign(p - torch.rand(p.size(), device=p.device)))

    def sample_gaussian(self, mu: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn(mu.size(), device=mu.device)

    def v_to_h(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p_h = torch.sigmoid(F.linear(v, self.W, self.h_bias))
        return p_h, self.sample_from_p(p_h)

    def h_to_v(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = F.linear(h, self.W.t(), self.v_bias)
        return mu, self.sample_gaussian(mu)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        vbias_term = 0.5 * ((v - self.v_bias) ** 2).sum(1)
        hidden_term = F.softplus(F.linear(v, self.W, self.h_bias)).sum(1)
        return (vbias_term - hidden_term).mean()

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, h = self.v_to_h(v)
        for _ in range(self.k):
            mu, v_ = self.h_to_v(h)
            _, h = self.v_to_h(v_)
        return v_, mu


def rbm_epoch(model: TemplateRBM, data: DataLoader, device: torch.device, max_steps: int) -> list[float]:
    """CD-k with loss F(v) - F(v_k.detach()), Adam(1e-3), per-batch scalar standardisation."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0)
    losses = []
    for step, (x, _) in enumerate(data):
        if step == max_steps:
            break
        v = x.view(-1, 784).to(device)
        v = (v - v.mean()) / v.std()
        v_k, _ = model(v)
        loss = model.free_energy(v) - model.free_energy(v_k.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# --- Problem 3: the course VAE template, and its conditional variant -----------------------------------

class TemplateVAE(nn.Module):
    """fc1 (784[+10] -> 400), fc21/fc22 (400 -> 20), fc3 (20[+10] -> 400), fc4 (400 -> 784)."""

    def __init__(self, conditional: bool = False) -> None:
        super().__init__()
        extra = 10 if conditional else 0
        self.conditional = conditional
        self.fc1 = nn.Linear(784 + extra, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20 + extra, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conditional:
            x = torch.cat([x, c], 1)
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.conditional:
            z = torch.cat([z, c], 1)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None):
        mu, logvar = self.encode(x.view(-1, 784), c)
        z = self.reparameterize(mu, logvar)
        return self.decode(z, c), mu, logvar


def vae_epoch(model: TemplateVAE, data: DataLoader, device: torch.device, max_steps: int) -> list[float]:
    """Adam(1e-3) on BCE(sum) + KL, reported per image, as in the template's training function."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step, (x, y) in enumerate(data):
        if step == max_steps:
            break
        x = x.to(device)
        c = F.one_hot(y, 10).float().to(device) if model.conditional else None
        recon, mu, logvar = model(x, c)
        bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (bce + kld) / x.size(0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
