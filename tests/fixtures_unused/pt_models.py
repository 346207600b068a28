"""Small real PyTorch models for `bridge unused` (factories return (model, batch[, loss_fn]))."""

from __future__ import annotations

import torch  # noqa: TID253 - a user model file, run on request
from torch import nn  # noqa: TID253


def _bert_config():
    from transformers import BertConfig

    return BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    )


def _sequence_loss(output, batch):
    return output.last_hidden_state.pow(2).mean()


def bert_pooler():
    """BertModel trained on the sequence output only: the pooler runs but gets no gradient."""
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(_bert_config())
    batch = {"input_ids": torch.randint(0, 99, (2, 8), generator=torch.Generator().manual_seed(1))}
    return model, batch, _sequence_loss


def bert_fixed():
    """The fix applied: BertModel(config, add_pooling_layer=False)."""
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(_bert_config(), add_pooling_layer=False)
    batch = {"input_ids": torch.randint(0, 99, (2, 8), generator=torch.Generator().manual_seed(1))}
    return model, batch, _sequence_loss


class RelativeSelfAttention(nn.Module):
    """Single-head self-attention with learned relative-position keys (Shaw et al.), like relative_key."""

    def __init__(self, hidden: int, max_distance: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.distance_embedding = nn.Embedding(2 * max_distance - 1, hidden)
        self.max_distance = max_distance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.query(x), self.key(x), self.value(x)
        n = x.shape[1]
        pos = torch.arange(n)
        rel = self.distance_embedding(pos[:, None] - pos[None, :] + self.max_distance - 1)  # (n, n, h)
        scores = q @ k.transpose(-1, -2) + torch.einsum("bnh,nmh->bnm", q, rel)
        return torch.softmax(scores / x.shape[-1] ** 0.5, dim=-1) @ v


class Embeddings(nn.Module):
    """Builds absolute position embeddings like BERT's, but (relative attention) never adds them."""

    def __init__(self, vocab: int, hidden: int, max_positions: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, hidden)
        self.position_embeddings = nn.Embedding(max_positions, hidden)
        self.LayerNorm = nn.LayerNorm(hidden)
        self.position_embedding_type = "relative_key"

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids)
        if self.position_embedding_type == "absolute":
            x = x + self.position_embeddings(torch.arange(input_ids.shape[1]))
        return self.LayerNorm(x)


class RelativePositionEncoder(nn.Module):
    def __init__(self, vocab: int = 50, hidden: int = 16, layers: int = 2, max_positions: int = 32) -> None:
        super().__init__()
        self.embeddings = Embeddings(vocab, hidden, max_positions)
        self.layer = nn.ModuleList(RelativeSelfAttention(hidden, max_positions) for _ in range(layers))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        for layer in self.layer:
            x = x + layer(x)
        return x


def relative_position():
    torch.manual_seed(0)
    return RelativePositionEncoder(), torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(1))


class EncoderDecoder(nn.Module):
    """A Transformer encoder + LSTM decoder; the encoder output is computed, then never fed to the decoder."""

    def __init__(self, vocab: int = 40, hidden: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        layer = nn.TransformerEncoderLayer(hidden, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        memory = self.encoder(self.embed(src))  # noqa: F841 - the bug under test: never used below
        decoded, _ = self.decoder(self.embed(tgt))  # should have been initialised from `memory`
        return self.out(decoded)


def _seq_batch():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 40, (2, 6), generator=g), torch.randint(0, 40, (2, 5), generator=g)


def _logits_loss(output, batch):
    return output.logsumexp(-1).mean()


def encoder_discarded():
    torch.manual_seed(0)
    return EncoderDecoder(), _seq_batch(), _logits_loss


def frozen_encoder():
    """A pretrained encoder frozen on purpose; its output feeds the head."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Embedding(40, 16), nn.Linear(16, 16), nn.Tanh())
    encoder.requires_grad_(False)
    model = nn.Sequential()
    model.add_module("encoder", encoder)
    model.add_module("head", nn.Linear(16, 3))
    return model, torch.randint(0, 40, (2, 6), generator=torch.Generator().manual_seed(1))


class LayerDrop(nn.Module):
    """Each layer is skipped with probability p while training (LayerDrop, Fan et al. 2019)."""

    def __init__(self, hidden: int = 8, layers: int = 4, p: float = 0.3) -> None:
        super().__init__()
        self.inp = nn.Linear(hidden, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for layer in self.layers:
            if self.training and torch.rand(()) < self.p:
                continue
            x = x + torch.tanh(layer(x))
        return x


def layer_drop():
    torch.manual_seed(0)
    return LayerDrop(), torch.randn(3, 8, generator=torch.Generator().manual_seed(1))


class Classifier(nn.Module):
    def __init__(self, head: str = "head") -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 8)
        self.norm = nn.BatchNorm1d(8)  # buffers (running stats) are state-dict entries too
        self.head_name = head
        setattr(self, head, nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.head_name)(self.norm(self.encoder(x)).relu())


def classifier():
    torch.manual_seed(0)
    return Classifier(), torch.ones(3, 4)


def classifier_renamed():
    """The same model after a refactor renamed `head` to `classifier`."""
    torch.manual_seed(0)
    return Classifier("classifier"), torch.ones(3, 4)


def _pooled_loss(output, batch):
    return output.last_hidden_state.pow(2).mean() + output.pooler_output.pow(2).mean()


def bert_pooled():
    """The same BertModel, with the pooler's output in the loss: every parameter reaches it."""
    model, batch, _ = bert_pooler()
    return model, batch, _pooled_loss


class TextImage(nn.Module):
    """A text model with a vision tower used only by batches that carry pixels; `unused_head` is never called."""

    def __init__(self, vocab: int = 30, hidden: int = 8, pixels: int = 12) -> None:
        super().__init__()
        self.text = nn.Embedding(vocab, hidden)
        self.vision = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.head = nn.Linear(hidden, 2)
        self.unused_head = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.text(input_ids).mean(1)
        if pixels is not None:  # the modality of this batch decides the branch
            x = x + self.vision(pixels)
        return self.head(x)


def _text_image_dataset(n: int = 8) -> list[dict[str, torch.Tensor]]:
    """Batch k is text-only for even k, text + image for odd k."""
    g = torch.Generator().manual_seed(3)
    out = []
    for k in range(n):
        batch = {"input_ids": torch.randint(0, 30, (2, 5), generator=g)}
        if k % 2:
            batch["pixels"] = torch.randn(2, 12, generator=g)
        out.append(batch)
    return out


def text_image_batches():
    """An iterable of batches (a generator): step i uses batch i, so the vision tower trains on odd steps only."""
    torch.manual_seed(0)
    return TextImage(), (batch for batch in _text_image_dataset())


def text_image_ranked(rank: int = 0, world_size: int = 1):
    """Each rank takes every world_size-th batch, as DistributedSampler(shuffle=False) deals them: with 2 ranks,
    rank 0 sees text only and rank 1 text + image at every step; alone, the batches alternate."""
    torch.manual_seed(0)
    return TextImage(), iter(_text_image_dataset()[rank::world_size])


# --- DDP configurations (tests/pt_side/test_unused_predict.py): each runs under real DDP on 2 gloo ranks ---


class Tower(nn.Module):
    """A text model with a vision tower used only by the batches that carry pixels (every parameter trains)."""

    def __init__(self, vocab: int = 30, hidden: int = 8, pixels: int = 12) -> None:
        super().__init__()
        self.text = nn.Embedding(vocab, hidden)
        self.vision = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.head = nn.Linear(hidden, 2)

    def forward(self, input_ids: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.text(input_ids).mean(1)
        if pixels is not None:
            x = x + self.vision(pixels)
        return self.head(x)


def multimodal_ranked(rank: int = 0, world_size: int = 1):
    """Every batch carries pixels but rank 1's third (step 2), text only: the vision tower misses step 2 there."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(10 + rank)
    batches = []
    for step in range(4):
        batch = {"input_ids": torch.randint(0, 30, (2, 5), generator=g)}
        if not (rank == 1 and step == 2):
            batch["pixels"] = torch.randn(2, 12, generator=g)
        batches.append(batch)
    return Tower(), iter(batches)


class GAN(nn.Module):
    """Generator and discriminator in one module; the step's phase says which one trains (the other's output is
    detached on discriminator steps: the generator gets no gradient there)."""

    def __init__(self, noise: int = 4, data: int = 6) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(noise, 8), nn.ReLU(), nn.Linear(8, data))
        self.discriminator = nn.Sequential(nn.Linear(data, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, z: torch.Tensor, real: torch.Tensor, phase: str) -> torch.Tensor:
        fake = self.generator(z)
        if phase == "discriminator":
            return (self.discriminator(fake.detach()) - self.discriminator(real)).mean()
        return -self.discriminator(fake).mean()


def gan_alternating(rank: int = 0, world_size: int = 1):
    """Discriminator steps (even) and generator steps (odd) alternate, on every rank alike."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(20 + rank)
    batches = [
        {"z": torch.randn(3, 4, generator=g), "real": torch.randn(3, 6, generator=g), "phase": phase}
        for phase in ("discriminator", "generator") * 2
    ]
    return GAN(), iter(batches)


class TokenMoE(nn.Module):
    """A mixture-of-experts layer routing each token to one expert (hash routing: token id mod experts), the
    output scaled by the router's probability of that expert (so the router trains)."""

    def __init__(self, vocab: int = 32, hidden: int = 8, experts: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.router = nn.Linear(hidden, experts)
        self.experts = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(experts))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids).reshape(-1, self.embed.embedding_dim)
        route = input_ids.reshape(-1) % len(self.experts)
        gate = torch.softmax(self.router(x), -1).gather(1, route[:, None])
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            picked = (route == e).nonzero().flatten()
            if len(picked):  # an expert no token is routed to is not called
                out = out.index_add(0, picked, expert(x[picked]))
        return (out * gate).sum()


def moe_unrouted(rank: int = 0, world_size: int = 1):
    """On rank 0's step 1 no token goes to expert 3 (no token id = 3 mod 4); every other step feeds every expert."""
    torch.manual_seed(0)
    batches = []
    for step in range(3):
        ids = torch.arange(8).reshape(2, 4) + 8 * step  # ids 0-7: every expert, twice
        if rank == 0 and step == 1:
            ids = torch.tensor([[0, 1, 2, 4], [5, 6, 8, 9]])
        batches.append(ids)
    return TokenMoE(), iter(batches)


class Checkpointed(nn.Module):
    """An input layer, two blocks under torch.utils.checkpoint (use_reentrant=True, the historical default), and an
    auxiliary head that only batches with ``aux=True`` use.  (The input layer makes the blocks' input require grad:
    reentrant checkpointing gives no gradient to a block none of whose inputs does.)"""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.inp = nn.Linear(hidden, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh()) for _ in range(2))
        self.head = nn.Linear(hidden, 1)
        self.aux = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, aux: bool = False) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        x = self.inp(x)
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=True)
        out = self.head(x).mean()
        return out + self.aux(x).mean() if aux else out


def checkpointed(rank: int = 0, world_size: int = 1):
    """Reentrant checkpointing, every parameter used at every step."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(30 + rank)
    return Checkpointed(), iter([{"x": torch.randn(2, 8, generator=g), "aux": True} for _ in range(3)])


def checkpointed_aux_sometimes(rank: int = 0, world_size: int = 1):
    """Reentrant checkpointing and the auxiliary head on even steps only (all ranks alike)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(30 + rank)
    return Checkpointed(), iter([{"x": torch.randn(2, 8, generator=g), "aux": step % 2 == 0} for step in range(4)])


class RankSkip(nn.Module):
    """``a`` at every step, ``b`` skipped when the batch says so, ``unused`` never called (the FSDP tests)."""

    def __init__(self, hidden: int = 4) -> None:
        super().__init__()
        self.a = nn.Linear(hidden, hidden)
        self.b = nn.Linear(hidden, hidden)
        self.unused = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, use_b: bool = True) -> torch.Tensor:
        x = self.a(x)
        return (self.b(x) if use_b else x).sum()


def rank_skip(rank: int = 0, world_size: int = 1):
    """Rank 1 skips ``b`` at step 1; every other step of every rank uses it."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(40 + rank)
    return RankSkip(), iter([{"x": torch.randn(2, 4, generator=g), "use_b": (rank, s) != (1, 1)} for s in range(3)])
